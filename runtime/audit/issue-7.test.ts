// Issue 7: a chain rebuilt by whoever can write the audit file went unnoticed without an
// operator-kept head, and two writers on one data dir interleaved sequence numbers.
import { spawn, spawnSync } from 'node:child_process'
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DEFAULT_CEILINGS } from '../limits/limits.js'
import { resolveHostConfig } from '../host-config.js'
import { openWarden } from '../warden.js'
import type { WardenOptions } from '../warden.js'
import { buildProgram } from '../../sdk/cli/program.js'
import { canonicalJson } from './canonical.js'
import { openAuditLog } from './log.js'
import type { AuditLogOptions } from './log.js'
import { computeRecordHash } from './record.js'
import type { AuditEntry, AuditRecord } from './record.js'
import { verifyAuditFile } from './verify.js'

// The code a held lock is refused with.
const LOCKED = 'store_unavailable'

let dir: string
let file: string
let keyFile: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-issue-7-'))
  // The layout of a data dir, so that the CLI finds both.
  file = join(dir, 'audit', 'audit.jsonl')
  keyFile = join(dir, 'audit-signing.key')
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

function openSigned(options: Partial<AuditLogOptions> = {}) {
  let ms = Date.UTC(2025, 0, 1)
  return openAuditLog({
    file,
    signingKeyFile: keyFile,
    checkpointEvery: 3,
    now: () => ms++,
    ...options,
  })
}

function entry(i: number, extra: Partial<AuditEntry> = {}): AuditEntry {
  return {
    kind: 'host-call',
    appId: 'app-1',
    capability: 'warden:platform/http',
    op: 'fetch',
    target: `https://api.example.com/${i}`,
    decision: 'allow',
    ...extra,
  }
}

const seqsOf = (records: readonly AuditRecord[], kind: string) =>
  records.filter((r) => r.kind === kind).map((r) => r.seq)

/**
 * Ten entries with a checkpoint every 3: checkpoints at 1 (the genesis), 5, 9, 13 and 15 (on
 * close); entries at 2–4, 6–8, 10–12 and 14.
 */
async function seed(): Promise<AuditRecord[]> {
  const log = await openSigned()
  for (let i = 1; i <= 10; i++) {
    await log.append(entry(i))
  }
  await log.close()
  const records = await fileRecords()
  expect(seqsOf(records, 'checkpoint')).toEqual([1, 5, 9, 13, 15])
  return records
}

async function fileRecords(): Promise<AuditRecord[]> {
  const text = await readFile(file, 'utf8')
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as AuditRecord)
}

async function writeRecords(records: readonly object[]): Promise<void> {
  await writeFile(file, records.map((r) => `${canonicalJson(r)}\n`).join(''))
}

/** The public half of the signing key, read as any PEM tool would. */
async function publicKey() {
  return createPublicKey(await readFile(keyFile, 'utf8'))
}

/**
 * What someone who can write the file but not read the key can do: renumber and re-link every
 * record from the first, recomputing every hash. A careful forger also points each checkpoint
 * at its new predecessor (its signature stays the old one).
 */
function rechain(records: readonly AuditRecord[], careful: boolean): AuditRecord[] {
  const out: AuditRecord[] = []
  let prev = { seq: 0, hash: '0'.repeat(64) }
  for (const record of records) {
    const body: Omit<AuditRecord, 'hash'> & { hash?: string } = {
      ...record,
      seq: prev.seq + 1,
      prevHash: prev.hash,
    }
    if (careful && record.checkpoint) {
      body.checkpoint = { ...record.checkpoint, seq: prev.seq, hash: prev.hash }
    }
    delete body.hash
    const next = { ...body, hash: computeRecordHash(body) } as AuditRecord
    out.push(next)
    prev = { seq: next.seq, hash: next.hash }
  }
  return out
}

