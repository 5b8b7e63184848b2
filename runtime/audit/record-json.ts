/**
 * Internal: the hash and the line of a record the log builds itself, in one encoding. A run
 * appends two or more records, and the generic {@link canonicalJson} (a key sort per object,
 * cycle and type checks) was most of their cost, done twice per record: once without `hash`
 * to hash it, once with it to write the line. A built record's shape is fixed (record.ts), so
 * its keys are written here in their sorted order from a table, and the line is the hashed text
 * with `"hash":"…"` put in its place. The bytes are exactly {@link canonicalJson}'s (a property
 * test holds the two together), and anything off the fixed shape goes the generic way, so the
 * existing `verify` checks what this writes unchanged.
 */
import { createHash } from 'node:crypto'
import { sha256 } from '../../core/sha256.js'
import { canonicalJson } from './canonical.js'
import type { AuditRecord } from './record.js'

// A record's keys in canonical (UTF-16 code unit) order, split where `hash` goes.
const BEFORE_HASH = [
  'actor',
  'appId',
  'bytesIn',
  'bytesOut',
  'calls',
  'capability',
  'checkpoint',
  'decision',
  'digest',
  'durationMs',
] as const
const AFTER_HASH = [
  'invocationId',
  'kind',
  'meter',
  'op',
  'prevHash',
  'reason',
  'seq',
  'target',
  'tokenJti',
  'ts',
] as const
const METER_KEYS = [
  'egressBytes',
  'fuelLimit',
  'fuelUsed',
  'hostCalls',
  'memoryLimitBytes',
  'memoryPeakBytes',
] as const
const CHECKPOINT_KEYS = ['every', 'hash', 'keyId', 'seq', 'sig'] as const
const RECORD_KEYS = new Set<string>([...BEFORE_HASH, ...AFTER_HASH])

// As canonical.ts: what JSON.stringify would escape.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

/** A scalar as canonicalJson writes it, or undefined when it is not a plain one. */
function scalar(value: unknown): string | undefined {
  if (value === null) {
    return 'null'
  }
  if (typeof value === 'string') {
    return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`
  }
  if (typeof value === 'number' && Number.isFinite(value)) {
    return String(value)
  }
  return undefined
}

/** A flat object of scalars with exactly `keys` (sorted), or undefined. */
function flat(value: unknown, keys: readonly string[]): string | undefined {
  if (value === null) {
    return 'null'
  }
  if (
    typeof value !== 'object' ||
    Array.isArray(value) ||
    Object.keys(value).length !== keys.length
  ) {
    return undefined
  }
  const object = value as Record<string, unknown>
  let out = '{'
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string
    const part = scalar(object[key])
    if (part === undefined) {
      return undefined
    }
    out += `${i === 0 ? '' : ','}"${key}":${part}`
  }
  return `${out}}`
}

/** `"k":v,…` of `keys` present in `body`; undefined when a value is off the fixed shape. */
function members(body: Record<string, unknown>, keys: readonly string[]): string | undefined {
  let out = ''
  for (const key of keys) {
    const value = body[key]
    let part: string | undefined
    if (key === 'meter') {
      part = flat(value, METER_KEYS)
    } else if (key === 'calls' && value === undefined) {
      continue
    } else if (key === 'checkpoint') {
      if (value === undefined) {
        continue
      }
      part = value === null ? undefined : flat(value, CHECKPOINT_KEYS)
    } else {
      part = scalar(value)
    }
    if (part === undefined) {
      return undefined
    }
    out += `${out === '' ? '' : ','}"${key}":${part}`
  }
  return out
}

/** A record and its line. */
export interface SealedRecord {
  record: AuditRecord
  /** `canonicalJson(record)` and a newline. */
  line: string
}

/**
 * `body` with its hash, frozen, and its line: `hash = sha256hex(prevHash ‖ canonicalJson(body))`,
 * the same as {@link computeRecordHash}.
 */
export function sealRecord(body: Omit<AuditRecord, 'hash'>): SealedRecord {
  const fields = body as unknown as Record<string, unknown>
  const known =
    Object.keys(fields).every((key) => RECORD_KEYS.has(key)) && typeof body.prevHash === 'string'
  const before = known ? members(fields, BEFORE_HASH) : undefined
  const after = before === undefined ? undefined : members(fields, AFTER_HASH)
  if (before === undefined || after === undefined) {
    return slow(body)
  }
  // One-shot: the same bytes as update(prevHash).update(json), without a Hash object (~2 µs).
  const hash = sha256(`${body.prevHash}{${before},${after}}`, 'hex')
  return {
    record: Object.freeze({ ...body, hash }),
    line: `{${before},"hash":"${hash}",${after}}\n`,
  }
}

/** @internal {@link sealRecord} by the generic encoder alone: what the fast path must equal. */
export function slow(body: Omit<AuditRecord, 'hash'>): SealedRecord {
  const hash = createHash('sha256')
    .update(String(body.prevHash))
    .update(canonicalJson(body))
    .digest('hex')
  const record = Object.freeze({ ...body, hash })
  return { record, line: `${canonicalJson(record)}\n` }
}
