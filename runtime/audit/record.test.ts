import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson } from './canonical.js'
import { GENESIS_HASH, buildRecord, computeRecordHash, sanitizeText } from './record.js'
import type { AuditEntry } from './record.js'

const UNSAFE_CHARS =
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Any UTF-16 code unit, lone surrogates included (fast-check's 'binary' unit has none). */
const utf16 = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit))

const context = { seq: 1, prevHash: GENESIS_HASH, now: () => Date.UTC(2025, 0, 1) }

describe('sanitizeText', () => {
  it('leaves ordinary text alone', () => {
    expect(sanitizeText('https://api.example.com/v1/items?q=é😀')).toBe(
      'https://api.example.com/v1/items?q=é😀',
    )
  })

  it('turns control characters into visible escapes', () => {
    expect(sanitizeText('a\nb\r\u0000\u001f\u007f\u0085\u009f\u2028\u2029')).toBe(
      'a\\u000ab\\u000d\\u0000\\u001f\\u007f\\u0085\\u009f\\u2028\\u2029',
    )
  })

  it('escapes bidi controls and lone surrogates, keeps surrogate pairs', () => {
    expect(sanitizeText('x\u202ey\u2066z\ud800😀\udc00')).toBe('x\\u202ey\\u2066z\\ud800😀\\udc00')
  })

  it('doubles backslashes so an escape always means a control character', () => {
    expect(sanitizeText('\\u000a')).toBe('\\\\u000a')
    expect(sanitizeText('\n')).not.toBe(sanitizeText('\\u000a'))
  })

  it('caps the length with an ellipsis, never splitting an escape or a pair', () => {
    expect(sanitizeText('abcdef', 4)).toBe('abc…')
    expect(sanitizeText('abcdef', 6)).toBe('abcdef')
    expect(sanitizeText('ab\ncdef', 8)).toBe('ab…')
    expect(sanitizeText('ab😀cd', 4)).toBe('ab…')
    expect(sanitizeText('x'.repeat(5000))).toHaveLength(1024)
  })

  it('rejects a cap below 1', () => {
    expect(() => sanitizeText('a', 0)).toThrow(TypeError)
  })

  it('always returns safe text within the cap', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 300 }),
          fc.string({ unit: utf16, maxLength: 300 }),
        ),
        fc.integer({ min: 1, max: 400 }),
        (text, max) => {
          const out = sanitizeText(text, max)
          expect(out.length).toBeLessThanOrEqual(max)
          expect(out).not.toMatch(UNSAFE_CHARS)
          expect(out).not.toMatch(LONE_SURROGATE)
          expect(JSON.stringify(out)).not.toMatch(/[\n\r\u2028\u2029]/)
        },
      ),
    )
  })
})

