/**
 * The broker half of `warden:platform/http`: the only place a guest's bytes leave the host.
 * Every call is checked again here (shape, grant, headers, secrets, budget, resolved
 * addresses), then sent on a fresh connection to the address that was checked.
 */
import { createHash } from 'node:crypto'
import { lookup as dnsLookup } from 'node:dns/promises'
import { request as httpRequest } from 'node:http'
import type { IncomingMessage, OutgoingHttpHeaders, RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { LookupFunction } from 'node:net'
import { rootCertificates } from 'node:tls'
import { isCompiledSecretsGrant, secretBindingsFor } from '../secrets/grant.js'
import type { CompiledSecretsGrant } from '../secrets/grant.js'
import type { Redactor } from '../secrets/redact.js'
import { HostCallError } from '../types.js'
import type { BrokerCapability, RunContext, SecretSource } from '../types.js'
import { addressRange } from './address.js'
import type { AddressClass, AddressRangeMatch } from './address.js'
import { httpDescriptor } from './descriptor.js'
import {
  explainRefusal,
  FORBIDDEN_REQUEST_HEADERS,
  HTTP_TOKEN,
  isCompiledHttpGrant,
  matchRequest,
} from './grant.js'
import type { CompiledHttpEntry } from './grant.js'
import { responseRedactor } from './redact.js'
import type { SubstitutedSecret } from './redact.js'
import { auditTarget, EgressUrlError, explicitOrigin, parseEgressUrl } from './url.js'
import type { EgressUrl } from './url.js'

export { FORBIDDEN_REQUEST_HEADERS } from './grant.js'
export { redactSecretBytes, redactSecrets } from './redact.js'
export type { SubstitutedSecret } from './redact.js'

/** The interface key of the `http` grant in `RunContext.grants`. */
export const HTTP_INTERFACE = 'warden:platform/http'

/** The interface key of the `secrets` grant, read to bind placeholders to origins and headers. */
export const SECRETS_INTERFACE = 'warden:platform/secrets'

/** The WIT `header` record as jco represents it. */
export interface HttpHeader {
  name: string
  value: string
}

/** The WIT `request` record as jco lifts it. */
export interface HttpRequest {
  method: string
  url: string
  headers: HttpHeader[]
  body: Uint8Array | undefined
  timeoutMs: number | undefined
}

/** The WIT `response` record as jco lowers it. */
export interface HttpResponse {
  status: number
  headers: HttpHeader[]
  body: Uint8Array
}

/** One address from a DNS answer. */
export interface ResolvedAddress {
  address: string
  family: number
}

/** What {@link createHttpCapability} needs from the host. */
export interface HttpCapabilityDeps {
  /** Where secret values come from. Absent: every placeholder is denied. */
  secrets?: SecretSource
  /**
   * Resolve a hostname to every address. Called once per request; ALL the addresses are
   * classified, then the connection goes to them (in order) and nowhere else.
   * Default: `dns.promises.lookup(host, { all: true, verbatim: true })`.
   */
  lookup?: (host: string) => Promise<readonly ResolvedAddress[]>
  /** Clock in ms for the per-request deadline. Default `Date.now`. */
  now?: () => number
  /** Most bytes of guest headers (`name: value\r\n`, after substitution). Default 16384. */
  maxRequestHeaderBytes?: number
  /** Most bytes of upstream response headers. Default 32768. */
  maxResponseHeaderBytes?: number
  /** Most bytes of upstream response body. Default 5 MiB. */
  maxResponseBytes?: number
  /** Per-request timeout (DNS, connect, headers and body), in ms; also the cap. Default 10000. */
  defaultTimeoutMs?: number
  /**
   * Extra trust anchors for HTTPS (PEM), ADDED to Node's defaults: a private PKI, or a test CA.
   * Certificate and hostname verification are never disabled.
   */
  ca?: string | readonly string[]
}

interface ResolvedDeps {
  readonly secrets: SecretSource | undefined
  readonly lookup: (host: string) => Promise<readonly ResolvedAddress[]>
  readonly now: () => number
  readonly maxRequestHeaderBytes: number
  readonly maxResponseHeaderBytes: number
  readonly maxResponseBytes: number
  readonly defaultTimeoutMs: number
  readonly ca: readonly string[] | undefined
}

const REQUEST_FIELDS = new Set(['method', 'url', 'headers', 'body', 'timeoutMs'])

/** `{{secret:NAME}}`. Names: letters, digits, `_`, `.`, `-`, at most 128. */
const PLACEHOLDER = /\{\{secret:([^{}]*)\}\}/g
const SECRET_NAME = /^[A-Za-z0-9_.-]{1,128}$/
const PLACEHOLDER_START = '{{secret:'

// What Node accepts in a header value (`checkInvalidHeaderChar`); CR, LF and NUL are outside.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/

/** Redactors kept per capability, keyed by a digest of their secrets: building one compiles. */
const REDACTOR_CACHE_SIZE = 16

/** Node's default resolver, in the shape of {@link HttpCapabilityDeps.lookup}. */
async function defaultLookup(host: string): Promise<readonly ResolvedAddress[]> {
  return dnsLookup(host, { all: true, verbatim: true })
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) {
    return fallback
  }
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive integer`)
  }
  return value
}

function resolveDeps(deps: HttpCapabilityDeps): ResolvedDeps {
  return Object.freeze({
    secrets: deps.secrets,
    lookup: deps.lookup ?? defaultLookup,
    now: deps.now ?? Date.now,
    maxRequestHeaderBytes: positiveInt(deps.maxRequestHeaderBytes, 16_384, 'maxRequestHeaderBytes'),
    maxResponseHeaderBytes: positiveInt(
      deps.maxResponseHeaderBytes,
      32_768,
      'maxResponseHeaderBytes',
    ),
    maxResponseBytes: positiveInt(deps.maxResponseBytes, 5 * 1024 * 1024, 'maxResponseBytes'),
    defaultTimeoutMs: positiveInt(deps.defaultTimeoutMs, 10_000, 'defaultTimeoutMs'),
    ca: deps.ca === undefined ? undefined : typeof deps.ca === 'string' ? [deps.ca] : [...deps.ca],
  })
}

const invalid = (message: string) => new HostCallError('invalid', message)
const denied = (message: string) => new HostCallError('denied', message)
const limitExceeded = (message: string) => new HostCallError('limit-exceeded', message)
const upstream = (message: string) => new HostCallError('upstream', message)

function isU32(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff
}

/** Check the worker's `request` and return a fresh copy with exactly the WIT fields. */
export function parseHttpRequest(value: unknown): HttpRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('request is not a record')
  }
  for (const key of Object.keys(value)) {
    if (!REQUEST_FIELDS.has(key)) {
      throw invalid('request has an unknown field')
    }
  }
  const { method, url, headers, body, timeoutMs } = value as Record<string, unknown>
  if (typeof method !== 'string' || method.length > 64 || !HTTP_TOKEN.test(method)) {
    throw invalid('request.method is not an HTTP method name')
  }
  if (method.toUpperCase() === 'CONNECT') {
    throw invalid('CONNECT is not supported')
  }
  if (typeof url !== 'string') {
    throw invalid('request.url is not a string')
  }
  if (!Array.isArray(headers)) {
    throw invalid('request.headers is not a list')
  }
  const copied: HttpHeader[] = headers.map((header: unknown, i) => {
    if (typeof header !== 'object' || header === null) {
      throw invalid(`request.headers[${i}] is not a record`)
    }
    const { name, value: headerValue } = header as Record<string, unknown>
    if (typeof name !== 'string' || typeof headerValue !== 'string') {
      throw invalid(`request.headers[${i}] is not a name and a value`)
    }
    return { name, value: headerValue }
  })
  // jco lifts `none` as undefined; null is accepted as none too, since it carries nothing.
  if (body !== undefined && body !== null && !(body instanceof Uint8Array)) {
    throw invalid('request.body is not a list<u8>')
  }
  if (timeoutMs !== undefined && timeoutMs !== null && !isU32(timeoutMs)) {
    throw invalid('request.timeoutMs is not a u32')
  }
  return {
    method: method.toUpperCase(),
    url,
    headers: copied,
    body: body ?? undefined,
    timeoutMs: timeoutMs ?? undefined,
  }
}

/**
 * Check the guest's headers before substitution: token names, sendable values, none forbidden.
 * A name is echoed in a message only once it is known to be a token.
 */
function checkHeaders(headers: readonly HttpHeader[]): void {
  headers.forEach(({ name, value }, i) => {
    if (!HTTP_TOKEN.test(name)) {
      throw invalid(`header name is not a token (request.headers[${i}])`)
    }
    if (!HEADER_VALUE.test(value)) {
      throw invalid(
        CONTROL.test(value)
          ? `control character in header value (${name})`
          : `character outside Latin-1 in header value (${name})`,
      )
    }
    if (FORBIDDEN_REQUEST_HEADERS.has(name.toLowerCase())) {
      throw invalid(`header ${name} not allowed (set by the host)`)
    }
  })
}

/** Wire size of headers: `name: value\r\n` each. Values are Latin-1 by now: 1 byte a char. */
function headerBytes(headers: readonly HttpHeader[]): number {
  return headers.reduce((n, h) => n + h.name.length + h.value.length + 4, 0)
}

/** The placeholder names in one header value; throws `invalid` on a malformed placeholder. */
function placeholderNames({ name: header, value }: HttpHeader): string[] {
  const names: string[] = []
  const rest = value.replace(PLACEHOLDER, (_match, name: string) => {
    if (!SECRET_NAME.test(name)) {
      throw invalid(`malformed secret placeholder in header value (${header})`)
    }
    names.push(name)
    return ''
  })
  if (rest.includes(PLACEHOLDER_START)) {
    throw invalid(`malformed secret placeholder in header value (${header})`)
  }
  return names
}

function containsPlaceholder(text: string): boolean {
  const lower = text.toLowerCase()
  if (lower.includes(PLACEHOLDER_START)) {
    return true
  }
  return lower.replace(/%7b/g, '{').replace(/%7d/g, '}').includes(PLACEHOLDER_START)
}

const PLACEHOLDER_BYTES = Buffer.from(PLACEHOLDER_START)

/** The run's compiled secrets grant; any other shape binds nothing (fail closed). */
function secretsGrantOf(ctx: RunContext): CompiledSecretsGrant | undefined {
  const grant = ctx.grants[SECRETS_INTERFACE]
  return isCompiledSecretsGrant(grant) ? grant : undefined
}

/** `x-api-key` → `X-Api-Key`, for messages. */
function displayHeader(lower: string): string {
  return lower.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase())
}

/**
 * Check that every placeholder sits where its binding says (issue 7): a request to a bound
 * origin, in the bound header, as the whole value after the bound prefix. Throws `denied`
 * naming the rule; never reads a value. Returns the names to substitute.
 */
function checkPlaceholders(
  headers: readonly HttpHeader[],
  grant: CompiledSecretsGrant | undefined,
  url: EgressUrl,
): string[] {
  const names = new Set<string>()
  for (const header of headers) {
    for (const name of placeholderNames(header)) {
      const bindings = secretBindingsFor(grant, name, url)
      if (bindings.length === 0) {
        // Same answer whether or not the secret exists.
        const origin = explicitOrigin(url.scheme, url.host, url.port)
        throw denied(`secret ${name} not granted for ${origin}`)
      }
      const forHeader = bindings.filter((b) => b.header === header.name.toLowerCase())
      if (forHeader.length === 0) {
        const allowed = [...new Set(bindings.map((b) => displayHeader(b.header)))]
        throw denied(`secret ${name} only allowed in header ${allowed.join(' or ')}`)
      }
      const placeholder = `{{secret:${name}}}`
      if (!forHeader.some((b) => header.value === b.prefix + placeholder)) {
        const exact = forHeader.map((b) => `"${b.prefix}${placeholder}"`).join(' or ')
        throw denied(`header ${header.name} must be exactly ${exact}`)
      }
      names.add(name)
    }
  }
  return [...names]
}

/** Reject with `reason()` when `signal` aborts first. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, reason: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(reason())
      return
    }
    const onAbort = () => reject(reason())
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

/** Classes a DNS answer may never have, even with `allowPrivate`; only an IP literal grant can. */
const LITERAL_ONLY: ReadonlySet<AddressClass> = new Set(['metadata', 'unspecified'])

function classify(address: string): AddressRangeMatch | undefined {
  try {
    return addressRange(address)
  } catch {
    return undefined
  }
}

const CLASS_NAMES: Readonly<Record<AddressClass, string>> = {
  public: 'a public',
  loopback: 'a loopback',
  private: 'a private',
  'link-local': 'a link-local',
  cgnat: 'a CGNAT',
  multicast: 'a multicast',
  metadata: 'a metadata',
  unspecified: 'an unspecified',
  reserved: 'a reserved',
}

/** `a private address (10.0.0.0/8)`: the rule, not the address. */
function describeClass(match: AddressRangeMatch): string {
  const range = match.range === undefined ? '' : ` (${match.range})`
  return `${CLASS_NAMES[match.class]} address${range}`
}

/** Map a Node socket/TLS/parser error to a generic guest-facing error. Never echoes `error`. */
function upstreamError(error: unknown, origin: string, maxHeaderBytes: number): HostCallError {
  const code = (error as { code?: unknown } | null)?.code
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return limitExceeded(`response headers from ${origin} exceed ${maxHeaderBytes} bytes`)
    case 'ECONNREFUSED':
      return upstream(`connection to ${origin} was refused`)
    case 'ECONNRESET':
    case 'EPIPE':
      return upstream(`connection to ${origin} was reset`)
    case 'ETIMEDOUT':
      return upstream(`connection to ${origin} timed out`)
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return upstream(`${origin} is unreachable`)
    default:
      break
  }
  if (typeof code === 'string' && code.startsWith('HPE_')) {
    return upstream(`malformed response from ${origin}`)
  }
  if (
    typeof code === 'string' &&
    (code.startsWith('ERR_TLS') ||
      code.startsWith('ERR_SSL') ||
      /CERT|SELF_SIGNED|VERIFY/.test(code) ||
      code === 'EPROTO')
  ) {
    return upstream(`TLS handshake or certificate verification with ${origin} failed`)
  }
  return upstream(`request to ${origin} failed`)
}

interface Exchange {
  url: EgressUrl
  method: string
  headers: readonly HttpHeader[]
  body: Uint8Array | undefined
  /** The whole answer, every address checked; Node tries them in order. */
  addresses: readonly ResolvedAddress[]
  /** The response will be redacted: it must come as plain bytes. */
  redacts: boolean
  /** Told the address the connection actually reached, for the audit record. */
  onConnect: (address: string) => void
  /** Bytes charged for the request: method, URL, headers and body. */
  requestBytes: number
  signal: AbortSignal
  /** Why `signal` aborted, as the guest should see it. */
  abortReason: () => HostCallError
  ctx: RunContext
}

/** Send one request on a fresh connection to the checked address; read the answer in budget. */
function exchange(deps: ResolvedDeps, x: Exchange): Promise<HttpResponse> {
  const { url, ctx } = x
  // Group duplicates under one key: Node sends an array value as repeated header lines.
  // NB: no prototype. Guest names such as `constructor`, `toString` or `__proto__` would
  // otherwise read (and send) the built-ins, or be dropped (issue 7).
  const outgoing = Object.create(null) as OutgoingHttpHeaders
  const caseOf = new Map<string, string>()
  for (const { name, value } of x.headers) {
    const lower = name.toLowerCase()
    const key = caseOf.get(lower) ?? name
    caseOf.set(lower, key)
    const prev = outgoing[key]
    outgoing[key] =
      prev === undefined ? value : [...(Array.isArray(prev) ? prev : [String(prev)]), value]
  }
  // The connection may only go to addresses that were checked: answer Node's own lookup with
  // them, never with a second DNS query. With `all: true` (autoSelectFamily, Node's default)
  // Node tries them in order, as it would a real answer.
  const pinned = x.addresses.map(({ address, family }) => ({ address, family }))
  const lookup = ((
    _host: string,
    options: { all?: boolean },
    callback: (...args: unknown[]) => void,
  ) => {
    if (options.all) {
      callback(null, pinned)
    } else {
      callback(null, pinned[0]!.address, pinned[0]!.family)
    }
  }) as unknown as LookupFunction
  const options: RequestOptions & {
    servername?: string
    ca?: string[]
    rejectUnauthorized?: boolean
  } = {
    host: url.host,
    port: url.port,
    method: x.method,
    path: url.path,
    headers: outgoing,
    // NB: never pool. A kept-alive socket was checked under another run's grant and DNS answer.
    agent: false,
    lookup,
    maxHeaderSize: deps.maxResponseHeaderBytes,
  }
  if (url.scheme === 'https') {
    options.rejectUnauthorized = true
    if (!url.isIp) {
      options.servername = url.host
    }
    if (deps.ca !== undefined) {
      options.ca = [...rootCertificates, ...deps.ca]
    }
  }
  const send = url.scheme === 'https' ? httpsRequest : httpRequest

  return new Promise<HttpResponse>((resolve, reject) => {
    if (x.signal.aborted) {
      reject(x.abortReason())
      return
    }
    let settled = false
    let failure: HostCallError | undefined
    const req = send(options)
    const settle = (error: HostCallError | undefined, value?: HttpResponse) => {
      if (settled) {
        return
      }
      settled = true
      x.signal.removeEventListener('abort', onAbort)
      if (error) {
        req.destroy()
        reject(error)
      } else {
        resolve(value!)
      }
    }
    const fail = (error: HostCallError) => {
      failure ??= error
      settle(failure)
    }
    const charge = (bytes: number) => {
      ctx.counters.egressBytes += bytes
      if (ctx.counters.egressBytes > ctx.limits.egressBytes) {
        fail(limitExceeded(`the run's egress budget of ${ctx.limits.egressBytes} bytes is spent`))
      }
    }
    const onAbort = () => fail(x.abortReason())
    x.signal.addEventListener('abort', onAbort, { once: true })

    req.on('error', (error) =>
      fail(failure ?? upstreamError(error, url.origin, deps.maxResponseHeaderBytes)),
    )
    req.once('socket', (socket) => {
      socket.once('connect', () => {
        if (socket.remoteAddress !== undefined) {
          x.onConnect(socket.remoteAddress)
        }
      })
    })
    req.on('response', (res: IncomingMessage) => {
      const raw = res.rawHeaders
      let responseHeaderBytes = 16 + (res.statusMessage?.length ?? 0)
      for (let i = 0; i + 1 < raw.length; i += 2) {
        responseHeaderBytes += raw[i]!.length + raw[i + 1]!.length + 4
      }
      if (responseHeaderBytes > deps.maxResponseHeaderBytes) {
        fail(
          limitExceeded(
            `response headers from ${url.origin} exceed ${deps.maxResponseHeaderBytes} bytes`,
          ),
        )
        return
      }
      charge(responseHeaderBytes)
      const encoding = (res.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
      if (x.redacts && encoding !== 'identity' && encoding !== '') {
        // Redaction searches plain bytes; a compressed echo of a secret would slip through.
        fail(upstream(`${url.origin} sent a compressed response on a run that uses secrets`))
        return
      }
      const chunks: Buffer[] = []
      let total = 0
      res.on('data', (chunk: Buffer) => {
        total += chunk.length
        if (total > deps.maxResponseBytes) {
          fail(
            limitExceeded(
              `response body from ${url.origin} exceeds ${deps.maxResponseBytes} bytes`,
            ),
          )
          return
        }
        chunks.push(chunk)
        charge(chunk.length)
      })
      res.on('end', () => {
        const body = new Uint8Array(total)
        let at = 0
        for (const chunk of chunks) {
          body.set(chunk, at)
          at += chunk.length
        }
        const headers: HttpHeader[] = []
        for (let i = 0; i + 1 < raw.length; i += 2) {
          headers.push({ name: raw[i]!, value: raw[i + 1]! })
        }
        settle(undefined, { status: res.statusCode ?? 0, headers, body })
      })
      res.on('error', (error) =>
        fail(failure ?? upstreamError(error, url.origin, deps.maxResponseHeaderBytes)),
      )
      res.on('close', () => {
        if (!res.complete) {
          fail(upstream(`connection to ${url.origin} closed before the response was complete`))
        }
      })
    })
    charge(x.requestBytes)
    if (settled) {
      return
    }
    req.end(
      x.body === undefined
        ? undefined
        : Buffer.from(x.body.buffer, x.body.byteOffset, x.body.byteLength),
    )
  })
}

