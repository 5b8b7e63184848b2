/** Whether an audit record matches the filters of an {@link AuditQuery} (the file and the stream). */
import type { AuditQuery } from './log.js'
import type { AuditRecord } from './record.js'

/** True when `record` is at or after `fromSeq` and passes every filter of `query`. */
export function matchesQuery(record: AuditRecord, query: AuditQuery): boolean {
  return !(
    record.seq < (query.fromSeq ?? 1) ||
    (query.invocationId !== undefined && record.invocationId !== query.invocationId) ||
    (query.appId !== undefined && record.appId !== query.appId) ||
    (query.actor !== undefined && record.actor !== query.actor) ||
    (query.decision !== undefined && record.decision !== query.decision) ||
    (query.since !== undefined && record.ts < query.since) ||
    (query.until !== undefined && record.ts >= query.until)
  )
}
