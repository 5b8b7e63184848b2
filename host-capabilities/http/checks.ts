/**
 * The checks a `fetch` must pass before any I/O: the request's shape, its URL, method and path
 * against the compiled `http` grant, its headers, and every `{{secret:NAME}}` placeholder against
 * the bindings of the compiled `secrets` grant. Each function returns what it decided or throws
 * the refusal: a `HostCallError` whose message is the rule's text, never a secret.
 *
 * Pure: no network, no clock, no store. May import `./grant.js`, `./url.js`, `../types.js` and
 * the secrets capability's pure grant rules (`../secrets/grant.js`); nothing that does I/O.
 */
import { secretBindingsFor } from '../secrets/grant.js'
import type { CompiledSecretsGrant } from '../secrets/grant.js'
import { isSecretName } from '../secrets/names.js'
import { HostCallError } from '../types.js'
import { explainRefusal, FORBIDDEN_REQUEST_HEADERS, HTTP_TOKEN, matchRequest } from './grant.js'
import type { CompiledHttpEntry, CompiledHttpGrant } from './grant.js'
import { EgressUrlError, explicitOrigin, parseEgressUrl } from './url.js'
import type { EgressUrl } from './url.js'

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

/** What {@link authoriseRequest} allows: where the request goes, and which secrets it needs. */
export interface AuthorisedRequest {
  readonly url: EgressUrl
  /** The first grant entry that allows the request. */
  readonly entry: CompiledHttpEntry
  /** The secrets the request's placeholders name, each where its binding says. */
  readonly secrets: readonly string[]
  /**
   * Every secret the run could ever have sent to this request's origin (bound to it): all are
   * read, and all redacted from the answer.
   */
  readonly reachable: readonly string[]
}

const REQUEST_FIELDS = new Set(['method', 'url', 'headers', 'body', 'timeoutMs'])

/** `{{secret:NAME}}`, NAME a secret name as the secrets capability defines it. */
const PLACEHOLDER = /\{\{secret:([^{}]*)\}\}/g
const PLACEHOLDER_START = '{{secret:'
const PLACEHOLDER_BYTES = Buffer.from(PLACEHOLDER_START)

// What Node accepts in a header value (`checkInvalidHeaderChar`); CR, LF and NUL are outside.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/

const invalid = (message: string) => new HostCallError('invalid', message)
const denied = (message: string) => new HostCallError('denied', message)

function isU32(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff
}

/** True when `value` may stand on a request line as a method: a token of at most 64 chars. */
export function isHttpMethod(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 64 && HTTP_TOKEN.test(value)
}

/**
 * Check the worker's `request` and return a fresh copy with exactly the WIT fields, the method
 * upper-cased. Throws `invalid` on any other shape.
 *
 * @example
 * parseHttpRequest({ method: 'get', url: 'https://api.example.com/', headers: [] }).method // 'GET'
 */
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
  if (!isHttpMethod(method)) {
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
 * Decide whether `req` may go, before any I/O: URL, placeholders outside headers, grant entry,
 * header names and values, header bytes, secret bindings, `Range` on a run that uses secrets.
 * Throws the first refusal (`invalid`, `denied` or `limit-exceeded`), naming its rule.
 *
 * @example
 * const allowed = authoriseRequest(parseHttpRequest(args[0]), httpGrant, secretsGrant, 16_384)
 * allowed.entry.allowPrivate // what the address check may let through
 */
export function authoriseRequest(
  req: HttpRequest,
  grant: CompiledHttpGrant,
  secretsGrant: CompiledSecretsGrant | undefined,
  maxRequestHeaderBytes: number,
): AuthorisedRequest {
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
  checkHeaderBytes(req.headers, maxRequestHeaderBytes)
  const secrets = checkPlaceholders(req.headers, secretsGrant, url)
  // An upstream may keep a secret from an earlier call and hand it back to a later one that
  // carried none: every secret bound to this origin, the only one it can have been sent to.
  // Not those bound elsewhere: redacting them from this origin's answer told a script which of
  // the candidates it had an allowed echo host send back was a secret (fourteenth outside
  // attack: a PIN bound to another origin, found in one fetch).
  const reachable = (secretsGrant?.entries ?? [])
    .filter((e) => secretBindingsFor(secretsGrant, e.name, url).length > 0)
    .map((e) => e.name)
  if (reachable.length > 0 && req.headers.some((h) => /^(?:range|if-range)$/i.test(h.name))) {
    // Slices of an echoed secret would each escape whole-value redaction.
    throw denied('Range not allowed on a run that uses secrets')
  }
  return { url, entry, secrets, reachable }
}

/**
 * Put each secret's value in place of its placeholder. A secret with no value gets the same
 * `denied` as one not granted; a value Node could not send makes the header `invalid`.
 *
 * @example
 * substituteSecrets(req.headers, allowed, new Map([['github_token', value]]))
 */
export function substituteSecrets(
  headers: readonly HttpHeader[],
  allowed: AuthorisedRequest,
  values: ReadonlyMap<string, string>,
): HttpHeader[] {
  for (const name of allowed.secrets) {
    if (!values.has(name)) {
      throw secretNotGranted(name, allowed.url)
    }
  }
  return headers.map(({ name, value }) => {
    const substituted = value.replace(PLACEHOLDER, (_m, secret: string) => values.get(secret)!)
    if (!HEADER_VALUE.test(substituted)) {
      throw invalid(`header value not sendable once its secret is substituted (${name})`)
    }
    return { name, value: substituted }
  })
}

/** Wire size of headers: `name: value\r\n` each. Values are Latin-1 by now: 1 byte a char. */
export function headerBytes(headers: readonly HttpHeader[]): number {
  return headers.reduce((n, h) => n + h.name.length + h.value.length + 4, 0)
}

/** Throw `limit-exceeded` when the headers take more than `max` bytes on the wire. */
export function checkHeaderBytes(headers: readonly HttpHeader[], max: number): void {
  if (headerBytes(headers) > max) {
    throw new HostCallError('limit-exceeded', `request headers exceed ${max} bytes`)
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

/** The placeholder names in one header value; throws `invalid` on a malformed placeholder. */
function placeholderNames({ name: header, value }: HttpHeader): string[] {
  const names: string[] = []
  const rest = value.replace(PLACEHOLDER, (_match, name: string) => {
    if (!isSecretName(name)) {
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

/** The same answer whether or not the secret exists, or has a value. */
function secretNotGranted(name: string, url: EgressUrl): HostCallError {
  return denied(`secret ${name} not granted for ${explicitOrigin(url.scheme, url.host, url.port)}`)
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
        throw secretNotGranted(name, url)
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