/**
 * The `warden:platform/http` broker capability. `fetch` sends one request to an origin the
 * run's `http` grant allows, on a fresh connection to an address that was resolved and
 * classified once, and returns the upstream's answer as-is (redirects included, never followed)
 * after redacting every secret the run could have sent, in every encoding the redactor knows.
 *
 * Denied by default: any origin, method or path outside the grant; non-public addresses
 * (loopback, private, link-local, CGNAT, metadata…) unless the matched entry says
 * `allowPrivate`, and metadata or unspecified addresses behind a DNS name even then; secret
 * placeholders anywhere but the header value a binding of the `secrets` grant names for the
 * request's exact origin (`prefix` + placeholder, nothing else); guest-set `host`,
 * `content-length`, `transfer-encoding` and hop-by-hop headers; `Range` and compressed answers
 * on a run whose secrets grant binds any secret to an origin. A denial names the rule that
 * refused, never a secret.
 *
 * The audit target of a call is `METHOD scheme://host:port/path → address`: the canonical URL
 * (query left out) and the address the connection reached, once it did.
 *
 * @example
 * const http = createHttpCapability({ secrets: store })
 * const onHostCall = createBroker([http, ...])
 */
export function createHttpCapability(deps: HttpCapabilityDeps = {}): BrokerCapability {
  const config = resolveDeps(deps)
  // Keyed by the call's own `args` array: the broker asks for the target with the same one.
  const connected = new WeakMap<object, string>()
  const redactors = new Map<string, Redactor>()
  const redactorFor = (secrets: readonly SubstitutedSecret[]): Redactor => {
    const key = createHash('sha256')
      .update(JSON.stringify(secrets.map((s) => [s.name, s.value])))
      .digest('base64')
    let redactor = redactors.get(key)
    if (redactor === undefined) {
      redactor = responseRedactor(secrets)
      if (redactors.size >= REDACTOR_CACHE_SIZE) {
        redactors.delete(redactors.keys().next().value!)
      }
      redactors.set(key, redactor)
    }
    return redactor
  }
  return {
    descriptor: httpDescriptor,
    target(_fn, args) {
      const req = args[0] as { method?: unknown; url?: unknown } | undefined
      if (typeof req?.url !== 'string' || typeof req.method !== 'string') {
        return undefined
      }
      let url: EgressUrl
      try {
        url = parseEgressUrl(req.url)
      } catch {
        return undefined
      }
      const method =
        req.method.length <= 64 && HTTP_TOKEN.test(req.method) ? req.method.toUpperCase() : '-'
      const address = connected.get(args)
      return `${method} ${auditTarget(url)}${address === undefined ? '' : ` → ${address}`}`
    },
    async handle(fn: string, args: unknown[], ctx: RunContext): Promise<HttpResponse> {
      if (fn !== 'fetch') {
        throw invalid('unknown function')
      }
      if (!Array.isArray(args) || args.length !== 1) {
        throw invalid('fetch takes 1 argument')
      }
      const req = parseHttpRequest(args[0])
      return fetchOnce(config, req, ctx, {
        redactorFor,
        onConnect: (address) => connected.set(args, address),
      })
    },
  }
}

