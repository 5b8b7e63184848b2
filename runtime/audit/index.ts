/**
 * The tamper-evident audit log (DESIGN.md "Audit record"): hash-chained JSONL records, durable
 * before they are acknowledged, verifiable by anyone with the file.
 *
 * @example
 * const audit = await openAuditLog({ file: '.warden/audit.jsonl', redact })
 * await audit.append({ kind: 'host-call', op: 'fetch', decision: 'deny', target: url })
 * const result = await verifyAuditFile('.warden/audit.jsonl')
 */
export { canonicalJson } from './canonical.js'
export { openAuditLog } from './log.js'
export type { AuditLog, AuditLogOptions, AuditQuery } from './log.js'
export {
  AUDIT_KINDS,
  GENESIS_HASH,
  MAX_TEXT_LENGTH,
  buildRecord,
  computeRecordHash,
  sanitizeText,
} from './record.js'
export type {
  AuditDecision,
  AuditEntry,
  AuditKind,
  AuditMeter,
  AuditRecord,
  RecordContext,
} from './record.js'
export { verifyAuditFile, verifyRecords } from './verify.js'
export type {
  AuditVerifyFailure,
  AuditVerifyFailureReason,
  AuditVerifyOptions,
  AuditVerifyResult,
  AuditVerifySuccess,
} from './verify.js'
