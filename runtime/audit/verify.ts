/**
 * Verify an audit log: recompute every hash, follow the `prevHash` chain, check that seq counts
 * 1, 2, 3… and, for a file, that every line is the canonical encoding of its record. Given the
 * checkpoint key, also check every signed checkpoint and that none is missing.
 *
 * What this proves, and what it cannot: any edit, removal, reordering or insertion of records is
 * detected, naming the first seq that can no longer be trusted. Whoever can write the file can
 * also rebuild the whole chain after an edit; with the checkpoint key (kept outside the file)
 * that is detected too, since the signatures no longer match the rebuilt chain. What neither
 * catches: records removed from the END (a shorter log is still a valid log, back to any
 * checkpoint), and records after the last checkpoint, which only the chain covers. Both are
 * only detectable against a head (`seq`, `hash`) kept where the writer of the file cannot
 * rewrite it: pass it as `expectLastSeq`/`expectLastHash`.
 */
import { createPublicKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { canonicalJson } from './canonical.js'
import { auditKeyId, checkpointOf, checkpointSignatureValid } from './checkpoint.js'
import { readLines } from './lines.js'
import { GENESIS_HASH, hashRecordObject } from './record.js'
import type { AuditRecord } from './record.js'

/**
 * Why verification failed.
 *
 * - `hash-mismatch`: a record's content does not match its own hash (an edited record).
 * - `broken-chain`: a record's `prevHash` is not the previous record's hash, or the chain does
 *   not lead to the expected head (`expectLastHash`).
 * - `seq-gap`: seq skips ahead (records removed; at the end: the log was truncated below
 *   `expectLastSeq`).
 * - `seq-order`: seq goes back or repeats (records swapped or inserted).
 * - `malformed`: not a record: not JSON, not UTF-8, missing `seq`/`prevHash`/`hash`, not in
 *   canonical form, or a final line with no newline (a torn write).
 * - `bad-checkpoint`: a checkpoint does not verify with the key: its signature is forged, made by
 *   another key, or over another chain (the records before it were rebuilt), or it does not
 *   cover the record before it. Also without a key, for a checkpoint that is not well formed.
 * - `missing-checkpoint` (with the key only): more records follow a checkpoint than it promised
 *   (`every`), or a log with records has no checkpoint at all: checkpoints were removed.
 *
 * With the key, `firstBadSeq` of these is the seq after the last checkpoint that verified (1 if
 * none did): every record after it may have been rewritten.
 */
export type AuditVerifyFailureReason =
  | 'hash-mismatch'
  | 'broken-chain'
  | 'seq-gap'
  | 'seq-order'
  | 'malformed'
  | 'bad-checkpoint'
  | 'missing-checkpoint'

/** A failed verification. Every record with seq below `firstBadSeq` verified. */
export interface AuditVerifyFailure {
  ok: false
  /**
   * The first seq the verifier cannot vouch for; for a malformed line, the seq it should have
   * had. When two intact records do not link, the earlier of them: the chain cannot tell
   * whether it was changed and re-hashed or the later one forged.
   */
  firstBadSeq: number
  reason: AuditVerifyFailureReason
}

/** A verified chain. */
export interface AuditVerifySuccess {
  ok: true
  /** Records verified. */
  count: number
  /** The seq of the last record (`after.seq` when there were none). */
  lastSeq: number
  /** The hash of the last record: anchor it somewhere else to detect a later truncation. */
  lastHash: string
  /** Checkpoint records met; their signatures were checked only with `checkpointKey`. */
  checkpoints: number
  /**
   * The last checkpoint whose signature verified: its seq and time. Null without
   * `checkpointKey`, or when there is none.
   */
  lastCheckpoint: { seq: number; ts: string } | null
  /**
   * Records after `lastCheckpoint` (every record, when it is null): the hash chain alone vouches
   * for them, so they may have been rewritten, or cut, by whoever can write the file.
   */
  unsigned: number
}

/** What {@link verifyRecords} and {@link verifyAuditFile} return. */
export type AuditVerifyResult = AuditVerifySuccess | AuditVerifyFailure

/** Options of {@link verifyRecords} and {@link verifyAuditFile}. */
export interface AuditVerifyOptions {
  /**
   * The records continue after this already-verified one (a checkpoint, or the page before).
   * Default: the genesis, `{ seq: 0, hash: GENESIS_HASH }`.
   */
  after?: { seq: number; hash: string }
  /**
   * An externally anchored head: the log reached at least this seq. Fewer records fail with
   * `seq-gap` at the first missing seq. Records appended since the anchor was taken are fine.
   */
  expectLastSeq?: number
  /**
   * The hash of record `expectLastSeq` (or, without it, of the last record). A mismatch fails
   * with `broken-chain` at the first verified seq: the chain was rebuilt somewhere before it.
   */
  expectLastHash?: string
  /**
   * The public key of the checkpoints (or the signing key: its public half is used). With it,
   * every checkpoint's signature is checked, a run longer than a checkpoint's `every` fails, and
   * so does a log with records but no checkpoint (unless `after` is given: a page may have
   * none). Without it, checkpoints are checked as records only.
   */
  checkpointKey?: KeyObject
}

const HEX64 = /^[0-9a-f]{64}$/

/**
 * Verify records given as objects (from a Redis stream, a `GET /v1/audit` page, a parsed file).
 *
 * @example
 * const page = await log.read({ fromSeq: 101, limit: 100 })
 * verifyRecords(page, { after: { seq: 100, hash: checkpointHash } })
 */
export function verifyRecords(
  records: Iterable<unknown>,
  options: AuditVerifyOptions = {},
): AuditVerifyResult {
  const verifier = createChainVerifier(options)
  for (const record of records) {
    const verdict = verifier.push(record)
    if (verdict) {
      return verdict
    }
  }
  return verifier.finish()
}

/**
 * Verify an audit log file, streaming it (it may be large): every line must be the canonical
 * JSON of a record whose hash, `prevHash` and seq all check out, and the file must end with a
 * newline. Memory use does not grow with the file. A missing file rejects (ENOENT).
 *
 * @example
 * const result = await verifyAuditFile('.warden/audit.jsonl', { expectLastSeq, expectLastHash })
 * if (!result.ok) console.error(`audit log bad from seq ${result.firstBadSeq}: ${result.reason}`)
 */
export function verifyAuditFile(
  file: string,
  options: AuditVerifyOptions = {},
): Promise<AuditVerifyResult> {
  return verifyAuditFileUpTo(file, options)
}

/**
 * Internal: {@link verifyAuditFile} over the bytes before `end` (the log's durable part), from
 * byte `start` (a line start; the records there continue after `options.after`). `onLine` is
 * called with each line (without its `\n`) once it verified.
 */
export async function verifyAuditFileUpTo(
  file: string,
  options: AuditVerifyOptions,
  end?: number,
  start = 0,
  onLine?: (line: string) => void,
): Promise<AuditVerifyResult> {
  const verifier = createChainVerifier(options)
  for await (const line of readLines(file, end === undefined ? { start } : { start, end })) {
    const raw = line.terminated ? line.text : null
    let item: unknown = NOT_A_RECORD
    if (raw !== null) {
      try {
        item = JSON.parse(raw)
      } catch {
        // stays NOT_A_RECORD: reported as malformed
      }
    }
    const verdict = verifier.push(item, raw)
    if (verdict) {
      return verdict
    }
    if (raw !== null) {
      onLine?.(raw)
    }
  }
  return verifier.finish()
}

/**
 * Internal: parse one line as a record that is intact on its own (shape, own hash, canonical
 * form). Used on open to trust the last record of a log. Undefined if it is not.
 */
export function parseRecordLine(text: string): AuditRecord | undefined {
  let item: unknown
  try {
    item = JSON.parse(text)
  } catch {
    return undefined
  }
  if (!hasRecordShape(item)) {
    return undefined
  }
  try {
    if (hashRecordObject(item) !== item.hash || canonicalJson(item) !== text) {
      return undefined
    }
  } catch {
    return undefined
  }
  return item as unknown as AuditRecord
}

const NOT_A_RECORD = Symbol('not a record')

interface RecordShape extends Record<string, unknown> {
  seq: number
  prevHash: string
  hash: string
}

function hasRecordShape(item: unknown): item is RecordShape {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return false
  }
  const record = item as Record<string, unknown>
  return (
    Number.isSafeInteger(record.seq) &&
    (record.seq as number) >= 1 &&
    typeof record.prevHash === 'string' &&
    HEX64.test(record.prevHash) &&
    typeof record.hash === 'string' &&
    HEX64.test(record.hash)
  )
}