interface CallHooks {
  redactorFor: (secrets: readonly SubstitutedSecret[]) => Redactor
  onConnect: (address: string) => void
}

async function fetchOnce(
  deps: ResolvedDeps,
  req: HttpRequest,
  ctx: RunContext,
  hooks: CallHooks,
): Promise<HttpResponse> {
  const grant = ctx.grants[HTTP_INTERFACE]
  if (grant === undefined) {
    throw denied(`${HTTP_INTERFACE} is not granted to this run`)
  }
  if (!isCompiledHttpGrant(grant)) {
    // Host misuse: the run's grant was not compiled. Ends the run as `internal`.
    throw new TypeError(`ctx.grants['${HTTP_INTERFACE}'] is not a CompiledHttpGrant`)
  }
  let url: EgressUrl
  try {
    url = parseEgressUrl(req.url)
  } catch (error) {
    if (error instanceof EgressUrlError) {
      throw invalid(error.message)
    }
    throw error
  }
  if (containsPlaceholder(req.url)) {
    throw denied('secret placeholder in the URL (only a header value may carry one)')
  }
  if (
    req.body !== undefined &&
    Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength).includes(
      PLACEHOLDER_BYTES,
    )
  ) {
    throw denied('secret placeholder in the body (only a header value may carry one)')
  }
  const entry = matchRequest(grant, url, req.method)
  if (entry === undefined) {
    throw denied(explainRefusal(grant, url, req.method))
  }
  checkHeaders(req.headers)
  if (headerBytes(req.headers) > deps.maxRequestHeaderBytes) {
    throw limitExceeded(`request headers exceed ${deps.maxRequestHeaderBytes} bytes`)
  }

  // Which secrets, each where its binding says? Decide before any I/O.
  const secretsGrant = secretsGrantOf(ctx)
  const names = checkPlaceholders(req.headers, secretsGrant, url)
  // Every secret this run could ever have sent: an upstream may keep one from an earlier call
  // and hand it back to a later one that carried none.
  const reachable = (secretsGrant?.entries ?? [])
    .filter((e) => e.bindings.length > 0)
    .map((e) => e.name)
  if (reachable.length > 0 && req.headers.some((h) => /^(?:range|if-range)$/i.test(h.name))) {
    // Slices of an echoed secret would each escape whole-value redaction.
    throw denied('Range not allowed on a run that uses secrets')
  }

  const timeoutMs = Math.min(req.timeoutMs ?? deps.defaultTimeoutMs, deps.defaultTimeoutMs)
  const deadline = deps.now() + timeoutMs
  const controller = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, timeoutMs)
  const onRunEnd = () => controller.abort()
  ctx.signal.addEventListener('abort', onRunEnd, { once: true })
  if (ctx.signal.aborted) {
    controller.abort()
  }
  const abortReason = () =>
    timedOut || deps.now() >= deadline
      ? upstream(`request to ${url.origin} timed out after ${timeoutMs} ms`)
      : upstream('the run ended before the request completed')

  try {
    const values = new Map<string, string>()
    const source = deps.secrets
    if (source !== undefined) {
      for (const name of new Set([...names, ...reachable])) {
        let value: string | undefined
        try {
          value = await raceAbort(source.read(name), controller.signal, abortReason)
        } catch (error) {
          if (error instanceof HostCallError) {
            throw error
          }
          throw upstream('the secret store is unavailable')
        }
        if (value !== undefined && value !== '') {
          values.set(name, value)
        }
      }
    }
    for (const name of names) {
      if (!values.has(name)) {
        // Granted but not in the store: the same answer as not granted.
        const origin = explicitOrigin(url.scheme, url.host, url.port)
        throw denied(`secret ${name} not granted for ${origin}`)
      }
    }
    const headers: HttpHeader[] = req.headers.map(({ name, value }) => {
      const substituted = value.replace(PLACEHOLDER, (_m, secret: string) => values.get(secret)!)
      if (!HEADER_VALUE.test(substituted)) {
        throw invalid(`header value not sendable once its secret is substituted (${name})`)
      }
      return { name, value: substituted }
    })
    const redactor =
      values.size === 0
        ? undefined
        : hooks.redactorFor([...values].map(([name, value]) => ({ name, value })))
    if (redactor !== undefined) {
      // Ask for plain bytes: redaction cannot see into a compressed body.
      for (let i = headers.length - 1; i >= 0; i--) {
        if (headers[i]!.name.toLowerCase() === 'accept-encoding') {
          headers.splice(i, 1)
        }
      }
      headers.push({ name: 'accept-encoding', value: 'identity' })
    }
    const sentHeaderBytes = headerBytes(headers)
    if (sentHeaderBytes > deps.maxRequestHeaderBytes) {
      throw limitExceeded(`request headers exceed ${deps.maxRequestHeaderBytes} bytes`)
    }
    const requestBytes =
      Buffer.byteLength(req.method) +
      Buffer.byteLength(req.url) +
      sentHeaderBytes +
      (req.body?.byteLength ?? 0)
    if (ctx.counters.egressBytes + requestBytes > ctx.limits.egressBytes) {
      throw limitExceeded(`the run's egress budget of ${ctx.limits.egressBytes} bytes is spent`)
    }

    const addresses = await resolveChecked(deps, url, entry, controller.signal, abortReason)
    const response = await exchange(deps, {
      url,
      method: req.method,
      headers,
      body: req.body,
      addresses,
      redacts: redactor !== undefined,
      onConnect: hooks.onConnect,
      requestBytes,
      signal: controller.signal,
      abortReason,
      ctx,
    })
    if (redactor === undefined) {
      return response
    }
    return {
      status: response.status,
      headers: response.headers.map((h) => ({
        name: redactor.text(h.name),
        value: redactor.text(h.value),
      })),
      body: redactor.bytes(response.body),
    }
  } finally {
    clearTimeout(timer)
    ctx.signal.removeEventListener('abort', onRunEnd)
  }
}