describe('signed checkpoints', () => {
  it('writes one every N records, on open of a new log and on close; it verifies', async () => {
    const records = await seed()
    expect(records.at(-1)?.checkpoint).toMatchObject({ seq: 14, hash: records[13]?.hash, every: 3 })
    const result = await verifyAuditFile(file, { checkpointKey: await publicKey() })
    expect(result).toEqual({
      ok: true,
      count: 15,
      lastSeq: 15,
      lastHash: records[14]?.hash,
      checkpoints: 5,
      lastCheckpoint: { seq: 15, ts: records[14]?.ts },
      unsigned: 0,
    })
  })

  it('refuses a re-chained file, naming the first seq after the last good checkpoint', async () => {
    const records = await seed()
    const edited = records.map((r) => (r.seq === 7 ? { ...r, target: 'https://evil.example/' } : r))
    const key = await publicKey()
    for (const careful of [false, true]) {
      await writeRecords(rechain(edited, careful))
      if (careful) {
        // The chain alone is whole again: only the signatures tell.
        expect(await verifyAuditFile(file)).toMatchObject({ ok: true, count: 15 })
      }
      expect(await verifyAuditFile(file, { checkpointKey: key })).toEqual({
        ok: false,
        firstBadSeq: 6,
        reason: 'bad-checkpoint',
      })
      // Nor does the writer sign it over on its next start.
      await expect(openSigned()).rejects.toMatchObject({ code: 'internal' })
    }
  })

  it('refuses a re-chained file whose later checkpoints were removed', async () => {
    const records = await seed()
    const stripped = records
      .filter((r) => r.kind !== 'checkpoint' || r.seq <= 5)
      .map((r) => (r.seq === 7 ? { ...r, target: 'https://evil.example/' } : r))
    await writeRecords(rechain(stripped, false))
    expect(await verifyAuditFile(file, { checkpointKey: await publicKey() })).toEqual({
      ok: false,
      firstBadSeq: 6,
      reason: 'missing-checkpoint',
    })
    await expect(openSigned()).rejects.toMatchObject({ code: 'internal' })

    // Every checkpoint removed: a log with records and no checkpoint is not a signed log.
    await writeRecords(
      rechain(
        records.filter((r) => r.kind !== 'checkpoint'),
        false,
      ),
    )
    expect(await verifyAuditFile(file, { checkpointKey: await publicKey() })).toEqual({
      ok: false,
      firstBadSeq: 1,
      reason: 'missing-checkpoint',
    })
    await expect(openSigned()).rejects.toMatchObject({ code: 'internal' })
  })

  it('refuses a forged checkpoint signature', async () => {
    const records = await seed()
    const key = await publicKey()
    const other = generateKeyPairSync('ed25519')
    const cp = records[8] as AuditRecord
    const sig = cp.checkpoint?.sig as string
    const flipped = `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`
    const byOther = sign(null, Buffer.from('anything'), other.privateKey).toString('base64url')
    for (const forged of [flipped, byOther, '']) {
      const tampered = records.map((r) =>
        r.seq === 9 ? { ...r, checkpoint: { ...r.checkpoint!, sig: forged } } : r,
      )
      await writeRecords(rechain(tampered, false))
      expect(await verifyAuditFile(file, { checkpointKey: key })).toEqual({
        ok: false,
        firstBadSeq: 6,
        reason: 'bad-checkpoint',
      })
    }
    // Checked against another key, the first checkpoint already fails.
    await writeRecords(records)
    expect(await verifyAuditFile(file, { checkpointKey: other.publicKey })).toEqual({
      ok: false,
      firstBadSeq: 1,
      reason: 'bad-checkpoint',
    })
  })

  it('never puts a secret in a checkpoint record, and keeps the key outside the log', async () => {
    const secret = 'sk_live_4f3c2b1a'
    const redact = (text: string) => text.replaceAll(secret, '[redacted:api]')
    const log = await openSigned({ redact })
    for (let i = 1; i <= 4; i++) {
      const target = `https://api.example.com/?key=${secret}`
      await log.append(entry(i, { target, reason: secret }))
    }
    await log.close()
    const text = await readFile(file, 'utf8')
    const pem = await readFile(keyFile, 'utf8')
    const d = createPrivateKey(pem).export({ format: 'jwk' }).d as string
    const seed32 = Buffer.from(d, 'base64url')
    const body = pem
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('-----'))
      .join('')
    for (const material of [secret, body, d, seed32.toString('hex'), seed32.toString('base64')]) {
      expect(text).not.toContain(material)
    }
    const checkpoints = (await fileRecords()).filter((r) => r.kind === 'checkpoint')
    expect(checkpoints.map((r) => r.seq)).toEqual([1, 5, 7])
    for (const record of checkpoints) {
      expect(Object.keys(record).sort()).toEqual(
        [
          'seq',
          'ts',
          'invocationId',
          'appId',
          'digest',
          'tokenJti',
          'actor',
          'kind',
          'capability',
          'op',
          'target',
          'decision',
          'reason',
          'durationMs',
          'bytesOut',
          'bytesIn',
          'meter',
          'checkpoint',
          'prevHash',
          'hash',
        ].sort(),
      )
      const fields = Object.keys(record.checkpoint!).sort()
      expect(fields).toEqual(['every', 'hash', 'keyId', 'seq', 'sig'])
      const { kind, op, decision, checkpoint: _c, seq: _s, ts: _t, ...others } = record
      const { prevHash: _p, hash: _h, ...rest } = others
      expect([kind, op, decision]).toEqual(['checkpoint', 'checkpoint', 'allow'])
      expect(Object.values(rest).every((value) => value === null)).toBe(true)
    }
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
  })

  it('after a crash, verifies with the tail unsigned, and signs it on the next open', async () => {
    const log = await openSigned()
    await log.append(entry(1))
    await log.append(entry(2))
    const crashed = await readFile(file)
    await log.close()
    await writeFile(file, crashed)
    const key = await publicKey()
    expect(await verifyAuditFile(file, { checkpointKey: key })).toMatchObject({
      ok: true,
      lastCheckpoint: { seq: 1 },
      unsigned: 2,
    })
    const again = await openSigned()
    expect(again.head.seq).toBe(4)
    await again.close()
    expect(await verifyAuditFile(file, { checkpointKey: key })).toMatchObject({
      ok: true,
      lastCheckpoint: { seq: 4 },
      unsigned: 0,
    })
  })
})

