/**
 * The attributes of Warden's spans, metrics and log records, computed from what the runtime
 * already holds (a decision, a metering report, an audit record). Pure functions, tested on
 * their own: the one place that decides what an observability stack may see. Text a guest or a
 * client wrote goes through the secrets redactor; credential-shaped path segments are masked;
 * header values, bodies and query strings are never read. Names follow the OpenTelemetry
 * semantic conventions where they exist (`http.*`, `server.*`, `url.*`, `error.type`) and
 * `warden.*` elsewhere (docs/telemetry.md has the table).
 */
import type { Attributes } from '@opentelemetry/api'
import type { AuditRecord } from '../audit/index.js'
import { ERROR_META, WARDEN_ERROR_CODES } from '../errors.js'
import type { Blame, WardenErrorCode } from '../errors.js'
import type { Invocation } from '../runtime.js'
import type { Decision } from '../sandbox/protocol.js'

/** Longest text attribute Warden writes; longer values are cut. */
export const MAX_ATTRIBUTE_CHARS = 256

/** The HTTP methods of RFC 9110 and PATCH: any other is `_OTHER`, as the conventions say. */
const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'CONNECT',
  'DELETE',
  'GET',
  'HEAD',
  'OPTIONS',
  'PATCH',
  'POST',
  'PUT',
  'TRACE',
])

const CODES: ReadonlySet<string> = new Set(WARDEN_ERROR_CODES)

/** `http.request.method`: a known method, upper-case, or `_OTHER`. */
export function httpMethod(method: string): string {
  const upper = method.toUpperCase()
  return KNOWN_METHODS.has(upper) ? upper : '_OTHER'
}

/** Cut `text` to {@link MAX_ATTRIBUTE_CHARS}. */
export function cut(text: string): string {
  return text.length <= MAX_ATTRIBUTE_CHARS ? text : `${text.slice(0, MAX_ATTRIBUTE_CHARS - 1)}…`
}

