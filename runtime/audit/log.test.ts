import {
  appendFile,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises'
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { WardenError } from '../errors.js'
import { openAuditLog } from './log.js'
import type { AuditLogOptions } from './log.js'
import { GENESIS_HASH } from './record.js'
import type { AuditEntry, AuditRecord } from './record.js'
import { verifyAuditFile } from './verify.js'

let dir: string
let file: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-audit-'))
  file = join(dir, 'nested', 'audit.jsonl')
})
afterEach(async () => {
  vi.restoreAllMocks()
  await rm(dir, { recursive: true, force: true })
})

/** A deterministic clock: one millisecond per record. */
function clock() {
  let ms = Date.UTC(2025, 0, 1)
  return () => ms++
}

function openLog(options: Partial<AuditLogOptions> = {}) {
  return openAuditLog({ file, now: clock(), ...options })
}

function hostCall(i: number, extra: Partial<AuditEntry> = {}): AuditEntry {
  return {
    kind: 'host-call',
    invocationId: `inv-${i % 3}`,
    appId: `app-${i % 2}`,
    digest: 'sha256:abc',
    tokenJti: 'jti-1',
    actor: `app:app-${i % 2}`,
    capability: 'warden:platform/http',
    op: 'fetch',
    target: `https://api.example.com/items/${i}`,
    decision: i % 4 === 0 ? 'deny' : 'allow',
    reason: i % 4 === 0 ? 'host not granted' : null,
    durationMs: i / 7,
    bytesOut: i,
    bytesIn: 2 * i,
    ...extra,
  }
}

/** What the tests spy on in FileHandle.prototype. */
interface HandleProto {
  datasync: () => Promise<void>
  write: (...args: unknown[]) => Promise<{ bytesWritten: number }>
}

/** FileHandle.prototype, to spy on its writes (node:fs/promises does not export the class). */
async function fileHandlePrototype(): Promise<HandleProto> {
  const handle = await open(join(dir, 'probe'), 'w')
  await handle.close()
  return Object.getPrototypeOf(handle) as HandleProto
}

/**
 * Make the next sync of the log fail with EIO after its bytes reached the file: its
 * `datasync`, or, where the log writes through O_DSYNC, the write itself (the kernel wrote the
 * page, the device did not take it).
 */
async function failNextSync(): Promise<void> {
  const proto = await fileHandlePrototype()
  const eio = Object.assign(new Error('EIO'), { code: 'EIO' })
  if (constants.O_DSYNC === undefined) {
    vi.spyOn(proto, 'datasync').mockRejectedValueOnce(eio)
    return
  }
  const write = proto.write
  vi.spyOn(proto, 'write').mockImplementationOnce(async function (this: unknown, ...args) {
    await write.apply(this, args)
    throw eio
  })
}

async function fileLines(): Promise<string[]> {
  const text = await readFile(file, 'utf8')
  expect(text.endsWith('\n')).toBe(true)
  return text.slice(0, -1).split('\n')
}

