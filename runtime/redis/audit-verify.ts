/**
 * Verify a deployment's audit stream: the whole of it ({@link verifyAuditStream}, what
 * `warden audit verify` does), or incrementally ({@link createStreamVerifyCache}, what
 * `GET /v1/audit/verify` does), the way `../audit/verify-cache.ts` does for the file log:
 *
 * - Single flight: calls made while a verification runs share its result.
 * - Nothing changed: when the stream's `XINFO` (length, entries added, last and first id, the
 *   largest deleted id) is that of the last successful check, its result is returned.
 * - Only appends: when nothing was ever deleted from the stream (entries added = length, no
 *   deleted id), its first entry is the same and the record the last check ended on is still
 *   there with the same hash, only the rest is checked: from the last signed checkpoint (its
 *   signature, the `every` rule and the records since it are checked as in a full pass) or,
 *   without a checkpoint key, from the last verified record.
 * - Otherwise, on any failure of an incremental check, and at least every `fullEveryMs`: a
 *   full check, so `firstBadSeq` and `reason` are those of a full pass. Failures are not cached.
 *
 * What this keeps and what it does not: Redis cannot change a stream entry in place, and
 * `XDEL`/`XTRIM` show in `XINFO`; what the incremental check cannot see is the whole stream
 * key replaced (`DEL`/`RESTORE` and re-added) by someone who can write Redis, with as many
 * entries and the same record where the last check ended. A full check catches that (a record
 * changed without re-hashing breaks the chain; a rebuilt chain breaks the signed checkpoints):
 * `warden audit verify` always does one, and the route does one at least every `fullEveryMs`.
 * The file log re-hashes its prefix instead, which reading the stream back would cost nearly
 * as much as the check itself.
 */
import type { KeyObject } from 'node:crypto'
import type { AuditRecord } from '../audit/record.js'
import { wholeResult } from '../audit/verify-cache.js'
import { verifyRecords } from '../audit/verify.js'
import type { AuditVerifyOptions, AuditVerifyResult, AuditVerifySuccess } from '../audit/verify.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'

const READ_CHUNK = 1000

/** Records of the stream from `fromSeq`, at most `count`. */
export async function readStream(
  redis: RedisConnection,
  fromSeq: number,
  count: number,
): Promise<AuditRecord[]> {
  try {
    const entries = await redis.client.xrange(
      redis.key('audit'),
      `${fromSeq}-0`,
      '+',
      'COUNT',
      count,
    )
    return entries.map(([, fields]) => JSON.parse(fields[1] ?? 'null') as AuditRecord)
  } catch (error) {
    throw storeUnavailable('the audit stream cannot be read', error)
  }
}

/** Every record of the stream from `fromSeq` on, a page at a time. */
export async function readStreamFrom(
  redis: RedisConnection,
  fromSeq: number,
): Promise<AuditRecord[]> {
  const all: AuditRecord[] = []
  for (let from = fromSeq; ; ) {
    const chunk = await readStream(redis, from, READ_CHUNK)
    all.push(...chunk)
    if (chunk.length < READ_CHUNK) {
      return all
    }
    from = chunk[chunk.length - 1]!.seq + 1
  }
}

/**
 * Verify the whole audit stream of a deployment (every record's hash, link and seq and, with
 * `checkpointKey`, every signed checkpoint), reading it a page at a time; the records are held
 * in memory for the check. Needs no lock: runs beside the hosts writing it (`warden audit
 * verify` with `WARDEN_REDIS_URL`).
 *
 * @example
 * const result = await verifyAuditStream(redis, { checkpointKey })
 */
export async function verifyAuditStream(
  redis: RedisConnection,
  options: AuditVerifyOptions = {},
): Promise<AuditVerifyResult> {
  return verifyRecords(await readStreamFrom(redis, 1), options)
}

interface Verified {
  /** The stream's `XINFO` when the check began. */
  fingerprint: string
  firstId: string
  result: AuditVerifySuccess
  /** Where the next check starts (after this record), and the checkpoints before it. */
  resume: { after: { seq: number; hash: string }; checkpoints: number }
  /** When the last full check was made. */
  fullAt: number
}

