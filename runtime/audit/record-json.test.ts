import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson } from './canonical.js'
import { buildCheckpointRecord } from './checkpoint.js'
import type { AuditSigningKey } from './checkpoint.js'
import { sealRecord, slow } from './record-json.js'
import { GENESIS_HASH, buildRecord, buildSealedRecord, computeRecordHash } from './record.js'
import type { AuditEntry, AuditRecord } from './record.js'

/** Any UTF-16 code unit, lone surrogates included. */
const utf16 = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit))
const text = fc.option(
  fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: utf16, maxLength: 40 })),
  { nil: undefined },
)
const nullable = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: null })
const count = nullable(fc.nat())

const entry: fc.Arbitrary<AuditEntry> = fc.record({
  invocationId: text,
  appId: text,
  digest: text,
  tokenJti: text,
  actor: text,
  kind: fc.constantFrom('host-call', 'admin', 'run'),
  capability: text,
  op: fc.string({ unit: utf16, minLength: 1, maxLength: 20 }),
  target: text,
  decision: fc.constantFrom('allow', 'deny'),
  reason: text,
  durationMs: nullable(fc.double({ min: 0, max: 2 ** 40, noNaN: true })),
  bytesOut: count,
  bytesIn: count,
  meter: nullable(
    fc.record({
      fuelUsed: count,
      fuelLimit: count,
      memoryPeakBytes: count,
      memoryLimitBytes: count,
      hostCalls: count,
      egressBytes: count,
    }),
  ),
})

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/)

/** What the generic encoder writes and hashes: the contract the fast path must keep. */
function expectCanonical({ record, line }: { record: AuditRecord; line: string }): void {
  expect(line).toBe(`${canonicalJson(record)}\n`)
  expect(record.hash).toBe(computeRecordHash(record))
  expect(Object.isFrozen(record)).toBe(true)
}

describe('sealRecord', () => {
  it('write the bytes and hash of canonicalJson for every record the log builds', () => {
    fc.assert(
      fc.property(entry, fc.nat(), hex64, (e, seq, prevHash) => {
        const sealed = buildSealedRecord(e, {
          seq: seq + 1,
          prevHash,
          now: () => 1_700_000_000_000,
        })
        expectCanonical(sealed)
        const { hash: _, ...body } = sealed.record
        expect(sealed).toEqual(slow(body))
      }),
      { numRuns: 500 },
    )
  })

  it('do the same for checkpoint records', () => {
    const key = {
      keyId: 'k'.repeat(43),
      signCheckpoint: () => 's'.repeat(86),
    } as unknown as AuditSigningKey
    fc.assert(
      fc.property(fc.nat(), hex64, fc.integer({ min: 1, max: 1_000_000 }), (seq, hash, every) => {
        const record = buildCheckpointRecord(
          { seq, hash },
          { ts: '2026-11-27T20:00:00.000Z', every, key },
        )
        const { hash: _, ...body } = record
        expectCanonical(sealRecord(body))
        expect(sealRecord(body)).toEqual(slow(body))
      }),
    )
  })

  it('do the same for host-call records that count several calls', () => {
    fc.assert(
      fc.property(entry, fc.integer({ min: 2, max: 2 ** 40 }), hex64, (e, calls, prevHash) => {
        const sealed = buildSealedRecord(
          { ...e, kind: 'host-call', calls },
          { seq: 1, prevHash, now: () => 1_700_000_000_000 },
        )
        expect(sealed.record.calls).toBe(calls)
        expectCanonical(sealed)
        const { hash: _, ...body } = sealed.record
        expect(sealed).toEqual(slow(body))
      }),
      { numRuns: 200 },
    )
  })

  it('fall back to the generic encoder for anything off the fixed shape', () => {
    const base = buildRecord(
      { kind: 'admin', op: 'x', decision: 'allow' },
      { seq: 1, prevHash: GENESIS_HASH, now: () => 0 },
    )
    const { hash: _, ...body } = base
    const odd: Record<string, unknown>[] = [
      { ...body, extra: 1 },
      { ...body, meter: { fuelUsed: 1 } },
      {
        ...body,
        meter: { ...Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((k) => [k, 1])) },
      },
      { ...body, target: ['a'] },
      { ...body, checkpoint: null },
      { ...body, calls: null },
      { ...body, calls: '2' },
      { ...body, bytesIn: undefined },
    ]
    for (const shape of odd) {
      const body = shape as unknown as Omit<AuditRecord, 'hash'>
      const sealed = sealRecord(body)
      expectCanonical(sealed)
      expect(sealed).toEqual(slow(body))
    }
  })
})