describe('openAuditLog', () => {
  it('appends hash-chained records that verify', async () => {
    const log = await openLog()
    expect(log.head).toEqual({ seq: 0, hash: GENESIS_HASH })
    const first = await log.append(hostCall(1))
    const second = await log.append({
      kind: 'admin',
      actor: 'admin:k1',
      op: 'app.disable',
      target: 'app-1',
      decision: 'allow',
    })
    await log.close()
    expect(first.seq).toBe(1)
    expect(first.prevHash).toBe(GENESIS_HASH)
    expect(first.ts).toBe('2025-01-01T00:00:00.000Z')
    expect(second.seq).toBe(2)
    expect(second.prevHash).toBe(first.hash)
    expect(second.capability).toBeNull()
    expect(log.head).toEqual({ seq: 2, hash: second.hash })
    expect((await fileLines()).map((line) => JSON.parse(line))).toEqual([first, second])
    expect(await verifyAuditFile(file)).toEqual({
      ok: true,
      count: 2,
      lastSeq: 2,
      lastHash: second.hash,
      checkpoints: 0,
      lastCheckpoint: null,
      unsigned: 2,
    })
  })

  it('keeps order and seq under 200 concurrent appends, in one group commit', async () => {
    const log = await openLog()
    const proto = await fileHandlePrototype()
    const datasync = vi.spyOn(proto, 'datasync')
    const write = vi.spyOn(proto, 'write')
    const records = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append(hostCall(i))),
    )
    await log.close()
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1))
    expect(records.map((r) => r.target)).toEqual(records.map((_, i) => hostCall(i).target))
    for (let i = 1; i < records.length; i++) {
      expect(records[i]?.prevHash).toBe(records[i - 1]?.hash)
    }
    // One or two batches (the first append may go alone): a write each, and a datasync each
    // unless the file is written through O_DSYNC.
    expect(write.mock.calls.length).toBeGreaterThanOrEqual(1)
    expect(write.mock.calls.length).toBeLessThanOrEqual(2)
    expect(datasync.mock.calls.length).toBe(
      constants.O_DSYNC === undefined ? write.mock.calls.length : 0,
    )
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, count: 200, lastSeq: 200 })
  })

  it('keeps order across batches when appends arrive while a write is in flight', async () => {
    const log = await openLog()
    const done: number[] = []
    const all: Promise<AuditRecord>[] = []
    for (let i = 0; i < 50; i++) {
      const p = log.append(hostCall(i))
      p.then((r) => done.push(r.seq))
      all.push(p)
      if (i % 10 === 0) {
        await p
      }
    }
    await Promise.all(all)
    await log.close()
    expect(done).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, count: 50 })
  })

  it('continues seq and chain after a reopen', async () => {
    const log = await openLog()
    await log.append(hostCall(1))
    const last = await log.append(hostCall(2))
    await log.close()
    const again = await openLog()
    expect(again.recovered).toBe(false)
    expect(again.head).toEqual({ seq: 2, hash: last.hash })
    const next = await again.append(hostCall(3))
    await again.close()
    expect(next.seq).toBe(3)
    expect(next.prevHash).toBe(last.hash)
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, count: 3 })
  })

  it('keeps a guest string that looks like a record on one line', async () => {
    const log = await openLog()
    const forged = `x\n{"seq":99,"hash":"${'f'.repeat(64)}"}\r\n\u2028`
    const record = await log.append(hostCall(1, { target: forged, reason: forged }))
    await log.append(hostCall(2))
    await log.close()
    expect(record.target).toBe(`x\\u000a{"seq":99,"hash":"${'f'.repeat(64)}"}\\u000d\\u000a\\u2028`)
    const lines = await fileLines()
    expect(lines).toHaveLength(2)
    expect(lines[0]).not.toMatch(/[\u0000-\u001f\u2028\u2029]/)
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, count: 2 })
  })

  it('redacts every text field, so no secret reaches the file or a sink', async () => {
    const secret = 'ghp_s3cr3tT0k3n'
    const seen: AuditRecord[] = []
    const log = await openLog({
      redact: (text) => text.replaceAll(secret, '[redacted]'),
      onAppend: (record) => {
        seen.push(record)
      },
    })
    const record = await log.append({
      kind: 'host-call',
      invocationId: secret,
      appId: secret,
      digest: secret,
      tokenJti: secret,
      actor: `app:${secret}`,
      capability: secret,
      op: secret,
      target: `https://api.github.com/?token=${secret}`,
      decision: 'deny',
      reason: `bad ${secret}`,
    })
    await log.close()
    expect(JSON.stringify(record)).not.toContain(secret)
    expect(JSON.stringify(seen)).not.toContain(secret)
    expect(await readFile(file, 'utf8')).not.toContain(secret)
    expect(record.target).toBe('https://api.github.com/?token=[redacted]')
  })

  it('tells onAppend each durable record in order, and survives a failing sink', async () => {
    const seen: number[] = []
    const log = await openLog({
      onAppend: (record) => {
        seen.push(record.seq)
        if (record.seq === 2) {
          throw new Error('sink down')
        }
        if (record.seq === 3) {
          return Promise.reject(new Error('sink down'))
        }
        return undefined
      },
    })
    const records = await Promise.all([1, 2, 3, 4].map((i) => log.append(hostCall(i))))
    await log.close()
    expect(seen).toEqual([1, 2, 3, 4])
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4])
  })

  it('rejects an invalid entry without using a seq', async () => {
    const log = await openLog()
    await expect(log.append({ ...hostCall(1), decision: 'perhaps' } as never)).rejects.toThrow(
      TypeError,
    )
    const record = await log.append(hostCall(2))
    await log.close()
    expect(record.seq).toBe(1)
  })

  it('rejects a redact hook that does not return a string', async () => {
    const log = await openLog({ redact: () => undefined as unknown as string })
    await expect(log.append(hostCall(1))).rejects.toThrow(TypeError)
    await log.close()
  })

  it('finishes pending appends on close and refuses appends after it', async () => {
    const log = await openLog()
    const pending = log.append(hostCall(1))
    const closed = log.close()
    await expect(pending).resolves.toMatchObject({ seq: 1 })
    await closed
    await expect(log.append(hostCall(2))).rejects.toMatchObject({ code: 'internal' })
    await log.close()
    expect(await fileLines()).toHaveLength(1)
  })

  it.runIf(process.platform === 'linux')(
    'holds the log open with O_DSYNC, since no datasync follows its writes',
    async () => {
      const log = await openLog()
      await log.append(hostCall(1))
      let flags: number | undefined
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
        if (target === file) {
          const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8')
          flags = Number.parseInt(/^flags:\s+([0-7]+)/m.exec(info)?.[1] ?? '', 8)
        }
      }
      await log.close()
      expect(flags).toBeDefined()
      expect(flags! & constants.O_DSYNC).toBe(constants.O_DSYNC)
      expect(flags! & constants.O_APPEND).toBe(constants.O_APPEND)
    },
  )

  it('fails closed after a write error, and a reopen carries on from the disk', async () => {
    const log = await openLog()
    await log.append(hostCall(1))
    await failNextSync()
    const failed = log.append(hostCall(2))
    await expect(failed).rejects.toBeInstanceOf(WardenError)
    await expect(failed).rejects.toMatchObject({ code: 'internal' })
    await expect(log.append(hostCall(3))).rejects.toMatchObject({ code: 'internal' })
    expect(log.head.seq).toBe(1)
    await log.close()
    vi.restoreAllMocks()
    // The failed batch reached the file (only its sync failed): it is kept, never doubled.
    const again = await openLog()
    const next = await again.append(hostCall(4))
    await again.close()
    expect(next.seq).toBe(3)
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, count: 3 })
  })

  it('uses the entry ts when given, normalised to UTC', async () => {
    const log = await openLog()
    const record = await log.append(hostCall(1, { ts: '2024-02-29T23:00:00-01:00' }))
    await log.close()
    expect(record.ts).toBe('2024-03-01T00:00:00.000Z')
  })
})

