/**
 * The third outside attack (F2, F3): `read({ invocationId })` must not scan the file per call,
 * and `verify()` must not re-check the whole chain per call, while still catching tampering.
 */
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { readAuditVerificationKey } from './checkpoint.js'
import { lineReads } from './lines.js'
import { openAuditLog, readAuditFile } from './log.js'
import type { AuditLog, AuditLogOptions } from './log.js'
import type { AuditEntry } from './record.js'
import { verifyAuditFile } from './verify.js'

let dir: string
let file: string
let keyFile: string
const open: AuditLog[] = []
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-scan-'))
  file = join(dir, 'audit.jsonl')
  keyFile = join(dir, 'audit-signing.key')
})
afterEach(async () => {
  await Promise.all(open.splice(0).map((log) => log.close()))
  await rm(dir, { recursive: true, force: true })
})

function entry(i: number, invocationId = `inv-${i % 5}`): AuditEntry {
  return {
    kind: 'host-call',
    invocationId,
    appId: 'app',
    actor: 'app:app',
    op: 'fetch',
    target: `https://api.example.com/items/${i}`,
    decision: 'allow',
  }
}

async function openLog(options: Partial<AuditLogOptions> = {}): Promise<AuditLog> {
  const log = await openAuditLog({ file, ...options })
  open.push(log)
  return log
}

/** A log of `n` records, closed and opened again (so the index must scan the file once). */
async function reopened(n: number, options: Partial<AuditLogOptions> = {}): Promise<AuditLog> {
  const first = await openAuditLog({ file, ...options })
  await Promise.all(Array.from({ length: n }, (_, i) => first.append(entry(i))))
  await first.close()
  return openLog(options)
}

/** How many passes over the file `task` started. */
async function reads<T>(task: () => Promise<T>): Promise<{ value: T; reads: number }> {
  const before = lineReads.count
  const value = await task()
  return { value, reads: lineReads.count - before }
}

/** Change one byte of the record with `target` ending in `/items/<i>`, size and mtime kept. */
async function tamper(i: number): Promise<void> {
  const before = await stat(file)
  const text = await readFile(file, 'utf8')
  const changed = text.replace(`/items/${i}"`, `/items/${(i + 1) % 10}"`)
  expect(changed).not.toBe(text)
  await writeFile(file, changed)
  await utimes(file, before.atime, before.mtime)
}

/** Look `ids` up at once: one pass over the file, and what a scan of the file finds. */
async function expectOneScanFor(log: AuditLog, ids: string[]): Promise<void> {
  const { value, reads: n } = await reads(() =>
    Promise.all(ids.map((id) => log.read({ invocationId: id }))),
  )
  expect(n).toBe(1)
  for (const [i, id] of ids.entries()) {
    expect(value[i]).toEqual(await readAuditFile(file, { invocationId: id }))
  }
}

describe('read({ invocationId }) (F2)', () => {
  it('serves concurrent lookups on a reopened log with one scan, with the records a scan finds', async () => {
    const log = await reopened(40)
    const ids = Array.from({ length: 50 }, (_, i) => `inv-${i % 7}`)
    await expectOneScanFor(log, ids)
  })

  it('finds appended records, and answers an unknown id, without reading the file again', async () => {
    const log = await reopened(10)
    await log.read({ invocationId: 'inv-0' })
    const { value, reads: n } = await reads(async () => {
      await log.append(entry(100, 'inv-new'))
      await log.append(entry(101, 'inv-0'))
      return Promise.all([
        log.read({ invocationId: 'inv-new' }),
        log.read({ invocationId: 'inv-0' }),
        log.read({ invocationId: 'no-such-invocation' }),
        log.read({ invocationId: 'inv-0', fromSeq: 10, limit: 1 }),
      ])
    })
    expect(n).toBe(0)
    expect(value[0]).toEqual(await readAuditFile(file, { invocationId: 'inv-new' }))
    expect(value[1]).toEqual(await readAuditFile(file, { invocationId: 'inv-0' }))
    expect(value[1].map((r) => r.seq)).toEqual([1, 6, 12])
    expect(value[2]).toEqual([])
    expect(value[3].map((r) => r.seq)).toEqual([12])
  })

  it('past its bound, concurrent lookups share one scan and still find every record', async () => {
    const log = await reopened(20, { indexLimit: 5 })
    const ids = ['inv-1', 'inv-2', 'inv-1', 'nope']
    // The first lookup builds (and drops) the index; then the fallback scans.
    await log.read({ invocationId: 'inv-3' })
    await expectOneScanFor(log, ids)
  })

  it('past its bound, an indexedOnly lookup never reads the file; the recent invocations stay found', async () => {
    const log = await reopened(20, { indexLimit: 5 })
    // The first lookup builds the index (stopping at the bound), so it already overflowed.
    await log.read({ invocationId: 'inv-3', indexedOnly: true })
    const { value, reads: n } = await reads(async () => {
      for (let i = 0; i < 6; i++) {
        await log.append(entry(100 + i, `recent-${i % 3}`))
      }
      return Promise.all([
        log.read({ invocationId: 'recent-0', indexedOnly: true }),
        log.read({ invocationId: 'recent-1', indexedOnly: true }),
        log.read({ invocationId: 'recent-2', indexedOnly: true }),
        log.read({ invocationId: 'inv-1', indexedOnly: true }),
        log.read({ invocationId: 'no-such-invocation', indexedOnly: true }),
      ])
    })
    expect(n).toBe(0)
    // At most 5 recent records are kept, whole invocations, the oldest dropped first: the 6th
    // record dropped recent-0 (seqs 21 and 24), never half of an invocation.
    expect(value[0]).toEqual([])
    expect(value[1].map((r) => r.seq)).toEqual([22, 25])
    expect(value[2]).toEqual(await readAuditFile(file, { invocationId: 'recent-2' }))
    expect(value[3]).toEqual([])
    expect(value[4]).toEqual([])
    // An admin's lookup (no flag) still scans and finds every record.
    await expectOneScanFor(log, ['inv-1', 'recent-0'])
  })

  it('refuses an indexed line that was changed into something else', async () => {
    const log = await reopened(10)
    await log.read({ invocationId: 'inv-1' })
    const text = await readFile(file, 'utf8')
    await writeFile(file, text.replace('"invocationId":"inv-1"', '"invocationId":"inv-X"'))
    await expect(log.read({ invocationId: 'inv-1' })).rejects.toMatchObject({ code: 'internal' })
  })

  it('rejects a bad query before reading', async () => {
    const log = await reopened(3)
    await expect(log.read({ invocationId: 'inv-1', limit: 0 })).rejects.toThrow(TypeError)
  })
})

