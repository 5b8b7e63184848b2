/**
 * HTTP ⇄ `warden:platform/handler`: the pure half of serving a micro-app. It splits
 * `/apps/<name>/<path>` into the app's name and its path, turns a request's headers into what
 * the guest may see, and checks the guest's `outgoing-response` before any of it reaches the
 * wire. Everything the guest answers is hostile: a status, a header or a body that HTTP (or the
 * host) cannot carry safely is `invalid_response` (502), never passed through and never
 * "repaired" into something the guest did not say.
 *
 * Rules (docs/control-plane.md, "HTTP micro-apps"):
 * - to the guest: every request header except hop-by-hop ones (and those `Connection` names)
 *   and credentials (`Authorization`, `Proxy-Authorization`, `Cookie`, …): the route shares
 *   the control plane's origin, so the caller's Warden credentials never reach an app;
 * - from the guest: names are RFC 9110 tokens, values visible ASCII with inner spaces and tabs;
 *   framing and hop-by-hop headers are the host's (`Content-Length`, `Transfer-Encoding`,
 *   `Connection`, …) and dropped; so are headers whose effect reaches past the app to the whole
 *   origin (`Set-Cookie`, `Clear-Site-Data`, `Strict-Transport-Security`, `Service-Worker-Allowed`,
 *   …), and the host's own (`X-Warden-*`, `X-Content-Type-Options`).
 */
import { WardenError } from '../runtime/index.js'
import { APP_NAME } from './registry.js'

/** One header as the WIT `header` record carries it. */
export interface WitHeader {
  name: string
  value: string
}

/** The WIT `incoming-request`, jco-shaped. */
export interface IncomingRequest {
  method: string
  /** The path under the mount, raw (percent-encoded as sent), always starting with `/`. */
  path: string
  /** The raw query, without `?`; empty when there is none. */
  query: string
  headers: WitHeader[]
  body: Uint8Array
}

/** What goes out: a checked status, filtered headers (lower-case names) and the body. */
export interface CheckedResponse {
  status: number
  headers: Record<string, string[]>
  body: Uint8Array
}

/** Caps on what a guest answers. */
export interface ResponseCaps {
  /** Body bytes. */
  maxBodyBytes: number
  /** Header fields. Default 100. */
  maxHeaders?: number
  /** Bytes of every name and value together. Default 64 KiB. */
  maxHeaderBytes?: number
}

/** Default caps: request body 1 MiB; response body 5 MiB, 100 headers, 64 KiB of headers. */
export const MICRO_APP_DEFAULTS = Object.freeze({
  maxRequestBytes: 1024 * 1024,
  maxResponseBytes: 5 * 1024 * 1024,
  maxHeaders: 100,
  maxHeaderBytes: 64 * 1024,
})

/** Hop-by-hop headers (RFC 9110 §7.6.1, and the non-standard ones proxies still see). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
])

/** Request headers that carry credentials: never shown to an app. */
export const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'cookie2',
  'x-api-key',
  'x-auth-token',
  'x-csrf-token',
  'x-xsrf-token',
])

/**
 * Response headers a guest may not set: framing (the host computes `Content-Length`), and
 * headers whose effect reaches the whole origin the apps and the API share.
 */
export const HOST_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'content-length',
  'proxy-authenticate',
  'set-cookie',
  'set-cookie2',
  'clear-site-data',
  'strict-transport-security',
  'alt-svc',
  'service-worker-allowed',
  'origin-agent-cluster',
  'accept-ch',
  'nel',
  'report-to',
  'reporting-endpoints',
  'public-key-pins',
  'public-key-pins-report-only',
  'expect-ct',
  'x-content-type-options',
])

/**
 * The policy the host adds to every micro-app answer: in a browser, an app's page runs in an
 * opaque origin, so it cannot read another app's pages or storage, nor the API's, nor register
 * a service worker on the shared origin. A guest's own `Content-Security-Policy` adds to it.
 */
export const MICRO_APP_CSP =
  'sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads'