describe('crash recovery on open', () => {
  async function seed(n: number): Promise<AuditRecord[]> {
    const log = await openLog()
    const records = await Promise.all(Array.from({ length: n }, (_, i) => log.append(hostCall(i))))
    await log.close()
    return records
  }

  it.each([
    ['half a record', (line: string) => line.slice(0, line.length >> 1)],
    ['a whole record but its newline', (line: string) => line],
    ['zeros', () => '\u0000'.repeat(4096)],
  ])('cuts a torn final line (%s) and keeps every acknowledged record', async (_name, torn) => {
    const records = await seed(5)
    const size = (await stat(file)).size
    const next = JSON.stringify({ ...records[4], seq: 6 })
    await appendFile(file, torn(next))
    const log = await openLog()
    expect(log.recovered).toBe(true)
    expect(log.recoveredBytes).toBe(Buffer.byteLength(torn(next)))
    expect((await stat(file)).size).toBe(size)
    expect(log.head).toEqual({ seq: 5, hash: records[4]?.hash })
    const appended = await log.append(hostCall(6))
    await log.close()
    expect(appended.seq).toBe(6)
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, count: 6 })
  })

  it('cuts a file that is one torn line back to empty', async () => {
    await seed(0)
    await writeFile(file, '{"seq":1,"ts":')
    const log = await openLog()
    expect(log.recovered).toBe(true)
    expect(log.head).toEqual({ seq: 0, hash: GENESIS_HASH })
    expect((await log.append(hostCall(1))).prevHash).toBe(GENESIS_HASH)
    await log.close()
  })

  it('finds the last record behind a torn tail larger than its read chunk', async () => {
    const records = await seed(3)
    await appendFile(file, 'x'.repeat(200_000))
    const log = await openLog()
    expect(log.recoveredBytes).toBe(200_000)
    expect(log.head.hash).toBe(records[2]?.hash)
    await log.close()
  })

  it('refuses to open on a corrupt last complete line, and changes nothing', async () => {
    await seed(3)
    const lines = await fileLines()
    const edited = lines[2]?.replace('"op":"fetch"', '"op":"fetcH"')
    const bad = `${lines.slice(0, 2).join('\n')}\n${edited}\n`
    await writeFile(file, bad)
    await expect(openLog()).rejects.toMatchObject({ code: 'internal' })
    await writeFile(file, `${lines.join('\n')}\nnot json\n`)
    await expect(openLog()).rejects.toMatchObject({ code: 'internal' })
    expect(await readFile(file, 'utf8')).toBe(`${lines.join('\n')}\nnot json\n`)
  })
})

