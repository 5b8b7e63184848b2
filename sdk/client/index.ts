/** The Warden HTTP API client: re-exports only. */
export { WardenClient } from './client.js'
export type { WardenClientOptions } from './client.js'
export { WardenApiError } from './errors.js'
export type {
  ApiKeyInfo,
  ApiRole,
  App,
  AppDetail,
  AppFilter,
  AppPage,
  AppStatus,
  AppVersion,
  AttenuateRequest,
  AuditFilter,
  AuditHead,
  AuditPage,
  AuditRecord,
  AuditVerifyAnswer,
  GrantRequest,
  GrantsInput,
  InvocationAnswer,
  InvokeResult,
  LimitsRequest,
  MeteringReport,
  MintedToken,
  NewApiKey,
  RiskTier,
  SecretInfo,
  TokenEntry,
  UploadMeta,
  UploadResult,
} from './types.js'