/**
 * Resolve once and check EVERY address; the connection may go to these addresses only. An IP
 * literal is not resolved, but it is classified all the same. A refusal names the range.
 */
async function resolveChecked(
  deps: ResolvedDeps,
  url: EgressUrl,
  entry: CompiledHttpEntry,
  signal: AbortSignal,
  abortReason: () => HostCallError,
): Promise<ResolvedAddress[]> {
  let answers: readonly ResolvedAddress[]
  if (url.isIp) {
    answers = [{ address: url.host, family: url.ipFamily ?? 4 }]
  } else {
    try {
      answers = await raceAbort(Promise.resolve(deps.lookup(url.host)), signal, abortReason)
    } catch (error) {
      if (error instanceof HostCallError) {
        throw error
      }
      throw upstream(`could not resolve ${url.host}`)
    }
    if (!Array.isArray(answers) || answers.length === 0) {
      throw upstream(`could not resolve ${url.host}`)
    }
  }
  const verb = url.isIp ? 'is' : 'resolves to'
  for (const answer of answers) {
    const match = typeof answer?.address === 'string' ? classify(answer.address) : undefined
    if (match === undefined) {
      throw denied(`${url.host} resolves to something that is not an IP address`)
    }
    if (match.class === 'public') {
      continue
    }
    if (!entry.allowPrivate) {
      throw denied(`${url.host} ${verb} ${describeClass(match)}`)
    }
    if (!url.isIp && LITERAL_ONLY.has(match.class)) {
      throw denied(`${url.host} ${verb} ${describeClass(match)}, never allowed by name`)
    }
  }
  // The family comes from the address itself, not from what the resolver claimed.
  return answers.map(({ address }) => ({ address, family: isIP(address) }))
}