// An API key (`wdn_<id>_<secret>`), a JWS/JWT (a capability token), or anything long enough
// to be a credential that a client pasted into a path.
const CREDENTIAL = /^(wdn_|eyJ)|^[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.|^[A-Za-z0-9+/_=-]{48,}$/

// A data key (`/v1/data/<collection>/<key>`, but the schema route) and a micro-app's own path
// (`/apps/<name>/<path>`, its request: a run's input) are never recorded: a key often names a
// person (`contacts/alice@example.com`; found by the thirteenth outside attack).
const DATA_KEY = /^(\/v1\/data\/[^/]+\/)(?!schema$).+$/
const APP_PATH = /^(\/apps\/[^/]+\/).+$/

/**
 * `url.path` of a request: the path as sent (never the query), a data key or a micro-app's own
 * path replaced by `[masked]`, each segment that looks like a credential (an API key, a token, a
 * long opaque string) too, then every stored secret value redacted and the whole cut to
 * {@link MAX_ATTRIBUTE_CHARS}.
 *
 * @example
 * urlPath('/v1/tokens/wdn_0123_abc', redact) // '/v1/tokens/[masked]'
 * urlPath('/v1/data/crm/alice%40example.com', redact) // '/v1/data/crm/[masked]'
 */
export function urlPath(path: string, redact: (text: string) => string): string {
  const withoutQuery = (path.split(/[?#]/, 1)[0] ?? '')
    .replace(DATA_KEY, '$1[masked]')
    .replace(APP_PATH, '$1[masked]')
  const masked = withoutQuery
    .split('/')
    .map((segment) =>
      CREDENTIAL.test(segment) || CREDENTIAL.test(decoded(segment)) ? '[masked]' : segment,
    )
    .join('/')
  return cut(redact(masked))
}

function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/** An error's code and who is to blame, as attributes. */
export function errorAttributes(code: string): Attributes {
  const known = CODES.has(code) ? (code as WardenErrorCode) : 'internal'
  const blame: Blame = ERROR_META[known].blame
  return { 'error.type': known, 'warden.error.code': known, 'warden.error.blame': blame }
}

/**
 * The Warden code of a host call that failed, from its decision: a denial's rule (`denied: …`,
 * `not granted`) is `capability_denied`, a spent budget `limit_exceeded`, a malformed call
 * `invalid_request`, an upstream failure `upstream_error`, and a fatal error its own code.
 * Undefined for a call that succeeded.
 */
export function hostCallErrorCode(entry: Decision): WardenErrorCode | undefined {
  const reason = entry.reason
  if (reason === undefined) {
    return entry.decision === 'deny' ? 'capability_denied' : undefined
  }
  if (CODES.has(reason)) {
    return reason as WardenErrorCode
  }
  if (reason.startsWith('upstream')) {
    return 'upstream_error'
  }
  if (reason.startsWith('limit-exceeded') || reason === 'log budget spent') {
    return 'limit_exceeded'
  }
  if (reason.startsWith('invalid') || reason === 'unknown function') {
    return 'invalid_request'
  }
  return entry.decision === 'deny' || reason.startsWith('denied') ? 'capability_denied' : undefined
}

/** The short name of a capability interface: `warden:platform/http` → `http`. */
export function capabilityName(capability: string): string {
  const slash = capability.lastIndexOf('/')
  return slash < 0 ? capability : capability.slice(slash + 1)
}

// `METHOD scheme://host:port/path → address`, the http capability's audit target.
const HTTP_TARGET =
  /^(\S+) ([a-z]+):\/\/(\[[0-9a-f:.]+\]|[^\s:/[\]]+):(\d{1,5})(?:\/\S*)?(?: → (\S+))?$/

/** What an http host call reached, from its audit target: never the path or the query. */
export interface HttpTarget {
  method: string
  scheme: string
  host: string
  port: number
  /** The address the connection reached, once it did. */
  address: string | undefined
}

/**
 * An audit record's target as telemetry may carry it: an http call's without its path (`GET
 * https://api.example.com:443`), a data call's or data write's collection only
 * (`crm/[masked]`): the paths of egress URLs and data keys are never exported (the audit log
 * itself keeps them, for its readers).
 */
function exportedTarget(target: string, record: Pick<AuditRecord, 'capability' | 'op'>): string {
  const http = parseHttpTarget(target)
  if (http) {
    const host = http.host.includes(':') ? `[${http.host}]` : http.host
    return `${http.method} ${http.scheme}://${host}:${http.port}`
  }
  if (record.capability?.endsWith('/data') || record.op?.startsWith('data.')) {
    const slash = target.indexOf('/')
    return slash < 0 ? target : `${target.slice(0, slash)}/[masked]`
  }
  return target
}

/** Parse the http capability's audit target; undefined when it is not one. */
export function parseHttpTarget(target: string | undefined): HttpTarget | undefined {
  const match = target === undefined ? null : HTTP_TARGET.exec(target)
  if (match === null) {
    return undefined
  }
  const host = match[3]!
  return {
    method: match[1]!,
    scheme: match[2]!,
    host: host.startsWith('[') ? host.slice(1, -1) : host,
    port: Number(match[4]),
    address: match[5],
  }
}

/**
 * The attributes of one host call's span: capability, op, decision, reason, bytes; for an
 * http fetch the HTTP client conventions (`server.address`, `server.port`, `url.scheme`,
 * `http.request.method`, `http.response.status_code`, `network.peer.address`), from the
 * canonical target, never the URL as the guest wrote it; the error code and blame of a
 * failed call.
 */
export function hostCallAttributes(
  entry: Decision,
  answer: unknown,
  redact: (text: string) => string,
): Attributes {
  const attributes: Attributes = {
    'warden.capability': entry.capability,
    'warden.op': entry.fn,
    'warden.decision': entry.decision,
    'warden.host_call': entry.call,
  }
  if (entry.reason !== undefined) {
    attributes['warden.reason'] = cut(redact(entry.reason))
  }
  if (entry.bytesOut !== undefined) {
    attributes['warden.bytes_out'] = entry.bytesOut
  }
  if (entry.bytesIn !== undefined) {
    attributes['warden.bytes_in'] = entry.bytesIn
  }
  const http = parseHttpTarget(entry.target)
  if (http !== undefined) {
    attributes['http.request.method'] = httpMethod(http.method)
    attributes['server.address'] = cut(redact(http.host))
    attributes['server.port'] = http.port
    attributes['url.scheme'] = http.scheme
    attributes['warden.target_host'] = attributes['server.address']
    if (http.address !== undefined) {
      attributes['network.peer.address'] = cut(http.address)
    }
    const status = (answer as { status?: unknown } | undefined)?.status
    if (typeof status === 'number' && Number.isInteger(status)) {
      attributes['http.response.status_code'] = status
    }
  }
  const code = hostCallErrorCode(entry)
  if (code !== undefined) {
    Object.assign(attributes, errorAttributes(code))
  }
  return attributes
}

/** The attributes of a run span once the run answered: its app and metering figures. */
export function runAttributes(invocation: Invocation): Attributes {
  const { report } = invocation
  const attributes: Attributes = {
    'warden.app.id': report.appId,
    'warden.app.digest': report.digest,
    'warden.invocation.id': report.invocationId,
    'warden.outcome': report.outcome,
    'warden.wall_ms': report.wallMs,
    'warden.queued_ms': report.queuedMs,
    'warden.fuel.limit': report.fuelLimit,
    'warden.memory.limit_bytes': report.memoryLimitBytes,
    'warden.egress_bytes': report.egressBytes,
    'warden.logs_dropped': report.logsDropped,
  }
  if (report.fuelUsed !== null) {
    attributes['warden.fuel.used'] = report.fuelUsed
  }
  if (report.memoryPeakBytes !== null) {
    attributes['warden.memory.peak_bytes'] = report.memoryPeakBytes
  }
  if (report.hostCalls !== null) {
    attributes['warden.host_calls'] = report.hostCalls
  }
  const code = invocation.error?.code ?? (invocation.ok ? undefined : 'guest_error')
  if (code !== undefined) {
    Object.assign(attributes, errorAttributes(code))
  }
  return attributes
}

/**
 * The attributes of an audit record's log record: every field of the record that is not null,
 * under `warden.audit.` (the meter's figures as `warden.audit.meter.<name>`), as the log wrote
 * them: already redacted; `warden.audit.calls` on a record that counts several host calls. A
 * checkpoint adds its seq and key id, never its signature.
 */
export function auditAttributes(record: AuditRecord): Attributes {
  const attributes: Attributes = {}
  for (const [key, value] of Object.entries(record)) {
    if (value === null || key === 'meter' || key === 'checkpoint') {
      continue
    }
    if (typeof value === 'string' || typeof value === 'number') {
      attributes[`warden.audit.${key}`] = value
    }
  }
  if (typeof record.target === 'string') {
    attributes['warden.audit.target'] = exportedTarget(record.target, record)
  }
  if (record.meter) {
    for (const [key, value] of Object.entries(record.meter)) {
      if (value !== null) {
        attributes[`warden.audit.meter.${key}`] = value
      }
    }
  }
  if (record.checkpoint) {
    attributes['warden.audit.checkpoint.seq'] = record.checkpoint.seq
    attributes['warden.audit.checkpoint.key_id'] = record.checkpoint.keyId
  }
  return attributes
}
