/**
 * Warden's runtime, front door: the SDK, the CLI and the server import the runtime from here
 * and only from here. This file only re-exports; the code lives in the rooms behind it.
 *
 * @example
 * const warden = await openWarden({ dataDir: '.warden' })
 * const app = await warden.load(bytes)
 * const run = await warden.run(app, '{"name":"Ada"}', { token })
 * await warden.close()
 */
export { APP_DISABLED, createRuntime } from './runtime.js'
export type {
  Invocation,
  InvokeOptions,
  IsolationInfo,
  RuntimeOptions,
  WardenRuntime,
} from './runtime.js'
export { auditLogPath, auditSigningKeyPath, openWarden } from './warden.js'
export { deepFreeze, ensurePrivateDir, writeFileAtomic } from './files.js'
export {
  deriveSubkey,
  isValidCollection,
  isValidKey,
  MAX_DOCUMENT_BYTES,
  MAX_PII_FIELDS,
  MAX_SECRET_BYTES,
  openSecret,
  resolveMasterKey,
  SECRET_NAME_PATTERN,
  sealSecret,
} from './stores.js'
export type { DataSchema } from './stores.js'
export type { RunOptions, TokenOp, Warden, WardenOptions } from './warden.js'
export type { Decision, LogLine } from './sandbox/protocol.js'
// The http capability's transport seam (`WardenOptions.http.transport`, `warden/testing`).
export * from './egress.js'
export { resolveHostConfig } from './host-config.js'
export { METRIC_BUCKETS, NO_TELEMETRY, startTelemetry } from './telemetry/telemetry.js'
export type {
  HttpRequestInfo,
  HttpResponseInfo,
  PoolFigures,
  Telemetry,
  TelemetryConfig,
} from './telemetry/telemetry.js'
export {
  openRedisConnection,
  readRedisAuditVerificationKey,
  storeUnavailable,
  throwOnFailure,
  verifyAuditStream,
} from './redis/index.js'
export type { RedisConnection, RedisConnectionOptions } from './redis/index.js'
export type { Quotas } from './quotas.js'
export type { HostConfig } from './host-config.js'
export { WardenError, WARDEN_ERROR_CODES, toWardenError } from './errors.js'
export type { SerializedError, WardenErrorCode } from './errors.js'
export { DEFAULT_LIMITS, resolveLimits } from './limits/limits.js'
export type { LimitCeilings, Limits, ResolvedLimits } from './limits/limits.js'
export type { MeteringReport, RunOutcome } from './report.js'
export { DEFAULT_MAX_COMPONENT_BYTES } from './loader/component-bytes.js'
export type { LoadedComponent, LoadOptions } from './loader/load.js'
export { DEFAULT_TRANSPILE_BUDGET, Transpiler } from './loader/transpile.js'
export type { TranspileBudget, TranspilerOptions } from './loader/transpile.js'
export type { Isolation, RunMatch, Sandbox } from './sandbox/sandbox.js'
export {
  appIdSchema,
  describeIssue,
  grantsSchema,
  jtiSchema,
  limitsRequestSchema,
  MAX_TOKEN_LENGTH,
  TOKEN_TYPE,
} from './tokens/index.js'
export type {
  AttenuationRequest,
  CapabilityClaims,
  Grants,
  GrantsInput,
  Jwks,
  KeyInfo,
  LimitsRequest,
  MintedToken,
  MintRequest,
} from './tokens/index.js'
export { readAuditFile, readAuditVerificationKey, verifyAuditFile } from './audit/index.js'
export type {
  AuditLog,
  AuditQuery,
  AuditRecord,
  AuditVerifyOptions,
  AuditVerifyResult,
  AuditVerifySuccess,
} from './audit/index.js'
export {
  AGENT_APP_NAME,
  adoptAgentBuild,
  agentAnswer,
  agentBuildKey,
  agentCacheDir,
  agentComponent,
  agentRequest,
  MAX_AGENT_OUTPUT_BYTES,
  MAX_AGENT_SOURCE_CHARS,
  prepareAgentComponent,
} from './agent/index.js'
export type { AgentAnswer, AgentBuildOptions, AgentScriptError } from './agent/index.js'
