/**
 * What the HTTP API answers, written by hand to match `control-plane/routes/*.ts` (the tests in
 * `client.test.ts` run every method against a real server). Runtime types (reports, audit
 * records, grants, limits) come from the runtime's front door, and the control plane's own
 * vocabulary (statuses, tiers, roles, key facts) from its front door, as types only.
 */
import type { ApiKeyInfo, ApiRole, AppStatus, RiskTier } from '../../control-plane/index.js'
import type {
  AuditRecord,
  GrantsInput,
  LimitsRequest,
  MeteringReport,
} from '../../runtime/index.js'

export type {
  ApiKeyInfo,
  ApiRole,
  AppStatus,
  AuditRecord,
  GrantsInput,
  LimitsRequest,
  MeteringReport,
  RiskTier,
}

/** One uploaded build of an app. */
export interface AppVersion {
  digest: string
  sizeBytes: number
  kind: string
  world: string
  imports: string[]
  exports: string[]
  riskTier: RiskTier
  riskReasons: string[]
  uploadedAt: string
  uploadedBy: string
  approvedAt?: string
  approvedBy?: string
  /** A built-in app's build key: the hash of its build inputs. */
  buildKey?: string
}

/** An app of the registry: its current version's facts, and every version. */
export interface App {
  id: string
  name: string
  owner: string
  purpose: string
  reviewBy?: string
  publisher: string
  status: AppStatus
  digest: string
  kind: string
  world: string
  imports: string[]
  exports: string[]
  riskTier: RiskTier
  riskReasons: string[]
  versions: AppVersion[]
  createdAt: string
  updatedAt: string
  lastRunAt?: string
}

/** `GET /v1/apps/:id`: the app and the tokens granted for it (never their strings). */
export interface AppDetail extends App {
  tokens: TokenEntry[]
}

/** Metadata of an upload. */
export interface UploadMeta {
  /** A DNS label: a-z, 0-9 and -, at most 63. */
  name: string
  owner: string
  purpose: string
  /** `YYYY-MM-DD`. */
  reviewBy?: string
}

/** An upload's answer: the app, and whether the upload changed anything (201) or not (200). */
export interface UploadResult {
  app: App
  /** False when the same bytes were already the app's. */
  changed: boolean
}

/** Filters and page of `GET /v1/apps`. */
export interface AppFilter {
  status?: AppStatus
  tier?: RiskTier
  owner?: string
  /** 1 to 1000, default 100. */
  limit?: number
  cursor?: string
}

/** A page of apps. */
export interface AppPage {
  apps: App[]
  nextCursor: string | null
}

/** A token as minted: the string is shown once. */
export interface MintedToken {
  token: string
  jti: string
  /** Seconds since the epoch. */
  exp: number
  app: { id: string; digest: string }
  grants: Record<string, unknown>
  limits: Record<string, unknown>
  parent?: string
}

/** What `POST /v1/tokens` takes. */
export interface GrantRequest {
  /** App id or name. */
  app: string
  grants?: GrantsInput
  limits?: LimitsRequest
  /** Default 3600, at most the server's maximum. */
  ttlSeconds?: number
}

/**
 * What `POST /v1/apps/:id/route` takes: a token you hold for the app's current build, or a
 * grant the server mints a token for (as `POST /v1/tokens`, without `app`).
 */
export type RouteRequest =
  | { token: string }
  | { grants?: GrantsInput; limits?: LimitsRequest; ttlSeconds?: number }

/** A route binding: the app serves `path` (`/apps/<name>/`) under the token `jti`. */
export interface Route {
  name: string
  path: string
  appId: string
  /** The bound token; its string is never shown. */
  jti: string
  /** The bound token's expiry, seconds since the epoch. */
  exp: number
  boundAt: string
  boundBy: string
}

/** What `POST /v1/tokens/attenuate` takes: each field within the parent's. */
export interface AttenuateRequest {
  grants?: GrantsInput
  limits?: LimitsRequest
  ttlSeconds?: number
}

/** One granted token, without its string. */
export interface TokenEntry {
  jti: string
  appId: string
  digest: string
  parent?: string
  grants: unknown
  limits: unknown
  iat: number
  exp: number
  grantedBy: string
  revokedAt?: string
  revokedBy?: string
}

/** A successful run. */
export interface InvokeResult {
  /** The action's `ok` string, parsed when it is JSON. */
  output: unknown
  report: MeteringReport
  invocationId: string
}

/** What `POST /v1/runs` runs: JS source in the built-in sandbox, or a deployed action. */
export type RunRequest = { source: string; input?: unknown } | { app: string; input?: unknown }

/** An agent run's answer. */
export interface RunResult {
  /** The script's return value (JSON), or the action's output parsed when it is JSON. */
  output: unknown
  logs: { level: 'debug' | 'info' | 'warn' | 'error'; message: string }[]
  report: MeteringReport
  invocationId: string
}

/** A secret's name and when it was written; never its value. */
export interface SecretInfo {
  name: string
  updatedAt: string
}

/** Filters and cursor of `GET /v1/audit`. */
export interface AuditFilter {
  /** 1 to 1000, default 100. */
  limit?: number
  /** The seq to start from (the previous page's `nextCursor`). */
  cursor?: number
  app?: string
  invocation?: string
  actor?: string
  decision?: 'allow' | 'deny'
  /** ISO 8601. */
  since?: string
  until?: string
}

/** A page of audit records, oldest first. */
export interface AuditPage {
  records: AuditRecord[]
  nextCursor: number | null
}

/** `GET /v1/audit/verify`. */
export interface AuditVerifyAnswer {
  ok: boolean
  records: number
  lastSeq: number
  /** Absent when the chain does not verify. */
  lastHash?: string
  firstBad?: number
  reason?: string
  lastCheckpoint?: { seq: number; ts: string } | null
  unsigned?: number
}

/** The head of the audit chain. */
export interface AuditHead {
  seq: number
  hash: string
}

/** A new API key: `key` is shown once. */
export interface NewApiKey extends ApiKeyInfo {
  key: string
}

/** `GET /v1/invocations/:id`. */
export interface InvocationAnswer {
  invocationId: string
  /** Null once the run is no longer among the recent ones: its audit records remain. */
  report: MeteringReport | null
  records: AuditRecord[]
}
