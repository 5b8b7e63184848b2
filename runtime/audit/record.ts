/**
 * The audit record (DESIGN.md "Audit record"): its shape, its hash, and how a caller's entry
 * becomes a record that no guest string can forge, split or fill with a secret.
 */
import { createHash } from 'node:crypto'
import { canonicalJson } from './canonical.js'
import { sealRecord } from './record-json.js'
import type { SealedRecord } from './record-json.js'

/** The `prevHash` of the first record of a log: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64)

/**
 * What a record is about.
 *
 * - `host-call`: one host call by a guest, allowed or denied. `capability` is the interface
 *   (`warden:platform/http`), `op` the function (`fetch`), `target` what it was aimed at (the
 *   URL before secret substitution, the collection/key, the secret's name).
 * - `admin`: one admin action. `actor` is who (`admin:<key id>`), `op` what (`token.grant`),
 *   `target` on what (the jti, the app id).
 * - `run`: a run's start (`op: 'start'`) and end (`op: 'end'`). At the end `reason` is the
 *   outcome (`ok`, `err` or a Warden error code), `durationMs` the wall time, `bytesOut` the
 *   egress bytes and `meter` the rest of the metering report. A run refused before it started
 *   is a `start` with `decision: 'deny'` and the error code as `reason`.
 */
export type AuditKind = 'host-call' | 'admin' | 'run'

/** Every {@link AuditKind}. */
export const AUDIT_KINDS: readonly AuditKind[] = ['host-call', 'admin', 'run']

/**
 * What a `checkpoint` record adds: an Ed25519 signature, by a key kept outside the log, over
 * the seq and hash of the record just before it (and so over the whole chain up to there).
 * Only the log writes checkpoints; a caller's entry can never be one.
 *
 * The signed bytes are `warden-audit-checkpoint/v1\n` followed by the canonical JSON of
 * `{ every, hash, keyId, seq, ts }`, where `ts` is the checkpoint record's own `ts`.
 */
export interface AuditCheckpoint {
  /** The seq of the record signed for: the checkpoint's own seq minus one (0 for an empty log). */
  seq: number
  /** That record's hash, equal to the checkpoint's `prevHash`. */
  hash: string
  /**
   * The promise about what follows: the next checkpoint comes within this many records. A
   * verifier with the key refuses a longer run (checkpoints removed from a rebuilt chain).
   */
  every: number
  /** RFC 7638 thumbprint of the public key (base64url), which names the key to check with. */
  keyId: string
  /** The Ed25519 signature, base64url (86 characters). */
  sig: string
}

/** Whether the action was carried out. */
export type AuditDecision = 'allow' | 'deny'

/** The metering figures of a `run` end record; null where the host could not read them. */
export interface AuditMeter {
  fuelUsed: number | null
  fuelLimit: number | null
  memoryPeakBytes: number | null
  memoryLimitBytes: number | null
  hostCalls: number | null
  egressBytes: number | null
}

const METER_FIELDS = [
  'fuelUsed',
  'fuelLimit',
  'memoryPeakBytes',
  'memoryLimitBytes',
  'hostCalls',
  'egressBytes',
] as const satisfies readonly (keyof AuditMeter)[]

/**
 * One line of the audit log. Every field is present (but `checkpoint`, only on checkpoints);
 * what does not apply is `null`, so the canonical JSON, and so the hash, never depends on how
 * the record was built.
 * `hash = sha256hex(prevHash ‖ canonicalJson(record without hash))`.
 *
 * Numbers are non-negative integers, except `durationMs`, rounded to the microsecond: none is
 * ever written with an exponent, so any RFC 8785 (JCS) encoder reproduces the same bytes.
 */
export interface AuditRecord {
  /** 1, 2, 3… with no gap: line n of the log holds seq n. */
  seq: number
  /** ISO 8601, UTC, milliseconds. */
  ts: string
  invocationId: string | null
  appId: string | null
  /** The component digest, `sha256:…`. */
  digest: string | null
  tokenJti: string | null
  /** Who acted: `app:<id>` for a guest, `admin:<key id>` for an admin. */
  actor: string | null
  /** An entry's kind, or `checkpoint` for the log's own signed checkpoints. */
  kind: AuditKind | 'checkpoint'
  /** The WIT interface of a host call, `warden:platform/http`. */
  capability: string | null
  op: string
  target: string | null
  decision: AuditDecision
  /** Why: the denial's rule or error code, a run's outcome. */
  reason: string | null
  durationMs: number | null
  bytesOut: number | null
  bytesIn: number | null
  /** Only on `run` records (DESIGN.md extension: the metering report's figures). */
  meter: AuditMeter | null
  /**
   * Only on `checkpoint` records, and absent (not null) on every other record, so that records
   * written before checkpoints existed keep their bytes and hashes.
   */
  checkpoint?: AuditCheckpoint
  /**
   * Only on a `host-call` record that stands for more than one host call of its run (identical
   * calls, or allowed writes of one output: see `groupHostCalls`): how many, at least 2. Then
   * `bytesOut`, `bytesIn` and `durationMs` are the sums over those calls. Absent (not null) on
   * every other record, so a record without it is one call, and older records keep their bytes
   * and hashes.
   */
  calls?: number
  /** The previous record's `hash`; {@link GENESIS_HASH} for seq 1. */
  prevHash: string
  /** Lowercase hex SHA-256. */
  hash: string
}