function checkAnchor(name: string, anchor: { seq: number; hash: string }): void {
  if (!Number.isSafeInteger(anchor.seq) || anchor.seq < 0 || !HEX64.test(anchor.hash)) {
    throw new TypeError(`verify: ${name} must be { seq: integer ≥ 0, hash: 64 hex digits }`)
  }
}

/**
 * The chain check as a state machine fed one record at a time, so that a file is verified as
 * it streams. `push` answers a failure as soon as one is certain; `finish` answers the rest.
 */
function createChainVerifier(options: AuditVerifyOptions) {
  const start = options.after ?? { seq: 0, hash: GENESIS_HASH }
  checkAnchor('after', start)
  const { expectLastSeq, expectLastHash } = options
  if (
    expectLastSeq !== undefined &&
    (!Number.isSafeInteger(expectLastSeq) || expectLastSeq < start.seq)
  ) {
    throw new TypeError('verify: expectLastSeq must be an integer, not before `after.seq`')
  }
  if (expectLastHash !== undefined && !HEX64.test(expectLastHash)) {
    throw new TypeError('verify: expectLastHash must be 64 lowercase hex digits')
  }
  const key = options.checkpointKey === undefined ? undefined : publicKeyOf(options.checkpointKey)
  const keyId = key === undefined ? '' : auditKeyId(key)
  let expectedSeq = start.seq + 1
  let expectedPrev = start.hash
  // The prevHash of the last accepted record.
  let previousPrev: string | undefined
  let count = 0
  let hashAtExpected = expectLastSeq === start.seq ? start.hash : undefined
  // A record that skipped ahead: a gap or a swap, told apart by the record after it.
  let skipped: { firstBadSeq: number; seq: number } | undefined
  let checkpoints = 0
  let lastCheckpoint: { seq: number; ts: string } | null = null
  // The seq up to which signatures vouch for the log (the caller vouches for `after`), the
  // records since, and how many the last checkpoint allowed (unknown before the first).
  let signedUpTo = start.seq
  let unsigned = 0
  let allowed: number | undefined

  const fail = (reason: AuditVerifyFailureReason, firstBadSeq: number): AuditVerifyFailure => ({
    ok: false,
    firstBadSeq,
    reason,
  })

  function push(item: unknown, raw?: string | null): AuditVerifyFailure | undefined {
    if (skipped) {
      const back = hasRecordShape(item) && item.seq < skipped.seq
      return fail(back ? 'seq-order' : 'seq-gap', skipped.firstBadSeq)
    }
    const expected = expectedSeq
    if (raw === null || !hasRecordShape(item)) {
      return fail('malformed', expected)
    }
    // Two records naming the same predecessor: one of them was inserted, so the earlier one is
    // already in doubt.
    const contested = previousPrev !== undefined && item.prevHash === previousPrev
    const firstBad = contested ? expected - 1 : expected
    let hash: string
    try {
      hash = hashRecordObject(item)
    } catch {
      return fail('malformed', expected)
    }
    if (hash !== item.hash) {
      return fail('hash-mismatch', firstBad)
    }
    if (item.seq > expected) {
      skipped = { firstBadSeq: firstBad, seq: item.seq }
      return undefined
    }
    if (item.seq < expected) {
      return fail('seq-order', firstBad)
    }
    if (item.prevHash !== expectedPrev) {
      // Both records are intact on their own but do not link: either the previous one was
      // changed and re-hashed, or this one was forged. The previous one is the first in doubt.
      return fail('broken-chain', previousPrev === undefined ? expected : expected - 1)
    }
    if (raw !== undefined) {
      let canonical: string | undefined
      try {
        canonical = canonicalJson(item)
      } catch {
        canonical = undefined
      }
      // Same record, other bytes (whitespace, key order, `\u00e9` for `é`): not what we wrote.
      if (canonical !== raw) {
        return fail('malformed', expected)
      }
    }
    if (item.kind === 'checkpoint') {
      const checkpoint = checkpointOf(item)
      if (!checkpoint) {
        // Without the key only the chain vouches for anything, and it does up to this record.
        return fail('bad-checkpoint', key ? signedUpTo + 1 : expected)
      }
      checkpoints++
      if (key) {
        if (!checkpointSignatureValid(checkpoint, item.ts as string, key, keyId)) {
          return fail('bad-checkpoint', signedUpTo + 1)
        }
        lastCheckpoint = { seq: item.seq, ts: item.ts as string }
        signedUpTo = item.seq
        unsigned = 0
        allowed = checkpoint.every
      } else {
        unsigned++
      }
    } else {
      unsigned++
      if (key && allowed !== undefined && unsigned > allowed) {
        return fail('missing-checkpoint', signedUpTo + 1)
      }
    }
    count++
    previousPrev = item.prevHash
    expectedSeq = item.seq + 1
    expectedPrev = item.hash
    if (item.seq === expectLastSeq) {
      hashAtExpected = item.hash
    }
    return undefined
  }

  function finish(): AuditVerifyResult {
    if (skipped) {
      return fail('seq-gap', skipped.firstBadSeq)
    }
    const lastSeq = expectedSeq - 1
    if (expectLastSeq !== undefined && lastSeq < expectLastSeq) {
      return fail('seq-gap', lastSeq + 1)
    }
    if (expectLastHash !== undefined) {
      const head = expectLastSeq === undefined ? expectedPrev : hashAtExpected
      if (head !== expectLastHash) {
        return fail('broken-chain', start.seq + 1)
      }
    }
    if (key && options.after === undefined && count > 0 && lastCheckpoint === null) {
      return fail('missing-checkpoint', start.seq + 1)
    }
    return {
      ok: true,
      count,
      lastSeq,
      lastHash: expectedPrev,
      checkpoints,
      lastCheckpoint,
      unsigned,
    }
  }

  return { push, finish }
}

function publicKeyOf(key: KeyObject): KeyObject {
  if (typeof key !== 'object' || key === null || key.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('verify: checkpointKey must be an Ed25519 KeyObject')
  }
  return key.type === 'public' ? key : createPublicKey(key)
}
