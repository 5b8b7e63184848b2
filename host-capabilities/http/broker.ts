/**
 * The broker half of `warden:platform/http`: the only place a guest's bytes leave the host.
 * Every call is checked again here (shape, grant, headers, secrets, budget, resolved
 * addresses), then sent on a fresh connection to the address that was checked.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import { request as httpRequest } from 'node:http'
import type { IncomingMessage, OutgoingHttpHeaders, RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { LookupFunction } from 'node:net'
import { rootCertificates } from 'node:tls'
import { HostCallError } from '../types.js'
import type { BrokerCapability, RunContext, SecretSource } from '../types.js'
import { classifyAddress } from './address.js'
import type { AddressClass } from './address.js'
import { httpDescriptor } from './descriptor.js'
import { redactSecretBytes, redactSecrets } from './redact.js'
import type { SubstitutedSecret } from './redact.js'
import { HTTP_TOKEN, isCompiledHttpGrant, matchRequest } from './grant.js'
import type { CompiledHttpEntry } from './grant.js'
import { EgressUrlError, parseEgressUrl } from './url.js'
import type { EgressUrl } from './url.js'

export { redactSecretBytes, redactSecrets } from './redact.js'
export type { SubstitutedSecret } from './redact.js'

/** The interface key of the `http` grant in `RunContext.grants`. */
export const HTTP_INTERFACE = 'warden:platform/http'

/** The interface key of the `secrets` grant, read to bind placeholders to hosts. */
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

/** Headers a guest may not set: the broker owns framing, routing and the connection. */
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

const REQUEST_FIELDS = new Set(['method', 'url', 'headers', 'body', 'timeoutMs'])

/** `{{secret:NAME}}`. Names: letters, digits, `_`, `.`, `-`, at most 128. */
const PLACEHOLDER = /\{\{secret:([^{}]*)\}\}/g
const SECRET_NAME = /^[A-Za-z0-9_.-]{1,128}$/
const PLACEHOLDER_START = '{{secret:'

// What Node accepts in a header value (`checkInvalidHeaderChar`); CR, LF and NUL are outside.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

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

/** Check the guest's headers before substitution: token names, sendable values, none forbidden. */
function checkHeaders(headers: readonly HttpHeader[]): void {
  headers.forEach(({ name, value }, i) => {
    if (!HTTP_TOKEN.test(name)) {
      throw invalid(`request.headers[${i}] name is not a token`)
    }
    if (!HEADER_VALUE.test(value)) {
      throw invalid(`request.headers[${i}] value contains CR, LF, NUL or another control character`)
    }
    if (FORBIDDEN_REQUEST_HEADERS.has(name.toLowerCase())) {
      throw invalid(`header ${name.toLowerCase()} is set by the host, not the guest`)
    }
  })
}

/** Wire size of headers: `name: value\r\n` each. Values are Latin-1 by now: 1 byte a char. */
function headerBytes(headers: readonly HttpHeader[]): number {
  return headers.reduce((n, h) => n + h.name.length + h.value.length + 4, 0)
}