describe('read', () => {
  it('filters by fromSeq, invocationId and appId, with a limit', async () => {
    const log = await openLog()
    await Promise.all(Array.from({ length: 30 }, (_, i) => log.append(hostCall(i + 1))))
    expect((await log.read()).map((r) => r.seq)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    )
    expect((await log.read({ fromSeq: 28 })).map((r) => r.seq)).toEqual([28, 29, 30])
    expect((await log.read({ fromSeq: 5, limit: 2 })).map((r) => r.seq)).toEqual([5, 6])
    const byInvocation = await log.read({ invocationId: 'inv-1', appId: 'app-0' })
    expect(byInvocation.map((r) => r.seq)).toEqual([4, 10, 16, 22, 28])
    await expect(log.read({ limit: 0 })).rejects.toThrow(TypeError)
    await expect(log.read({ fromSeq: 0 })).rejects.toThrow(TypeError)
    await log.close()
  })

  it('sees only durable records while an append is in flight', async () => {
    const log = await openLog()
    await log.append(hostCall(1))
    const inFlight = log.append(hostCall(2))
    const [records, verdict] = await Promise.all([log.read(), log.verify()])
    expect(records.map((r) => r.seq)).toEqual([1])
    expect(verdict).toMatchObject({ ok: true, count: 1 })
    await inFlight
    expect((await log.read()).map((r) => r.seq)).toEqual([1, 2])
    await log.close()
  })

  it('refuses to read past a corrupt line', async () => {
    const log = await openLog()
    await Promise.all([1, 2, 3].map((i) => log.append(hostCall(i))))
    await log.close()
    const lines = await fileLines()
    lines[1] = '{"seq":2,'
    await writeFile(file, `${lines.join('\n')}\n`)
    const again = await openLog()
    await expect(again.read()).rejects.toMatchObject({ code: 'internal' })
    await again.close()
  })

  it('verifies the durable part of the log', async () => {
    const log = await openLog()
    const record = await log.append(hostCall(1))
    expect(await log.verify()).toEqual({
      ok: true,
      count: 1,
      lastSeq: 1,
      lastHash: record.hash,
      checkpoints: 0,
      lastCheckpoint: null,
      unsigned: 1,
    })
    await log.close()
  })
})
