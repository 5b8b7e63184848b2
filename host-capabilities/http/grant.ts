/**
 * The `http` grant: which origins, methods and paths a run may call. Pure: compile once per
 * token with {@link compileHttpGrant}, then {@link matchRequest} once per call.
 *
 * Denied by default: every origin not named; the bare domain of a `*.` wildcard; an IP literal
 * unless an entry names that exact address; every method but GET and HEAD; plain `http`;
 * any port but the scheme's default; paths with dot-segments or encoded separators.
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import { listGrant, unique } from '../grant.js'
import { hostPatternKind, isHostSubset } from './host-pattern.js'
import { DEFAULT_PORTS, formatOrigin, normaliseHostname } from './url.js'
import type { EgressUrl } from './url.js'

/** One entry of the token's `grants.http`. */
export interface HttpGrantEntry {
  /** Default `https`. */
  scheme?: 'https' | 'http'
  /**
   * An exact hostname (`api.github.com`), `*.example.com` for any subdomain at any depth (never
   * the bare `example.com`), or an IP literal (`10.0.0.5`, `::1` or `[::1]`).
   */
  host: string
  /** Default: the scheme's default port (443 or 80). */
  port?: number
  /** HTTP methods, case-insensitive. Default `['GET', 'HEAD']`. */
  methods?: readonly string[]
  /** Paths that start with this string (compared decoded, query excluded). Default `/`. */
  pathPrefix?: string
  /** Allow loopback, private, link-local and other non-public addresses. Default false. */
  allowPrivate?: boolean
}

/** One compiled entry. */
export interface CompiledHttpEntry {
  readonly scheme: 'https' | 'http'
  /** The normalised host; for a wildcard, the suffix after `*.`. IPv6 without brackets. */
  readonly host: string
  readonly wildcard: boolean
  readonly isIp: boolean
  readonly port: number
  /** Upper-case method names. */
  readonly methods: ReadonlySet<string>
  /** The prefix, percent-decoded the same way as request paths. */
  readonly pathPrefix: string
  readonly allowPrivate: boolean
  /** The entry as one readable pattern, for audit records: `https://*.example.com/repos/`. */
  readonly pattern: string
}

const COMPILED: unique symbol = Symbol('warden.http.compiledGrant')

/** A compiled `http` grant. Build it with {@link compileHttpGrant} only. */
export interface CompiledHttpGrant {
  readonly entries: readonly CompiledHttpEntry[]
  /** Brand: only {@link compileHttpGrant} makes these. */
  readonly [COMPILED]: {
    readonly exact: ReadonlyMap<string, readonly number[]>
    readonly wildcards: readonly number[]
  }
}

/** Default methods of an entry. */
export const DEFAULT_HTTP_METHODS: readonly string[] = Object.freeze(['GET', 'HEAD'])

/** RFC 9110 `token`: method names and header names. */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Headers a guest may not set, nor a secret be bound to: the broker owns framing, routing and
 * the connection. Lower-case.
 */
export const FORBIDDEN_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'http2-settings',
])

const ENTRY_KEYS = new Set(['scheme', 'host', 'port', 'methods', 'pathPrefix', 'allowPrivate'])

// Segments that some server decodes into a traversal or a separator, even though WHATWG left
// them alone: an encoded `/` or `\`, `..;` (Tomcat path parameters), double encodings.
const DOUBLE_ENCODED = /%(?:2e|2f|5c|00)/i

/**
 * Decode a WHATWG-normalised pathname segment by segment, refusing anything whose meaning a
 * server could read differently: `.`/`..` segments (also `..;param` and encoded `%2e%2e`),
 * encoded `/` `\` or NUL, malformed or double percent-encodings. Returns the decoded path, or
 * undefined when it is unsafe.
 *
 * @example
 * decodePathSafe('/%72epos/x') // '/repos/x'
 * decodePathSafe('/repos/..%2fadmin') // undefined
 */
export function decodePathSafe(pathname: string): string | undefined {
  if (!pathname.startsWith('/')) {
    return undefined
  }
  const out: string[] = []
  for (const raw of pathname.split('/')) {
    let segment: string
    try {
      segment = decodeURIComponent(raw)
    } catch {
      return undefined
    }
    const bare = segment.split(';', 1)[0]!
    if (bare === '.' || bare === '..' || /[/\\\0]/.test(segment) || DOUBLE_ENCODED.test(segment)) {
      return undefined
    }
    out.push(segment)
  }
  return out.join('/')
}

function fail(index: number, message: string): never {
  throw new TypeError(`http grant entry ${index}: ${message}`)
}