describe('one writer per audit log', () => {
  it('refuses a second open of the same log until the first is closed', async () => {
    const first = await openSigned()
    await first.append(entry(1))
    await expect(openSigned()).rejects.toMatchObject({ code: LOCKED })
    await expect(openAuditLog({ file })).rejects.toMatchObject({ code: LOCKED })
    await first.append(entry(2))
    await first.close()
    const second = await openSigned()
    expect((await second.append(entry(3))).seq).toBe(5)
    await second.close()
    expect(await verifyAuditFile(file, { checkpointKey: await publicKey() })).toMatchObject({
      ok: true,
      count: 6,
    })
  })

  it('refuses a lock held by another running process, or by another host', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'])
    try {
      await openAuditLog({ file }).then((log) => log.close())
      const startedAt = new Date().toISOString()
      const owner = { pid: child.pid, host: hostname(), startedAt }
      await writeFile(`${file}.lock`, JSON.stringify(owner))
      await expect(openAuditLog({ file })).rejects.toMatchObject({ code: LOCKED })
      await writeFile(`${file}.lock`, JSON.stringify({ pid: 1, host: 'elsewhere', startedAt }))
      await expect(openAuditLog({ file })).rejects.toMatchObject({ code: LOCKED })
    } finally {
      child.kill()
    }
  })

  it('takes over a stale lock whose process is not running, and says so', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid as number
    await openAuditLog({ file }).then((log) => log.close())
    const owner = { pid: dead, host: hostname(), startedAt: '2025-01-01T00:00:00.000Z' }
    await writeFile(`${file}.lock`, JSON.stringify(owner))
    const log = await openSigned()
    expect(log.staleLock).toEqual(owner)
    await log.close()
    const takeover = (await fileRecords()).find((r) => r.op === 'audit.lock.takeover')
    expect(takeover).toMatchObject({ kind: 'admin', actor: 'warden', decision: 'allow' })
    expect(takeover?.target).toContain(`pid ${dead}`)
    await expect(stat(`${file}.lock`)).rejects.toMatchObject({ code: 'ENOENT' })

    // This process's own pid, from before it started: a restart that got the same pid.
    await writeFile(`${file}.lock`, JSON.stringify({ ...owner, pid: process.pid }))
    const again = await openSigned()
    expect(again.staleLock).toMatchObject({ pid: process.pid })
    await again.close()
  })

  it('refuses a second openWarden on one data dir, and opens again after close', async () => {
    const options: WardenOptions & { poolSize: number } = {
      dataDir: dir,
      ceilings: DEFAULT_CEILINGS,
      masterKey: undefined,
      maxTokenLifetimeSeconds: 3600,
      poolSize: 1,
    }
    const first = await openWarden(options)
    try {
      await expect(openWarden(options)).rejects.toMatchObject({ code: LOCKED })
    } finally {
      await first.close()
    }
    const second = await openWarden(options)
    await second.close()
  })

  it('lets `warden audit tail` and `audit verify` read while the lock is held', async () => {
    const log = await openSigned()
    await log.append(entry(1))
    await log.append(entry(2))
    const tail = await cli(['audit', 'tail', '-n', '2'])
    expect(tail.code).toBe(0)
    expect(
      tail.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).seq),
    ).toEqual([2, 3])
    const verified = await cli(['audit', 'verify'])
    expect(verified.code).toBe(0)
    await log.close()
  })
})

describe('warden audit verify', () => {
  it('refuses a re-chained data dir with the first bad seq; prints the checkpoint', async () => {
    const records = await seed()
    const ok = await cli(['audit', 'verify'])
    expect(ok.code).toBe(0)
    expect(ok.stdout.split('\n')[1]).toBe(
      `last signed checkpoint: seq 15 at ${records[14]?.ts}; no record after it`,
    )
    const edited = records.map((r) => (r.seq === 7 ? { ...r, target: 'https://evil.example/' } : r))
    await writeRecords(rechain(edited, true))
    const refused = await cli(['audit', 'verify'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toBe('first bad seq 6 (bad-checkpoint)\n')
  })
})

/** Run `warden <args>` on the test's data dir; a command that opens Warden fails. */
async function cli(args: string[]) {
  const out = { stdout: '', stderr: '', code: -1 }
  await buildProgram({
    stdout: (text) => void (out.stdout += text),
    stderr: (text) => void (out.stderr += text),
    readStdin: async () => '',
    env: {},
    setExitCode: (code) => void (out.code = code),
    hostConfig: () => ({ ...resolveHostConfig({}), dataDir: dir }),
    openWarden: () => Promise.reject(new Error('a read-only command opened Warden')),
  }).parseAsync(args, { from: 'user' })
  return out
}