/**
 * What a caller appends: a record without `seq`, `prevHash` and `hash`, which the log assigns,
 * and with `ts` optional (default: now). Omitted nullable fields become `null`.
 *
 * @example
 * const entry: AuditEntry = {
 *   kind: 'host-call', invocationId, appId, digest, tokenJti, actor: `app:${appId}`,
 *   capability: 'warden:platform/http', op: 'fetch', target: url,
 *   decision: 'deny', reason: 'host not granted', durationMs: 0.2,
 * }
 */
export interface AuditEntry {
  /** ISO 8601; normalised to UTC with milliseconds. Default: the log's clock. */
  ts?: string
  invocationId?: string | null
  appId?: string | null
  digest?: string | null
  tokenJti?: string | null
  actor?: string | null
  kind: AuditKind
  capability?: string | null
  op: string
  target?: string | null
  decision: AuditDecision
  reason?: string | null
  durationMs?: number | null
  bytesOut?: number | null
  bytesIn?: number | null
  meter?: AuditMeter | null
  /** How many host calls a `host-call` record stands for (see {@link AuditRecord.calls}); ≥ 2. */
  calls?: number
}

/** The free-text fields of a record: each is redacted, then sanitised, before hashing. */
const TEXT_FIELDS = [
  'invocationId',
  'appId',
  'digest',
  'tokenJti',
  'actor',
  'capability',
  'target',
  'reason',
] as const satisfies readonly (keyof AuditEntry)[]

/** The default cap of {@link sanitizeText}, in UTF-16 code units. */
export const MAX_TEXT_LENGTH = 1024

// C0, DEL, C1, the JSON-hostile line and paragraph separators, the bidi controls that can make
// a line display as something else ("Trojan Source", CVE-2021-42574), lone surrogates, and the
// backslash itself, so that an escape in the output always means the input had that character.
const UNSAFE = new RegExp(
  [
    '[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\\\]',
    '[\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]',
    '[\\ud800-\\udbff](?![\\udc00-\\udfff])',
    '(?<![\\ud800-\\udbff])[\\udc00-\\udfff]',
  ].join('|'),
)

/**
 * Make a guest-controlled string safe to record and to display: control characters (U+0000–
 * U+001F, U+007F–U+009F), U+2028, U+2029, bidi controls and lone surrogates become visible
 * `\uXXXX` text, a backslash becomes `\\`, and the result is capped at `maxLength` UTF-16 code
 * units, ending with `…` when cut. A cut never splits an escape or a surrogate pair.
 *
 * @example
 * sanitizeText('a\nb') // 'a\\u000ab' (shown as a\u000ab)
 */
export function sanitizeText(text: string, maxLength: number = MAX_TEXT_LENGTH): string {
  if (!Number.isSafeInteger(maxLength) || maxLength < 1) {
    throw new TypeError('sanitizeText: maxLength must be a positive integer')
  }
  if (text.length <= maxLength && !UNSAFE.test(text)) {
    return text
  }
  const pieces: string[] = []
  let used = 0
  let cut = false
  // NB: for…of walks code points, so a surrogate pair stays one piece and a lone one is alone.
  for (const char of text) {
    const piece = char.length === 1 && UNSAFE.test(char) ? escapeChar(char) : char
    if (used + piece.length > maxLength) {
      cut = true
      break
    }
    pieces.push(piece)
    used += piece.length
  }
  if (!cut) {
    return pieces.join('')
  }
  while (used + 1 > maxLength) {
    used -= pieces.pop()?.length ?? 0
  }
  return `${pieces.join('')}…`
}

function escapeChar(char: string): string {
  return char === '\\' ? '\\\\' : `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`
}

/**
 * The hash of a record: `sha256hex(prevHash ‖ canonicalJson(record without hash))`. Any `hash`
 * property on the argument is ignored.
 *
 * @example
 * computeRecordHash(record) === record.hash // true for an untouched record
 */
export function computeRecordHash(record: Omit<AuditRecord, 'hash'> | AuditRecord): string {
  return hashRecordObject(record as unknown as Readonly<Record<string, unknown>>)
}

