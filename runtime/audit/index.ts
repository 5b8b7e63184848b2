/**
 * The tamper-evident audit log (DESIGN.md "Audit record"): hash-chained JSONL records, durable
 * before they are acknowledged, signed at checkpoints with a key kept outside the file, written
 * by one process at a time, verifiable by anyone with the file (and the public key).
 *
 * @example
 * const audit = await openAuditLog({ file: '.warden/audit/audit.jsonl', redact,
 *   signingKeyFile: '.warden/audit-signing.key' })
 * await audit.append({ kind: 'host-call', op: 'fetch', decision: 'deny', target: url })
 * const checkpointKey = await readAuditVerificationKey('.warden/audit-signing.key')
 * const result = await verifyAuditFile('.warden/audit/audit.jsonl', { checkpointKey })
 */
export { canonicalJson } from './canonical.js'
export {
  DEFAULT_CHECKPOINT_EVERY,
  MAX_CHECKPOINT_EVERY,
  auditKeyId,
  auditVerificationKey,
  readAuditVerificationKey,
} from './checkpoint.js'
export { LOCKED_CODE } from './lock.js'
export type { AuditLockOwner } from './lock.js'
export { openAuditLog, readAuditFile } from './log.js'
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
  AuditCheckpoint,
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
