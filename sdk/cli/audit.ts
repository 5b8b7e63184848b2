/**
 * `warden audit verify|tail`: check the audit log's hash chain, and read its last records.
 */
import { auditLogPath } from '../../runtime/warden.js'
import { WardenError } from '../../runtime/errors.js'
import type { AuditLog, AuditQuery } from '../../runtime/audit/index.js'
import type {
  AuditRecord,
  AuditVerifyOptions,
  AuditVerifyResult,
} from '../../runtime/audit/index.js'

/** Where `openWarden` keeps the audit log of a data dir. */
export function auditLogFile(dataDir: string): string {
  return auditLogPath(dataDir)
}

/**
 * Verify the chain: every record's hash, `prevHash` link and seq. `source` is an open log
 * (`warden.audit`) or anything with the same `verify`, such as a file verifier. Pass an
 * anchored head (`expectLastSeq`, `expectLastHash`, kept where the log's writer cannot
 * rewrite it) to also detect a truncated or rebuilt log.
 *
 * @example
 * const result = await verifyAudit(warden.audit)
 * if (!result.ok) console.error(formatVerifyResult(result))
 */
export function verifyAudit(
  source: Pick<AuditLog, 'verify'>,
  anchor: AuditVerifyOptions = {},
): Promise<AuditVerifyResult> {
  return source.verify(anchor)
}

/** One line for a terminal: `ok: …` or `first bad seq N (<reason>)`. */
export function formatVerifyResult(result: AuditVerifyResult): string {
  if (!result.ok) {
    return `first bad seq ${result.firstBadSeq} (${result.reason})`
  }
  return result.count === 0
    ? 'ok: the audit log is empty'
    : `ok: ${result.count} records, last seq ${result.lastSeq}, last hash ${result.lastHash}`
}

/** Options of {@link tailAudit}. */
export interface TailAuditOptions {
  /** The last this many matching records. 1 to 10 000; default 20. */
  limit?: number
  /** Only records of this invocation. */
  invocationId?: string
  /** Only records of this app. */
  appId?: string
}

/** Default of {@link TailAuditOptions.limit}. */
export const DEFAULT_TAIL_LIMIT = 20

/**
 * The last `limit` records matching the filters, in seq order. Scans the log from the start
 * (the log has no index), a page at a time. Throws `invalid_request` for a bad limit.
 *
 * @example
 * for (const record of await tailAudit(warden.audit, { appId: 'hello', limit: 5 })) { … }
 */
export async function tailAudit(
  log: Pick<AuditLog, 'read'>,
  options: TailAuditOptions = {},
): Promise<AuditRecord[]> {
  const limit = options.limit ?? DEFAULT_TAIL_LIMIT
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
    throw new WardenError('invalid_request', '--limit must be an integer from 1 to 10000')
  }
  const filters: AuditQuery = {
    ...(options.invocationId === undefined ? {} : { invocationId: options.invocationId }),
    ...(options.appId === undefined ? {} : { appId: options.appId }),
  }
  let last: AuditRecord[] = []
  let fromSeq = 1
  for (;;) {
    const page = await log.read({ ...filters, fromSeq, limit: 10_000 })
    last = [...last, ...page].slice(-limit)
    if (page.length < 10_000) {
      return last
    }
    fromSeq = page[page.length - 1]!.seq + 1
  }
}