/** {@link computeRecordHash} for any parsed object. Throws TypeError if it is not JSON. */
export function hashRecordObject(record: Readonly<Record<string, unknown>>): string {
  const body: Record<string, unknown> = { ...record }
  delete body.hash
  return createHash('sha256')
    .update(String(body.prevHash))
    .update(canonicalJson(body))
    .digest('hex')
}

/** How {@link buildRecord} fills in what the log owns. */
export interface RecordContext {
  seq: number
  prevHash: string
  /** Epoch ms, used when the entry has no `ts`. */
  now: () => number
  /** Applied to every free-text field before it is sanitised and hashed. */
  redact?: ((text: string) => string) | undefined
}

/**
 * Turn a caller's entry into a frozen, hashed record: validate it (TypeError on host misuse),
 * redact and sanitise every free-text field, fill absent fields with `null`. Extra properties
 * on the entry are dropped, so nothing reaches the log that this module did not vet.
 */
export function buildRecord(entry: AuditEntry, context: RecordContext): AuditRecord {
  return buildSealedRecord(entry, context).record
}

/** @internal {@link buildRecord}, with the record's line for the log to write. */
export function buildSealedRecord(entry: AuditEntry, context: RecordContext): SealedRecord {
  if (typeof entry !== 'object' || entry === null) {
    throw new TypeError('audit entry: must be an object')
  }
  if (!AUDIT_KINDS.includes(entry.kind)) {
    throw new TypeError('audit entry: kind must be host-call, admin or run')
  }
  if (entry.decision !== 'allow' && entry.decision !== 'deny') {
    throw new TypeError('audit entry: decision must be allow or deny')
  }
  if (typeof entry.op !== 'string' || entry.op === '') {
    throw new TypeError('audit entry: op must be a non-empty string')
  }
  const text = (name: string, value: unknown): string | null => {
    if (value === undefined || value === null) {
      return null
    }
    if (typeof value !== 'string') {
      throw new TypeError(`audit entry: ${name} must be a string or null`)
    }
    const redacted = context.redact ? context.redact(value) : value
    if (typeof redacted !== 'string') {
      throw new TypeError('audit log: redact must return a string')
    }
    return sanitizeText(redacted)
  }
  const texts = {} as Record<(typeof TEXT_FIELDS)[number], string | null>
  for (const name of TEXT_FIELDS) {
    texts[name] = text(name, entry[name])
  }
  const body: Omit<AuditRecord, 'hash'> = {
    seq: context.seq,
    ts: timestamp(entry.ts, context.now),
    invocationId: texts.invocationId,
    appId: texts.appId,
    digest: texts.digest,
    tokenJti: texts.tokenJti,
    actor: texts.actor,
    kind: entry.kind,
    capability: texts.capability,
    op: text('op', entry.op) as string,
    target: texts.target,
    decision: entry.decision,
    reason: texts.reason,
    durationMs: duration(entry.durationMs),
    bytesOut: count('bytesOut', entry.bytesOut),
    bytesIn: count('bytesIn', entry.bytesIn),
    meter: meter(entry.meter),
    prevHash: context.prevHash,
  }
  if (body.meter) {
    Object.freeze(body.meter)
  }
  if (entry.calls !== undefined) {
    if (entry.kind !== 'host-call' || !Number.isSafeInteger(entry.calls) || entry.calls < 2) {
      throw new TypeError('audit entry: calls must be an integer ≥ 2, on a host-call record')
    }
    body.calls = entry.calls
  }
  return sealRecord(body)
}

function timestamp(ts: unknown, now: () => number): string {
  if (ts === undefined) {
    const ms = now()
    if (!Number.isFinite(ms)) {
      throw new TypeError('audit log: now() must return epoch milliseconds')
    }
    return new Date(ms).toISOString()
  }
  const ms = typeof ts === 'string' ? Date.parse(ts) : Number.NaN
  if (Number.isNaN(ms)) {
    throw new TypeError('audit entry: ts must be an ISO 8601 date')
  }
  return new Date(ms).toISOString()
}

function duration(value: unknown): number | null {
  if (value === undefined || value === null) {
    return null
  }
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 2 ** 40) {
    throw new TypeError('audit entry: durationMs must be a non-negative number of ms')
  }
  // NB: microseconds at most, so the number never prints with an exponent (see AuditRecord).
  return Math.round(value * 1000) / 1000
}

function count(name: string, value: unknown): number | null {
  if (value === undefined || value === null) {
    return null
  }
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`audit entry: ${name} must be a non-negative integer`)
  }
  return value
}

function meter(value: unknown): AuditMeter | null {
  if (value === undefined || value === null) {
    return null
  }
  if (typeof value !== 'object') {
    throw new TypeError('audit entry: meter must be an object or null')
  }
  const source = value as Record<string, unknown>
  const out = {} as AuditMeter
  for (const name of METER_FIELDS) {
    out[name] = count(`meter.${name}`, source[name])
  }
  return out
}