describe('buildRecord', () => {
  const entry: AuditEntry = { kind: 'host-call', op: 'fetch', decision: 'allow' }

  it('fills every absent field with null and hashes the rest', () => {
    const record = buildRecord(entry, context)
    expect(record).toEqual({
      seq: 1,
      ts: '2025-01-01T00:00:00.000Z',
      invocationId: null,
      appId: null,
      digest: null,
      tokenJti: null,
      actor: null,
      kind: 'host-call',
      capability: null,
      op: 'fetch',
      target: null,
      decision: 'allow',
      reason: null,
      durationMs: null,
      bytesOut: null,
      bytesIn: null,
      meter: null,
      prevHash: GENESIS_HASH,
      hash: record.hash,
    })
    expect(record.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(computeRecordHash(record)).toBe(record.hash)
    expect(Object.isFrozen(record)).toBe(true)
  })

  it('hashes prevHash ‖ canonical JSON of the record without hash', async () => {
    const { createHash } = await import('node:crypto')
    const { hash, ...body } = buildRecord(entry, { ...context, prevHash: 'a'.repeat(64) })
    expect(hash).toBe(
      createHash('sha256')
        .update('a'.repeat(64) + canonicalJson(body))
        .digest('hex'),
    )
  })

  it('has no `calls` unless the entry counts several calls (older records keep their bytes)', () => {
    expect(Object.keys(buildRecord(entry, context))).not.toContain('calls')
    const counted = buildRecord({ ...entry, bytesOut: 999, calls: 999 }, context)
    expect(counted).toMatchObject({ calls: 999, bytesOut: 999 })
    expect(computeRecordHash(counted)).toBe(counted.hash)
    // The same record without the field hashes otherwise: the count is under the chain.
    const { calls: _, ...single } = counted
    expect(computeRecordHash(single)).not.toBe(counted.hash)
  })

  it('refuses a `calls` that is not an integer ≥ 2 on a host-call record', () => {
    const bad: unknown[] = [0, 1, -2, 2.5, '3', null, Number.NaN, 2 ** 53]
    for (const calls of bad) {
      expect(() => buildRecord({ ...entry, calls } as AuditEntry, context)).toThrow(TypeError)
    }
    for (const kind of ['run', 'admin'] as const) {
      expect(() => buildRecord({ ...entry, kind, calls: 2 }, context)).toThrow(TypeError)
    }
  })

  it('keeps only the known fields', () => {
    const record = buildRecord({ ...entry, secret: 's3cr3t' } as AuditEntry, context)
    expect(JSON.stringify(record)).not.toContain('s3cr3t')
  })

  it('normalises ts and rounds durationMs to the microsecond', () => {
    const record = buildRecord(
      { ...entry, ts: '2025-06-01T12:00:00+02:00', durationMs: 1.23456789 },
      context,
    )
    expect(record.ts).toBe('2025-06-01T10:00:00.000Z')
    expect(record.durationMs).toBe(1.235)
  })

  it('records a run end with its metering', () => {
    const record = buildRecord(
      {
        kind: 'run',
        op: 'end',
        decision: 'allow',
        reason: 'fuel_exhausted',
        durationMs: 12,
        bytesOut: 0,
        meter: {
          fuelUsed: 100,
          fuelLimit: 100,
          memoryPeakBytes: null,
          memoryLimitBytes: 65536,
          hostCalls: 3,
          egressBytes: 0,
        },
      },
      context,
    )
    expect(record.meter).toEqual({
      fuelUsed: 100,
      fuelLimit: 100,
      memoryPeakBytes: null,
      memoryLimitBytes: 65536,
      hostCalls: 3,
      egressBytes: 0,
    })
  })

  it.each([
    ['an unknown kind', { ...entry, kind: 'other' }],
    ['an unknown decision', { ...entry, decision: 'maybe' }],
    ['an empty op', { ...entry, op: '' }],
    ['a non-string target', { ...entry, target: 42 }],
    ['a negative duration', { ...entry, durationMs: -1 }],
    ['an infinite duration', { ...entry, durationMs: Number.POSITIVE_INFINITY }],
    ['a fractional byte count', { ...entry, bytesOut: 1.5 }],
    ['a bad ts', { ...entry, ts: 'yesterday' }],
    ['a bad meter figure', { ...entry, meter: { fuelUsed: -1 } }],
  ])('rejects %s with a TypeError', (_name, bad) => {
    expect(() => buildRecord(bad as unknown as AuditEntry, context)).toThrow(TypeError)
  })

  it('redacts, then sanitises, every text field', () => {
    const record = buildRecord(
      {
        ...entry,
        target: 'https://x/?k=SECRET\n',
        reason: 'SECRET',
        actor: 'SECRET',
        appId: 'SECRET',
        op: 'SECRET',
      },
      { ...context, redact: (text) => text.replaceAll('SECRET', '\u0007[redacted]') },
    )
    expect(JSON.stringify(record)).not.toContain('SECRET')
    expect(record.target).toBe('https://x/?k=\\u0007[redacted]\\u000a')
    expect(record.op).toBe('\\u0007[redacted]')
  })
})
