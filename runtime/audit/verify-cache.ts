/**
 * Internal: `verify()` of the file audit log without re-checking the whole chain on every call
 * (`GET /v1/audit/verify`, third outside attack, F3), with the same answer as a full check:
 *
 * - Single flight: calls made while a verification runs share its result.
 * - Nothing changed: when the log appended nothing and the file's inode, size, mtime and ctime
 *   are those seen before the last successful check, its result is returned without reading.
 *   (ctime cannot be set back by a user: any write or `utimes` moves it.)
 * - Only appends: otherwise the bytes that last check covered are hashed again (SHA-256,
 *   streamed: far cheaper than the chain check) and compared to the digest of the lines that
 *   check verified. Equal: only the rest is checked, from the last signed checkpoint (so its
 *   signature, the `every` rule and the records since it are checked exactly as in a full pass)
 *   or, without a checkpoint key, from the last verified record. Different (an earlier record
 *   was changed, the file was cut or replaced): a full check.
 * - Any failure of an incremental check is answered by a full check, so `firstBadSeq` and
 *   `reason` are exactly those of a full pass. Failures are not cached.
 */
import { createHash } from 'node:crypto'
import type { Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { verifyAuditFileUpTo } from './verify.js'
import type { AuditVerifyOptions, AuditVerifyResult, AuditVerifySuccess } from './verify.js'

// Canonical JSON escapes every `"` inside a string: only a checkpoint's own line has this.
const CHECKPOINT_MARK = '"kind":"checkpoint"'

interface Verified {
  /** The durable bytes checked, and the file's state before they were read. */
  end: number
  state: string
  /** SHA-256 of bytes [0, end). */
  digest: string
  result: AuditVerifySuccess
  /** Where the next check starts, after what, and what the part before that counted. */
  resume: { offset: number; after?: { seq: number; hash: string }; checkpoints: number }
}

/** Verify `file` up to `durable()` bytes with `options` (the checkpoint key), cached. */
export function createVerifyCache(
  file: string,
  options: AuditVerifyOptions,
  durable: () => number,
): () => Promise<AuditVerifyResult> {
  let verified: Verified | undefined
  let running: Promise<AuditVerifyResult> | undefined

  async function check(): Promise<AuditVerifyResult> {
    const end = durable()
    const state = await fileState(file)
    if (verified && verified.end === end && verified.state === state) {
      return verified.result
    }
    if (verified && end >= verified.end) {
      const hasher = createHash('sha256')
      if ((await hashBytes(file, verified.end, hasher)) === verified.digest) {
        const result = await pass(end, state, hasher, verified)
        if (result.ok) {
          return result
        }
      }
    }
    return pass(end, state, createHash('sha256'))
  }

  /** Check from `from.resume` (or the start); `hasher` has hashed the bytes before `from.end`. */
  async function pass(
    end: number,
    state: string,
    hasher: Hash,
    from?: Verified,
  ): Promise<AuditVerifyResult> {
    const start = from?.resume.offset ?? 0
    const hashFrom = from?.end ?? 0
    let position = start
    let lastCheckpoint: { offset: number; after: { seq: number; hash: string } } | undefined
    const result = await verifyAuditFileUpTo(
      file,
      from?.resume.after ? { ...options, after: from.resume.after } : options,
      end,
      start,
      (line) => {
        if (position >= hashFrom) {
          hasher.update(`${line}\n`)
        }
        if (line.includes(CHECKPOINT_MARK)) {
          const { seq, prevHash } = JSON.parse(line) as { seq: number; prevHash: string }
          lastCheckpoint = { offset: position, after: { seq: seq - 1, hash: prevHash } }
        }
        position += Buffer.byteLength(line, 'utf8') + 1
      },
    )
    if (!result.ok) {
      verified = undefined
      return result
    }
    const whole = wholeResult(result, from?.resume.checkpoints ?? 0, options)
    const { checkpoints } = whole
    // With the key and no checkpoint yet (an empty log), the next check is a full one: with
    // `after`, a log with records and no checkpoint would pass.
    const resume = !options.checkpointKey
      ? { offset: end, after: { seq: result.lastSeq, hash: result.lastHash }, checkpoints }
      : lastCheckpoint
        ? { ...lastCheckpoint, checkpoints: checkpoints - 1 }
        : { offset: 0, checkpoints: 0 }
    verified = { end, state, digest: hasher.digest('hex'), result: whole, resume }
    return whole
  }

  return () => {
    running ??= check().finally(() => {
      running = undefined
    })
    return running.then((result) => ({ ...result }))
  }
}

/**
 * Internal: the result of a whole log from the result of its part after a resume point, and
 * the checkpoints met before it (the file and the stream caches).
 */
export function wholeResult(
  result: AuditVerifySuccess,
  checkpointsBefore: number,
  options: AuditVerifyOptions,
): AuditVerifySuccess {
  return {
    ...result,
    // From the genesis, seq counts 1, 2, 3…: the records are the last seq.
    count: result.lastSeq,
    checkpoints: checkpointsBefore + result.checkpoints,
    unsigned: options.checkpointKey ? result.unsigned : result.lastSeq,
  }
}

async function fileState(file: string): Promise<string> {
  const s = await stat(file, { bigint: true })
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`
}

/** Feed bytes [0, end) of `file` to `hasher`; the hex digest of a copy. */
async function hashBytes(file: string, end: number, hasher: Hash): Promise<string> {
  if (end > 0) {
    for await (const chunk of createReadStream(file, { start: 0, end: end - 1 })) {
      hasher.update(chunk as Buffer)
    }
  }
  return hasher.copy().digest('hex')
}