/** The placeholder names in one header value; throws `invalid` on a malformed placeholder. */
function placeholderNames(value: string, index: number): string[] {
  const names: string[] = []
  const rest = value.replace(PLACEHOLDER, (_match, name: string) => {
    if (!SECRET_NAME.test(name)) {
      throw invalid(`request.headers[${index}] has a malformed secret placeholder`)
    }
    names.push(name)
    return ''
  })
  if (rest.includes(PLACEHOLDER_START)) {
    throw invalid(`request.headers[${index}] has a malformed secret placeholder`)
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

interface SecretsGrantEntry {
  name: string
  hosts: readonly string[]
}

/**
 * The `secrets` grant as the broker reads it: `{ entries: { name, hosts, reveal }[] }`. Any
 * other shape binds nothing (fail closed).
 */
function readSecretsGrant(value: unknown): readonly SecretsGrantEntry[] {
  if (typeof value !== 'object' || value === null) {
    return []
  }
  const entries = (value as { entries?: unknown }).entries
  if (!Array.isArray(entries)) {
    return []
  }
  const ok = entries.every(
    (e: unknown) =>
      typeof e === 'object' &&
      e !== null &&
      typeof (e as SecretsGrantEntry).name === 'string' &&
      Array.isArray((e as SecretsGrantEntry).hosts) &&
      (e as SecretsGrantEntry).hosts.every((h: unknown) => typeof h === 'string') &&
      typeof (e as { reveal?: unknown }).reveal === 'boolean',
  )
  return ok ? (entries as SecretsGrantEntry[]) : []
}

function isBound(entries: readonly SecretsGrantEntry[], name: string, url: EgressUrl): boolean {
  return entries.some((e) => e.name === name && e.hosts.some((bound) => bindsTo(bound, url)))
}

/**
 * A secret binding is `host` (any port the http grant allows) or `host:port` (that port only);
 * IPv6 hosts may be bracketed. Compared exactly with the request's normalised host.
 */
function bindsTo(bound: string, url: EgressUrl): boolean {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(bound)
  if (!match) {
    return false
  }
  const host = match[1]!.replace(/^\[(.*)\]$/, '$1')
  return host === url.host && (match[2] === undefined || Number(match[2]) === url.port)
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

function classify(address: string): AddressClass | undefined {
  try {
    return classifyAddress(address)
  } catch {
    return undefined
  }
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
  carriesSecrets: boolean
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
  const outgoing: OutgoingHttpHeaders = {}
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
      if (x.carriesSecrets && encoding !== 'identity' && encoding !== '') {
        // Redaction searches plain bytes; a compressed echo of a secret would slip through.
        fail(upstream(`${url.origin} sent an encoded response to a request carrying a secret`))
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
 * after redacting every secret it substituted.
 *
 * Denied by default: any origin, method or path outside the grant; non-public addresses
 * (loopback, private, link-local, CGNAT, metadata…) unless the matched entry says
 * `allowPrivate`, and metadata or unspecified addresses behind a DNS name even then; secret
 * placeholders anywhere but header values, or for a secret the `secrets` grant does not bind to
 * the request's exact host; guest-set `host`, `content-length`, `transfer-encoding` and
 * hop-by-hop headers; `Range` on a request carrying a secret.
 *
 * @example
 * const http = createHttpCapability({ secrets: store })
 * const onHostCall = createBroker([http, ...])
 */
export function createHttpCapability(deps: HttpCapabilityDeps = {}): BrokerCapability {
  const config = resolveDeps(deps)
  return {
    descriptor: httpDescriptor,
    target(_fn, args) {
      // The URL as the guest wrote it: placeholders are refused in URLs, so no secret is here.
      const req = args[0] as { method?: unknown; url?: unknown } | undefined
      return typeof req?.url === 'string' && typeof req.method === 'string'
        ? `${req.method.slice(0, 16)} ${req.url.slice(0, 2048)}`
        : undefined
    },
    async handle(fn: string, args: unknown[], ctx: RunContext): Promise<HttpResponse> {
      if (fn !== 'fetch') {
        throw invalid('unknown function')
      }
      if (!Array.isArray(args) || args.length !== 1) {
        throw invalid('fetch takes 1 argument')
      }
      const req = parseHttpRequest(args[0])
      return fetchOnce(config, req, ctx)
    },
  }
}

async function fetchOnce(
  deps: ResolvedDeps,
  req: HttpRequest,
  ctx: RunContext,
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
    throw denied('secret placeholders are only substituted in header values, not in the URL')
  }
  if (
    req.body !== undefined &&
    Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength).includes(
      PLACEHOLDER_BYTES,
    )
  ) {
    throw denied('secret placeholders are only substituted in header values, not in the body')
  }
  const entry = matchRequest(grant, url, req.method)
  if (entry === undefined) {
    throw denied(
      `${req.method} to ${url.origin} is not granted (or that path is outside the grant)`,
    )
  }
  checkHeaders(req.headers)
  if (headerBytes(req.headers) > deps.maxRequestHeaderBytes) {
    throw limitExceeded(`request headers exceed ${deps.maxRequestHeaderBytes} bytes`)
  }

  // Which secrets, and are they all bound to this exact host? Decide before any I/O.
  const wanted = req.headers.map((h, i) => placeholderNames(h.value, i))
  const names = [...new Set(wanted.flat())]
  const bindings = readSecretsGrant(ctx.grants[SECRETS_INTERFACE])
  for (const name of names) {
    if (!isBound(bindings, name, url)) {
      // Same answer whether or not the secret exists.
      throw denied(`secret ${name} is not granted for ${url.host}`)
    }
  }
  if (names.length > 0 && req.headers.some((h) => /^(?:range|if-range)$/i.test(h.name))) {
    // Slices of an echoed secret would each escape whole-value redaction.
    throw denied('a request carrying a secret cannot ask for a byte range')
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
    const secrets: SubstitutedSecret[] = []
    if (names.length > 0) {
      const source = deps.secrets
      for (const name of names) {
        let value: string | undefined
        try {
          value =
            source === undefined
              ? undefined
              : await raceAbort(source.read(name), controller.signal, abortReason)
        } catch (error) {
          if (error instanceof HostCallError) {
            throw error
          }
          throw upstream('the secret store is unavailable')
        }
        if (value === undefined) {
          throw denied(`secret ${name} is not granted for ${url.host}`)
        }
        secrets.push({ name, value })
      }
    }
    const byName = new Map(secrets.map((s) => [s.name, s.value]))
    const headers: HttpHeader[] = req.headers.map(({ name, value }, i) => {
      const substituted = value.replace(PLACEHOLDER, (_m, secret: string) => byName.get(secret)!)
      if (!HEADER_VALUE.test(substituted)) {
        throw invalid(
          `request.headers[${i}] is not a valid header value once its secret is substituted`,
        )
      }
      return { name, value: substituted }
    })
    if (secrets.length > 0) {
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
      carriesSecrets: secrets.length > 0,
      requestBytes,
      signal: controller.signal,
      abortReason,
      ctx,
    })
    if (secrets.length === 0) {
      return response
    }
    return {
      status: response.status,
      headers: response.headers.map((h) => ({
        name: redactSecrets(h.name, secrets),
        value: redactSecrets(h.value, secrets),
      })),
      body: redactSecretBytes(response.body, secrets),
    }
  } finally {
    clearTimeout(timer)
    ctx.signal.removeEventListener('abort', onRunEnd)
  }
}

/**
 * Resolve once and check EVERY address; the connection may go to these addresses only. An IP
 * literal is not resolved, but it is classified all the same.
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
  for (const answer of answers) {
    const cls = typeof answer?.address === 'string' ? classify(answer.address) : undefined
    const ok =
      cls === 'public' ||
      (cls !== undefined && entry.allowPrivate && (url.isIp || !LITERAL_ONLY.has(cls)))
    if (!ok) {
      throw denied(`egress to ${url.origin} is not granted: it resolves to a non-public address`)
    }
  }
  // The family comes from the address itself, not from what the resolver claimed.
  return answers.map(({ address }) => ({ address, family: isIP(address) }))
}