/** Options of {@link createStreamVerifyCache}. */
export interface StreamVerifyCacheOptions {
  checkpointKey?: KeyObject
  /** A full check at least this often, in ms. Default 10 minutes. */
  fullEveryMs?: number
  now?: () => number
}

/** `verify()` of the stream, cached and incremental (see the module comment). */
export function createStreamVerifyCache(
  redis: RedisConnection,
  options: StreamVerifyCacheOptions = {},
): () => Promise<AuditVerifyResult> {
  const { checkpointKey } = options
  const fullEveryMs = options.fullEveryMs ?? 10 * 60_000
  const now = options.now ?? Date.now
  let verified: Verified | undefined
  let running: Promise<AuditVerifyResult> | undefined

  async function check(): Promise<AuditVerifyResult> {
    const info = await streamInfo(redis)
    const due = verified === undefined || now() - verified.fullAt >= fullEveryMs
    if (!due && verified && info.fingerprint === verified.fingerprint) {
      return verified.result
    }
    if (!due && verified && info.neverDeleted && info.firstId === verified.firstId) {
      const { lastSeq, lastHash } = verified.result
      const [last] = lastSeq === 0 ? [] : await readStream(redis, lastSeq, 1)
      if (lastSeq === 0 || (last?.seq === lastSeq && last.hash === lastHash)) {
        const result = await pass(info, verified)
        if (result.ok) {
          return result
        }
      }
    }
    return pass(info)
  }

  /** Check from `from.resume` (or the start). */
  async function pass(info: StreamInfo, from?: Verified): Promise<AuditVerifyResult> {
    const after = from?.resume.after
    const records = await readStreamFrom(redis, (after?.seq ?? 0) + 1)
    const result = verifyRecords(records, {
      ...(checkpointKey ? { checkpointKey } : {}),
      ...(after ? { after } : {}),
    })
    if (!result.ok) {
      verified = undefined
      return result
    }
    const whole = wholeResult(result, from?.resume.checkpoints ?? 0, options)
    const { checkpoints } = whole
    let resume: Verified['resume'] | undefined
    if (!checkpointKey) {
      resume = { after: { seq: result.lastSeq, hash: result.lastHash }, checkpoints }
    } else {
      // From the last checkpoint, so that its signature and `every` are checked again.
      const cp = records.findLast((r) => r.kind === 'checkpoint')
      resume = cp
        ? { after: { seq: cp.seq - 1, hash: cp.prevHash }, checkpoints: checkpoints - 1 }
        : from?.resume
    }
    verified = resume
      ? {
          fingerprint: info.fingerprint,
          firstId: info.firstId,
          result: whole,
          resume,
          fullAt: from ? from.fullAt : now(),
        }
      : undefined
    return whole
  }

  return () => {
    running ??= check().finally(() => {
      running = undefined
    })
    return running.then((result) => ({ ...result }))
  }
}

interface StreamInfo {
  fingerprint: string
  firstId: string
  /** Nothing was ever deleted or trimmed from the stream. */
  neverDeleted: boolean
}

async function streamInfo(redis: RedisConnection): Promise<StreamInfo> {
  let raw: unknown[]
  try {
    raw = (await redis.client.xinfo('STREAM', redis.key('audit'))) as unknown[]
  } catch (error) {
    if (String((error as Error).message).includes('no such key')) {
      return { fingerprint: 'none', firstId: '', neverDeleted: true }
    }
    throw storeUnavailable('the audit stream cannot be read', error)
  }
  const info = new Map<string, unknown>()
  for (let i = 0; i + 1 < raw.length; i += 2) {
    info.set(String(raw[i]), raw[i + 1])
  }
  const first = info.get('first-entry') as [string, unknown] | null | undefined
  const firstId = first?.[0] ?? ''
  const length = Number(info.get('length'))
  const added = Number(info.get('entries-added'))
  const maxDeleted = String(info.get('max-deleted-entry-id'))
  return {
    fingerprint: [length, added, maxDeleted, firstId, info.get('last-generated-id')].join(' '),
    firstId,
    neverDeleted: length === added && maxDeleted === '0-0',
  }
}