/** Normalise a grant's host through WHATWG URL, as the request's host will be. */
function compileHost(
  raw: string,
  scheme: 'http' | 'https',
  index: number,
): { host: string; wildcard: boolean; isIp: boolean } {
  let text = raw
  const wildcard = text.startsWith('*.')
  if (wildcard) {
    text = text.slice(2)
  }
  const bracketed = text.startsWith('[') && text.endsWith(']')
  const v6 = bracketed ? text.slice(1, -1) : text
  if (isIP(v6) === 6 && !v6.includes('%')) {
    if (wildcard) {
      fail(index, 'a wildcard cannot apply to an IP address')
    }
    const host = new URL(`${scheme}://[${v6}]/`).hostname.slice(1, -1)
    return { host, wildcard: false, isIp: true }
  }
  if (text.length === 0 || /[\s/?#@\\%:*[\]]/.test(text)) {
    fail(index, 'host must be a hostname, `*.` and a domain, or an IP address')
  }
  let hostname: string
  try {
    hostname = new URL(`${scheme}://${text}/`).hostname
  } catch {
    fail(index, 'host is not a valid hostname')
  }
  if (isIP(hostname) === 4) {
    if (wildcard) {
      fail(index, 'a wildcard cannot apply to an IP address')
    }
    return { host: hostname, wildcard: false, isIp: true }
  }
  const host = normaliseHostname(hostname)
  if (host === undefined) {
    fail(index, 'host is not a valid hostname')
  }
  if (wildcard && !host.includes('.')) {
    fail(index, 'a wildcard needs at least two labels after `*.`')
  }
  return { host, wildcard, isIp: false }
}

function compileEntry(value: unknown, index: number): CompiledHttpEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(index, 'is not an object')
  }
  for (const key of Object.keys(value)) {
    if (!ENTRY_KEYS.has(key)) {
      fail(index, `unknown field ${JSON.stringify(key)}`)
    }
  }
  const entry = value as Record<string, unknown>
  const scheme = entry.scheme ?? 'https'
  if (scheme !== 'https' && scheme !== 'http') {
    fail(index, 'scheme must be "https" or "http"')
  }
  if (typeof entry.host !== 'string') {
    fail(index, 'host is not a string')
  }
  const { host, wildcard, isIp } = compileHost(entry.host, scheme, index)
  const port = entry.port ?? DEFAULT_PORTS[scheme]
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65_535) {
    fail(index, 'port must be an integer from 1 to 65535')
  }
  const methods = entry.methods ?? DEFAULT_HTTP_METHODS
  if (
    !Array.isArray(methods) ||
    methods.length === 0 ||
    !methods.every((m) => typeof m === 'string' && HTTP_TOKEN.test(m))
  ) {
    fail(index, 'methods must be a non-empty list of HTTP method names')
  }
  const rawPrefix = entry.pathPrefix ?? '/'
  if (typeof rawPrefix !== 'string' || !rawPrefix.startsWith('/') || /[?#\s\\]/.test(rawPrefix)) {
    fail(index, 'pathPrefix must be a path starting with `/`, without query or fragment')
  }
  const normalised = new URL(rawPrefix, 'http://prefix.invalid').pathname
  const pathPrefix = decodePathSafe(normalised)
  // Checked raw too: WHATWG would silently resolve `/a/%2e%2e/b/` into another prefix.
  if (pathPrefix === undefined || decodePathSafe(rawPrefix) === undefined) {
    fail(index, 'pathPrefix must not contain dot-segments or encoded separators')
  }
  const allowPrivate = entry.allowPrivate ?? false
  if (typeof allowPrivate !== 'boolean') {
    fail(index, 'allowPrivate must be a boolean')
  }
  const shownHost = wildcard ? `*.${host}` : host
  return Object.freeze({
    scheme,
    host,
    wildcard,
    isIp,
    port: port as number,
    methods: new Set(methods.map((m: string) => m.toUpperCase())),
    pathPrefix,
    allowPrivate,
    pattern: `${formatOrigin(scheme, shownHost, port as number)}${normalised}`,
  })
}

/**
 * Compile the `grants.http` list of a token. Throws TypeError on a malformed entry: the token
 * schema should have refused it, so this is host misuse.
 *
 * @example
 * const grant = compileHttpGrant([{ host: 'api.github.com', pathPrefix: '/repos/' }])
 * matchRequest(grant, parseEgressUrl('https://api.github.com/repos/x'), 'GET') // the entry
 */
export function compileHttpGrant(entries: readonly HttpGrantEntry[]): CompiledHttpGrant {
  if (!Array.isArray(entries)) {
    throw new TypeError('http grant must be a list of entries')
  }
  const compiled = entries.map((entry, i) => compileEntry(entry, i))
  const exact = new Map<string, number[]>()
  const wildcards: number[] = []
  compiled.forEach((entry, i) => {
    if (entry.wildcard) {
      wildcards.push(i)
    } else {
      exact.set(entry.host, [...(exact.get(entry.host) ?? []), i])
    }
  })
  return Object.freeze({
    entries: Object.freeze(compiled),
    [COMPILED]: Object.freeze({ exact, wildcards: Object.freeze(wildcards) }),
  })
}

