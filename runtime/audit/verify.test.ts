import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { canonicalJson } from './canonical.js'
import { openAuditLog } from './log.js'
import { AUDIT_KINDS, GENESIS_HASH, computeRecordHash } from './record.js'
import type { AuditEntry, AuditRecord } from './record.js'
import { verifyAuditFile, verifyRecords } from './verify.js'

const N = 10

let dir: string
let pristine: string
let records: AuditRecord[]
let counter = 0

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-audit-verify-'))
  const built = await buildLog(
    Array.from({ length: N }, (_, i) => ({
      kind: 'host-call',
      appId: 'app-1',
      op: 'fetch',
      target: `https://api.example.com/${i + 1}`,
      decision: 'allow',
      durationMs: i,
    })),
  )
  pristine = built.text
  records = built.records
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function buildLog(
  entries: AuditEntry[],
): Promise<{ file: string; text: string; records: AuditRecord[] }> {
  const file = join(dir, `log-${counter++}.jsonl`)
  let ms = Date.UTC(2025, 0, 1)
  const log = await openAuditLog({ file, now: () => ms++ })
  const built = await Promise.all(entries.map((entry) => log.append(entry)))
  await log.close()
  return { file, text: await readFile(file, 'utf8'), records: built }
}

/** Write `lines` (one record each) as a log file and verify it. */
async function verifyLines(lines: string[], options = {}) {
  const file = join(dir, `tampered-${counter++}.jsonl`)
  await writeFile(file, lines.map((line) => `${line}\n`).join(''))
  return verifyAuditFile(file, options)
}

function lines(): string[] {
  return pristine.slice(0, -1).split('\n')
}

/** A record re-encoded after `change`, its own hash recomputed (a careful forger). */
function forge(record: AuditRecord, change: Partial<AuditRecord>): string {
  const body = { ...record, ...change }
  return canonicalJson({ ...body, hash: computeRecordHash(body) })
}

const at = (k: number) => records[k - 1] as AuditRecord