/** An RFC 9110 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/
/** A field value: visible ASCII, inner spaces and tabs, nothing around it; or empty. */
const FIELD_VALUE = /^(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?$/
const MAX_VALUE_CHARS = 8192

/**
 * The app name and the path under its mount of a URL path, or undefined when it is not
 * `/apps/<name>` or `/apps/<name>/…`. The name must be an app name as written (no
 * percent-encoding); the path keeps its percent-encoding.
 *
 * @example
 * splitAppPath('/apps/hello/a%2Fb') // { name: 'hello', path: '/a%2Fb' }
 */
export function splitAppPath(pathname: string): { name: string; path: string } | undefined {
  const match = /^\/apps\/([^/]*)(\/.*)?$/s.exec(pathname)
  if (!match || !APP_NAME.test(match[1]!)) {
    return undefined
  }
  return { name: match[1]!, path: match[2] ?? '/' }
}

/**
 * Whether a raw request target (as it came off the wire, before any URL parsing) has a dot
 * segment, `.` or `..`, written plainly or percent-encoded (`%2e`, `%2E`). URL parsers resolve
 * `%2e%2e` as `..`, so `/apps/x/%2e%2e/%2e%2e/v1/keys` would leave the app's mount; a front proxy
 * that allows only `/apps/<name>/*` without decoding would be bypassed. Such a target is refused.
 *
 * @example
 * hasDotSegment('/apps/x/%2e%2E/v1/keys') // true
 * hasDotSegment('/apps/x/a.b/..c?q=..') // false
 */
export function hasDotSegment(target: string): boolean {
  if (!target.includes('.') && !target.includes('%')) {
    // No `.` and no escape: no dot segment, and no regexps for every request's target.
    return false
  }
  // An absolute-form target ("http://host/path"): only its path counts.
  const path = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '').split(/[?#]/, 1)[0]!
  return path.split('/').some((segment) => {
    const plain = segment.replace(/%2e/gi, '.')
    return plain === '.' || plain === '..'
  })
}

/** The headers an app sees: no hop-by-hop headers, none `Connection` names, no credentials. */
export function requestHeadersForGuest(headers: Headers): WitHeader[] {
  const named = new Set(
    (headers.get('connection') ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  )
  const out: WitHeader[] = []
  for (const [name, value] of headers) {
    if (!HOP_BY_HOP.has(name) && !CREDENTIAL_HEADERS.has(name) && !named.has(name)) {
      out.push({ name, value })
    }
  }
  return out
}

function invalid(message: string): WardenError {
  return new WardenError('invalid_response', `the app's response ${message}`)
}

/** Bodiless statuses: a body on one of these would break the connection's framing. */
const NO_BODY = new Set([204, 205, 304])

/**
 * Check a guest's `outgoing-response` and keep the headers that may go out. Throws
 * `invalid_response` for anything HTTP cannot carry, or that is over a cap.
 *
 * @example
 * const answer = checkGuestResponse(run.output, { maxBodyBytes: 5 << 20 })
 * return c.body(answer.body, answer.status, answer.headers)
 */
export function checkGuestResponse(output: unknown, caps: ResponseCaps): CheckedResponse {
  const maxHeaders = caps.maxHeaders ?? MICRO_APP_DEFAULTS.maxHeaders
  const maxHeaderBytes = caps.maxHeaderBytes ?? MICRO_APP_DEFAULTS.maxHeaderBytes
  // The worker's answer is untrusted too: check the shape, not only the values.
  if (typeof output !== 'object' || output === null) {
    throw invalid('is missing')
  }
  const { status, headers, body } = output as Record<string, unknown>
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) {
    throw invalid('status is not an integer in 200–599')
  }
  if (!(body instanceof Uint8Array)) {
    throw invalid('body is not bytes')
  }
  if (body.byteLength > caps.maxBodyBytes) {
    throw invalid(`body is over the cap of ${caps.maxBodyBytes} bytes`)
  }
  if (NO_BODY.has(status) && body.byteLength > 0) {
    throw invalid(`has a body on a ${status}`)
  }
  if (!Array.isArray(headers)) {
    throw invalid('headers are not a list')
  }
  if (headers.length > maxHeaders) {
    throw invalid(`has more than ${maxHeaders} headers`)
  }
  const out: Record<string, string[]> = Object.create(null)
  let bytes = 0
  for (const header of headers as unknown[]) {
    const { name, value } = (header ?? {}) as Record<string, unknown>
    if (typeof name !== 'string' || !TOKEN.test(name)) {
      throw invalid('has a header name that is not an HTTP token')
    }
    if (typeof value !== 'string' || value.length > MAX_VALUE_CHARS || !FIELD_VALUE.test(value)) {
      throw invalid(`has a value of ${name} that is not a valid HTTP field value`)
    }
    bytes += name.length + value.length
    if (bytes > maxHeaderBytes) {
      throw invalid(`headers are over ${maxHeaderBytes} bytes`)
    }
    const lower = name.toLowerCase()
    if (
      HOP_BY_HOP.has(lower) ||
      HOST_RESPONSE_HEADERS.has(lower) ||
      lower.startsWith('x-warden-')
    ) {
      continue
    }
    out[lower] ??= []
    out[lower].push(value)
  }
  return { status, headers: out, body }
}