/** True when `value` came from {@link compileHttpGrant}. */
export function isCompiledHttpGrant(value: unknown): value is CompiledHttpGrant {
  return typeof value === 'object' && value !== null && COMPILED in value
}

function entryMatches(
  entry: CompiledHttpEntry,
  url: EgressUrl,
  method: string,
  path: string,
): boolean {
  return (
    entry.scheme === url.scheme &&
    entry.port === url.port &&
    entry.methods.has(method) &&
    path.startsWith(entry.pathPrefix)
  )
}

/**
 * The first entry (in grant order) that allows `method` on `url`, or undefined. Scheme, host,
 * port, method and path prefix must all match. A wildcard matches strict subdomains only and
 * never an IP literal; an IP literal matches only an entry naming that same address. A path
 * with dot-segments or encoded separators matches nothing.
 */
export function matchRequest(
  grant: CompiledHttpGrant,
  url: EgressUrl,
  method: string,
): CompiledHttpEntry | undefined {
  if (!isCompiledHttpGrant(grant)) {
    throw new TypeError('matchRequest needs a grant made by compileHttpGrant')
  }
  const path = decodePathSafe(url.pathname)
  if (path === undefined) {
    return undefined
  }
  const upper = method.toUpperCase()
  const { exact, wildcards } = grant[COMPILED]
  const candidates = [...(exact.get(url.host) ?? [])]
  if (!url.isIp) {
    for (const i of wildcards) {
      const suffix = grant.entries[i]!.host
      if (url.host.length > suffix.length + 1 && url.host.endsWith(`.${suffix}`)) {
        candidates.push(i)
      }
    }
  }
  candidates.sort((a, b) => a - b)
  for (const i of candidates) {
    const entry = grant.entries[i]!
    if (entry.isIp === url.isIp && entryMatches(entry, url, upper, path)) {
      return entry
    }
  }
  return undefined
}

/**
 * Why no entry of `grant` allows `method` on `url`, as the one rule that refused it, for the
 * guest author and the admin (issue 7). Checked from the outside in: host, scheme, port,
 * method, path. Names only what the grant and the request already show.
 *
 * @example
 * explainRefusal(compileHttpGrant([{ host: 'api.example.com' }]),
 *   parseEgressUrl('https://api.example.com:8080/'), 'GET')
 * // 'port 8080 not allowed for api.example.com'
 */
export function explainRefusal(grant: CompiledHttpGrant, url: EgressUrl, method: string): string {
  const path = decodePathSafe(url.pathname)
  if (path === undefined) {
    return 'path has a dot-segment or an encoded separator'
  }
  const upper = method.toUpperCase()
  const forHost = grant.entries.filter(
    (e) =>
      e.isIp === url.isIp &&
      (e.wildcard
        ? !url.isIp && url.host.length > e.host.length + 1 && url.host.endsWith(`.${e.host}`)
        : e.host === url.host),
  )
  if (forHost.length === 0) {
    return `host ${url.host} not allowed`
  }
  const forScheme = forHost.filter((e) => e.scheme === url.scheme)
  if (forScheme.length === 0) {
    return url.scheme === 'http' ? 'https only' : `${url.scheme} not allowed for ${url.host}`
  }
  const forPort = forScheme.filter((e) => e.port === url.port)
  if (forPort.length === 0) {
    return `port ${url.port} not allowed for ${url.host}`
  }
  const forMethod = forPort.filter((e) => e.methods.has(upper))
  if (forMethod.length === 0) {
    return `method ${upper} not allowed`
  }
  const prefixes = [...new Set(forMethod.map((e) => e.pathPrefix))]
  return `path not under ${prefixes.join(' or ')}`
}

/** HTTP methods a grant may name. */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

/** One HTTP method a grant may name. */
export type HttpMethod = (typeof HTTP_METHODS)[number]

// Printable ASCII but space, `?`, `#` and `\`; escapes and segments are checked separately.
const PATH_PREFIX = /^\/[\x21-\x22\x24-\x3e\x40-\x5b\x5d-\x7e]*$/
const ESCAPE = /%([0-9A-F]{2})/g
// Unreserved characters are written as themselves; separators, dots and `%` never encoded.
const NEVER_ENCODED = /^[A-Za-z0-9\-._~/\\%]$/