describe('verifyAuditFile', () => {
  it('accepts an untouched log', async () => {
    expect(await verifyLines(lines())).toEqual({
      ok: true,
      count: N,
      lastSeq: N,
      lastHash: at(N).hash,
      checkpoints: 0,
      lastCheckpoint: null,
      unsigned: N,
    })
  })

  it('accepts records that count several calls, and catches a changed count', async () => {
    const built = await buildLog([
      { kind: 'host-call', op: 'write', decision: 'allow', bytesOut: 999, calls: 999 },
      { kind: 'host-call', op: 'fetch', decision: 'deny', reason: 'not granted', calls: 2 },
      { kind: 'run', op: 'run', decision: 'allow' },
    ])
    expect(await verifyAuditFile(built.file)).toMatchObject({ ok: true, count: 3 })
    const text = built.text.slice(0, -1).split('\n')
    // Fewer calls than were made, or the count dropped: the record's hash no longer matches.
    const fewer = [text[0]!.replace('"calls":999', '"calls":9'), ...text.slice(1)]
    expect(await verifyLines(fewer)).toMatchObject({ ok: false, firstBadSeq: 1 })
    const dropped = [text[0]!.replace('"calls":999,', ''), ...text.slice(1)]
    expect(await verifyLines(dropped)).toMatchObject({ ok: false, firstBadSeq: 1 })
  })

  it('accepts an empty log', async () => {
    expect(await verifyLines([])).toEqual({
      ok: true,
      count: 0,
      lastSeq: 0,
      lastHash: GENESIS_HASH,
      checkpoints: 0,
      lastCheckpoint: null,
      unsigned: 0,
    })
  })

  it.each([1, 4, N])('names record %i when a field of it is edited', async (k) => {
    const tampered = lines()
    tampered[k - 1] = canonicalJson({ ...at(k), decision: 'deny' })
    expect(await verifyLines(tampered)).toEqual({
      ok: false,
      firstBadSeq: k,
      reason: 'hash-mismatch',
    })
  })

  it.each([1, 4, N - 1])('names record %i when it is edited and re-hashed', async (k) => {
    const tampered = lines()
    tampered[k - 1] = forge(at(k), { target: 'https://evil.example/' })
    expect(await verifyLines(tampered)).toEqual({
      ok: false,
      firstBadSeq: k,
      reason: 'broken-chain',
    })
  })

  it.each([1, 4, N - 1])('names record %i when it is removed', async (k) => {
    const tampered = lines()
    tampered.splice(k - 1, 1)
    expect(await verifyLines(tampered)).toEqual({ ok: false, firstBadSeq: k, reason: 'seq-gap' })
  })

  it.each([1, 4, N - 1])('names record %i when it is swapped with the next', async (k) => {
    const tampered = lines()
    const [a, b] = tampered.splice(k - 1, 2)
    tampered.splice(k - 1, 0, b as string, a as string)
    expect(await verifyLines(tampered)).toEqual({ ok: false, firstBadSeq: k, reason: 'seq-order' })
  })

  it.each([1, 4, N])('names a record forged in at seq %i with a recomputed hash', async (k) => {
    const tampered = lines()
    const prevHash = k === 1 ? GENESIS_HASH : at(k - 1).hash
    const forged = forge({ ...at(1), seq: k, prevHash }, { target: 'https://evil.example/' })
    tampered.splice(k - 1, 0, forged)
    const result = await verifyLines(tampered)
    expect(result).toMatchObject({ ok: false, firstBadSeq: k })
  })

  it('names a forged record whose successors were renumbered, not re-hashed', async () => {
    const tampered = lines()
    const forged = forge({ ...at(4), prevHash: at(3).hash }, { target: 'https://evil.example/' })
    tampered.splice(3, 0, forged)
    for (let i = 4; i < tampered.length; i++) {
      const record = JSON.parse(tampered[i] as string) as AuditRecord
      tampered[i] = canonicalJson({ ...record, seq: record.seq + 1 })
    }
    expect(await verifyLines(tampered)).toMatchObject({ ok: false, firstBadSeq: 4 })
  })

  it('names the record before a forged one that does not link to it', async () => {
    const tampered = lines()
    tampered.splice(4, 0, forge(at(5), { prevHash: 'e'.repeat(64) }))
    // Either record 4 was changed and re-hashed, or the new record 5 is forged: 4 is in doubt.
    expect(await verifyLines(tampered)).toEqual({
      ok: false,
      firstBadSeq: 4,
      reason: 'broken-chain',
    })
  })

  it('names the seq a malformed line should have had', async () => {
    for (const bad of ['not json', '', '[]', '{"seq":3}', canonicalJson({ ...at(3), hash: 'x' })]) {
      const tampered = lines()
      tampered[2] = bad
      expect(await verifyLines(tampered)).toEqual({
        ok: false,
        firstBadSeq: 3,
        reason: 'malformed',
      })
    }
  })

  it('rejects a record re-encoded in another form, even with the same content', async () => {
    const reencoded = [
      JSON.stringify(at(3), null, 1).replaceAll('\n', ''),
      JSON.stringify(at(3)),
      canonicalJson(at(3)).replace('"host-call"', '"host\\u002dcall"'),
    ]
    for (const line of reencoded) {
      expect(JSON.parse(line)).toEqual(at(3))
      const tampered = lines()
      tampered[2] = line
      expect(await verifyLines(tampered)).toEqual({
        ok: false,
        firstBadSeq: 3,
        reason: 'malformed',
      })
    }
  })

  it('rejects a final line with no newline', async () => {
    const file = join(dir, 'torn.jsonl')
    await writeFile(file, pristine.slice(0, -1))
    expect(await verifyAuditFile(file)).toEqual({ ok: false, firstBadSeq: N, reason: 'malformed' })
  })

  describe('truncation of the end', () => {
    // Cutting records off the end leaves a valid, shorter chain: only an anchored head shows it.
    const cut = () => lines().slice(0, N - 3)

    it('passes without an anchor', async () => {
      expect(await verifyLines(cut())).toMatchObject({ ok: true, count: N - 3 })
    })

    it('fails with seq-gap against an anchored last seq', async () => {
      expect(await verifyLines(cut(), { expectLastSeq: N, expectLastHash: at(N).hash })).toEqual({
        ok: false,
        firstBadSeq: N - 2,
        reason: 'seq-gap',
      })
    })

    it('fails against an anchored hash alone', async () => {
      expect(await verifyLines(cut(), { expectLastHash: at(N).hash })).toEqual({
        ok: false,
        firstBadSeq: 1,
        reason: 'broken-chain',
      })
    })

    it('accepts records appended after the anchor was taken', async () => {
      const anchor = { expectLastSeq: 5, expectLastHash: at(5).hash }
      expect(await verifyLines(lines(), anchor)).toMatchObject({ ok: true, count: N })
    })

    it('detects a chain rebuilt under the anchor', async () => {
      const rebuilt: AuditRecord[] = []
      let prevHash = GENESIS_HASH
      for (const record of records) {
        const body = { ...record, prevHash, target: 'rewritten' }
        const next = { ...body, hash: computeRecordHash(body) }
        rebuilt.push(next)
        prevHash = next.hash
      }
      const text = rebuilt.map((r) => canonicalJson(r))
      expect(await verifyLines(text)).toMatchObject({ ok: true })
      expect(await verifyLines(text, { expectLastSeq: 5, expectLastHash: at(5).hash })).toEqual({
        ok: false,
        firstBadSeq: 1,
        reason: 'broken-chain',
      })
    })
  })
})