describe('verify() (F3)', () => {
  it('shares one check among concurrent calls, and does not read when nothing changed', async () => {
    const log = await reopened(30, { signingKeyFile: keyFile, checkpointEvery: 4 })
    const key = await readAuditVerificationKey(keyFile)
    const full = await verifyAuditFile(file, { checkpointKey: key })
    expect(full.ok).toBe(true)
    const first = await reads(() => Promise.all(Array.from({ length: 20 }, () => log.verify())))
    expect(first.reads).toBe(1)
    for (const result of first.value) {
      expect(result).toEqual(full)
    }
    const again = await reads(() => log.verify())
    expect(again.reads).toBe(0)
    expect(again.value).toEqual(full)
  })

  it('after appends checks only the rest, with the answer of a full check', async () => {
    for (const checkpointKey of [true, false]) {
      await rm(file, { force: true })
      const options = checkpointKey ? { signingKeyFile: keyFile, checkpointEvery: 4 } : {}
      const log = await reopened(9, options)
      const key = checkpointKey ? { checkpointKey: await readAuditVerificationKey(keyFile) } : {}
      await log.verify()
      for (let round = 0; round < 3; round++) {
        await Promise.all(Array.from({ length: 3 + round }, (_, i) => log.append(entry(i))))
        const { value } = await reads(() => log.verify())
        expect(value).toEqual(await verifyAuditFile(file, key))
        expect(value.ok).toBe(true)
      }
      await log.close()
    }
  })

  it('after appends reads only from the last checkpoint on', async () => {
    const log = await reopened(40, { signingKeyFile: keyFile, checkpointEvery: 4 })
    await log.verify()
    await Promise.all([1, 2, 3].map((i) => log.append(entry(i))))
    const before = lineReads.lines
    expect((await log.verify()).ok).toBe(true)
    // The last checkpoint, at most 4 records after it, the 3 new ones and a new checkpoint.
    expect(lineReads.lines - before).toBeLessThanOrEqual(1 + 4 + 3 + 1)
  })

  it('still catches an earlier record changed after a cached check (size and mtime kept)', async () => {
    const log = await reopened(12, { signingKeyFile: keyFile, checkpointEvery: 4 })
    const key = await readAuditVerificationKey(keyFile)
    expect((await log.verify()).ok).toBe(true)
    await tamper(2)
    const result = await log.verify()
    expect(result.ok).toBe(false)
    expect(result).toEqual(await verifyAuditFile(file, { checkpointKey: key }))
  })

  it('still catches an earlier record changed, then records appended, after a check', async () => {
    const log = await reopened(12)
    expect((await log.verify()).ok).toBe(true)
    await tamper(3)
    await log.append(entry(50))
    const result = await log.verify()
    expect(result).toMatchObject({ ok: false, reason: 'hash-mismatch' })
    expect(result).toEqual(await verifyAuditFile(file))
  })

  it('answers as a full check would, whatever appends, edits and checks follow', async () => {
    const op = fc.oneof(
      fc.record({ append: fc.integer({ min: 1, max: 6 }) }),
      fc.record({ edit: fc.nat() }),
      fc.constant({ verify: true }),
    )
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(op, { maxLength: 8 }), async (signed, ops) => {
        await rm(file, { force: true })
        const options = signed ? { signingKeyFile: keyFile, checkpointEvery: 3 } : {}
        const log = await reopened(5, options)
        const key = signed ? { checkpointKey: await readAuditVerificationKey(keyFile) } : {}
        try {
          expect(await log.verify()).toEqual(await verifyAuditFile(file, key))
          for (const step of ops) {
            if ('append' in step) {
              await Promise.all(Array.from({ length: step.append }, (_, i) => log.append(entry(i))))
            } else if ('edit' in step) {
              // One byte of one record's target, the size kept.
              const lines = (await readFile(file, 'utf8')).split('\n')
              const n = step.edit % (lines.length - 1)
              lines[n] = (lines[n] as string).replace('/items/', '/itemz/')
              await writeFile(file, lines.join('\n'))
            }
            expect(await log.verify()).toEqual(await verifyAuditFile(file, key))
          }
        } finally {
          await log.close()
        }
      }),
      { numRuns: 25 },
    )
  })

  it('passes explicit options to a full check', async () => {
    const log = await reopened(5)
    const { value, reads: n } = await reads(() => log.verify({ expectLastSeq: 9 }))
    expect(n).toBe(1)
    expect(value).toMatchObject({ ok: false, reason: 'seq-gap', firstBadSeq: 6 })
  })
})