/**
 * A canonical path prefix: starts with `/`; no query, fragment, space or `\\`; escapes are
 * `%XX` in upper case, never of an unreserved character, a separator, a dot, `%` or a control
 * character; no `.` or `..` segment (also not before a `;`). So a string prefix of a prefix is
 * a prefix of its decoded form, and the decoded comparison of {@link matchRequest} agrees.
 */
function isPathPrefix(prefix: string): boolean {
  if (prefix.length > 2048 || !PATH_PREFIX.test(prefix)) {
    return false
  }
  const withoutEscapes = prefix.replace(ESCAPE, '')
  if (withoutEscapes.includes('%')) {
    return false
  }
  for (const [, hex] of prefix.matchAll(ESCAPE)) {
    const byte = Number.parseInt(hex!, 16)
    if (byte < 0x20 || byte === 0x7f || NEVER_ENCODED.test(String.fromCharCode(byte))) {
      return false
    }
  }
  try {
    decodeURIComponent(prefix)
  } catch {
    return false
  }
  return !prefix.split('/').some((segment) => {
    const bare = segment.split(';', 1)[0]
    return bare === '.' || bare === '..'
  })
}

/** A host pattern: see {@link hostPatternKind}. */
export const hostPatternSchema = z
  .string()
  .refine((host) => hostPatternKind(host) !== undefined, 'not a canonical host pattern')

/**
 * One http grant entry as a token carries it. Defaults: `scheme` `'https'` (`'http'` only when
 * written), `port` the scheme's (443 or 80), `methods` `['GET', 'HEAD']` (read-only; write the
 * others out), `pathPrefix` `'/'` (a plain string prefix: end it with `/` to stop at a segment
 * boundary). `allowPrivate: true` lets the entry reach private and loopback addresses; `false`
 * is dropped.
 *
 * @example
 * httpGrantEntrySchema.parse({ host: 'api.github.com', pathPrefix: '/repos/' })
 * // { scheme: 'https', host: 'api.github.com', port: 443, methods: ['GET', 'HEAD'],
 * //   pathPrefix: '/repos/' }
 */
export const httpGrantEntrySchema = z
  .strictObject({
    scheme: z.enum(['https', 'http']).default('https'),
    host: hostPatternSchema,
    port: z.int().min(1).max(65535).optional(),
    methods: z
      .array(z.enum(HTTP_METHODS))
      .min(1)
      .refine(unique, 'methods repeat')
      .default(() => DEFAULT_HTTP_METHODS.map((m) => m as HttpMethod)),
    pathPrefix: z
      .string()
      .refine(
        isPathPrefix,
        'a path prefix starts with / and has no ?, #, \\, spaces or dot segments',
      )
      .default('/'),
    allowPrivate: z.boolean().optional(),
  })
  .transform((entry) => {
    const out: {
      scheme: 'https' | 'http'
      host: string
      port: number
      methods: HttpMethod[]
      pathPrefix: string
      allowPrivate?: true
    } = {
      scheme: entry.scheme,
      host: entry.host,
      port: entry.port ?? DEFAULT_PORTS[entry.scheme],
      methods: entry.methods,
      pathPrefix: entry.pathPrefix,
    }
    if (entry.allowPrivate === true) {
      out.allowPrivate = true
    }
    return out
  })

/** One http grant entry as a token carries it, normalised. */
export type HttpGrant = z.output<typeof httpGrantEntrySchema>

function normalisePath(prefix: string): string {
  return prefix.startsWith('/') ? prefix : `/${prefix}`
}

/**
 * True when every request `child` allows is allowed by `parent`: same scheme and port,
 * methods ⊆, the child's path prefix starts with the parent's (a string prefix), the host
 * within the parent's ({@link isHostSubset}), and `allowPrivate` only if the parent has it.
 *
 * @example
 * const parent = httpGrantEntrySchema.parse({ host: '*.github.com', pathPrefix: '/repos/' })
 * const child = httpGrantEntrySchema.parse({ host: 'api.github.com', pathPrefix: '/repos/x/' })
 * isHttpEntrySubset(child, parent) // true
 */
export function isHttpEntrySubset(child: HttpGrant, parent: HttpGrant): boolean {
  return (
    child.scheme === parent.scheme &&
    child.port === parent.port &&
    child.methods.every((method) => parent.methods.includes(method)) &&
    normalisePath(child.pathPrefix).startsWith(normalisePath(parent.pathPrefix)) &&
    isHostSubset(child.host, parent.host) &&
    (child.allowPrivate !== true || parent.allowPrivate === true)
  )
}

/** The `http` field of a token's grants: schema, attenuation rule and compilation. */
export const httpGrant = listGrant('http', httpGrantEntrySchema, isHttpEntrySubset, (entries) =>
  compileHttpGrant(entries),
)