describe('verifyRecords', () => {
  it('verifies parsed records, and a page after a checkpoint', () => {
    expect(verifyRecords(records)).toMatchObject({ ok: true, count: N, lastHash: at(N).hash })
    expect(verifyRecords(records.slice(5), { after: { seq: 5, hash: at(5).hash } })).toMatchObject({
      ok: true,
      count: N - 5,
    })
    expect(verifyRecords(records.slice(5), { after: { seq: 5, hash: at(4).hash } })).toEqual({
      ok: false,
      firstBadSeq: 6,
      reason: 'broken-chain',
    })
  })

  it('reports the first missing seq of a page that starts late', () => {
    expect(verifyRecords(records.slice(2))).toEqual({
      ok: false,
      firstBadSeq: 1,
      reason: 'seq-gap',
    })
  })

  it('calls a non-record malformed', () => {
    expect(verifyRecords([at(1), null])).toEqual({ ok: false, firstBadSeq: 2, reason: 'malformed' })
    expect(verifyRecords([{ ...at(1), extra: 1n }])).toEqual({
      ok: false,
      firstBadSeq: 1,
      reason: 'malformed',
    })
  })

  it('rejects bad options with a TypeError', () => {
    expect(() => verifyRecords([], { expectLastHash: 'nope' })).toThrow(TypeError)
    expect(() => verifyRecords([], { after: { seq: -1, hash: GENESIS_HASH } })).toThrow(TypeError)
    expect(() =>
      verifyRecords([], { after: { seq: 5, hash: GENESIS_HASH }, expectLastSeq: 4 }),
    ).toThrow(TypeError)
  })
})

describe('properties', () => {
  const text = fc.option(fc.string({ unit: 'binary', maxLength: 40 }), { nil: null })
  const count = fc.option(fc.nat({ max: 1_000_000 }), { nil: null })
  const entry: fc.Arbitrary<AuditEntry> = fc.record({
    kind: fc.constantFrom(...AUDIT_KINDS),
    op: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
    decision: fc.constantFrom('allow' as const, 'deny' as const),
    invocationId: text,
    appId: text,
    actor: text,
    capability: text,
    target: text,
    reason: text,
    durationMs: fc.option(fc.double({ min: 0, max: 1e6, noNaN: true }), { nil: null }),
    bytesOut: count,
    bytesIn: count,
  })

  it('a log of any entries verifies', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { maxLength: 20 }), async (entries) => {
        const { file, records: built } = await buildLog(entries)
        const result = await verifyAuditFile(file)
        expect(result).toMatchObject({ ok: true, count: entries.length })
        expect(verifyRecords(built)).toEqual(result)
        await rm(file)
      }),
      { numRuns: 40 },
    )
  })

  it('any single-byte change of a log file is detected', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { minLength: 1, maxLength: 8 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 255 }),
        async (entries, where, delta) => {
          const { file } = await buildLog(entries)
          const bytes = await readFile(file)
          const index = Math.floor(where * bytes.length)
          bytes[index] = ((bytes[index] as number) + delta) % 256
          await writeFile(file, bytes)
          const result = await verifyAuditFile(file)
          expect(result.ok).toBe(false)
          await rm(file)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('a change of a letter or digit, which keeps the file parseable, is detected', async () => {
    const { text: full } = await buildLog(
      records.map(({ seq: _s, prevHash: _p, hash: _h, ...rest }) => rest as AuditEntry),
    )
    const alnum = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
    const positions = [...full].flatMap((char, i) => (alnum.includes(char) ? [i] : []))
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...positions),
        fc.integer({ min: 1, max: alnum.length - 1 }),
        async (index, shift) => {
          const char = alnum[(alnum.indexOf(full[index] as string) + shift) % alnum.length]
          const file = join(dir, `letter-${counter++}.jsonl`)
          await writeFile(file, full.slice(0, index) + char + full.slice(index + 1))
          const result = await verifyAuditFile(file)
          expect(result.ok).toBe(false)
          await rm(file)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('a byte change on one line of a log names that line', async () => {
    const { text: full } = await buildLog(
      records.map(({ seq: _seq, prevHash: _p, hash: _h, ...rest }) => rest as AuditEntry),
    )
    const offsets = [0]
    for (let i = 0; i < full.length; i++) {
      if (full[i] === '\n') {
        offsets.push(i + 1)
      }
    }
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: Buffer.byteLength(full) - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (index, delta) => {
          const bytes = Buffer.from(full)
          bytes[index] = ((bytes[index] as number) + delta) % 256
          const file = join(dir, `mutated-${counter++}.jsonl`)
          await writeFile(file, bytes)
          const result = await verifyAuditFile(file)
          const line = offsets.filter((o) => o <= index).length
          expect(result.ok).toBe(false)
          if (!result.ok) {
            expect(result.firstBadSeq).toBe(line)
          }
          await rm(file)
        },
      ),
      { numRuns: 200 },
    )
  })
})
