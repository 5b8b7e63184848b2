/**
 * The transport of `fetch`: everything between an authorised request and the upstream's answer.
 * The request's deadline, DNS resolved once with every answer classified, a fresh connection
 * pinned to the checked addresses (TLS verified against the hostname), the egress budget and
 * the response limits, redirects returned (never followed), and the decompression policy.
 *
 * Knows nothing of grants or secrets: it is told whether private addresses are allowed and
 * whether the answer must be plain bytes. May import Node's network modules, `./address.js`,
 * `./url.js` and `../types.js`, and types only from `./checks.js`.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import { request as httpRequest } from 'node:http'
import type { IncomingMessage, OutgoingHttpHeaders, RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { LookupFunction } from 'node:net'
import { rootCertificates } from 'node:tls'
import { HostCallError } from '../types.js'
import { addressRange } from './address.js'
import type { AddressClass, AddressRangeMatch } from './address.js'
import type { HttpHeader } from './checks.js'
import type { EgressUrl } from './url.js'

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

/** What {@link createTransport} needs, every limit resolved. */
export interface TransportOptions {
  /** Resolve a hostname to every address. Default: the system resolver, all answers. */
  lookup?: (host: string) => Promise<readonly ResolvedAddress[]>
  /** Most bytes of upstream response headers. */
  maxResponseHeaderBytes: number
  /** Most bytes of upstream response body. */
  maxResponseBytes: number
  /** Extra trust anchors (PEM), added to Node's defaults. */
  ca?: readonly string[]
}

/** A request that passed every check, secrets substituted, ready to go on the wire. */
export interface OutgoingRequest {
  url: EgressUrl
  method: string
  headers: readonly HttpHeader[]
  body: Uint8Array | undefined
  /** The grant entry lets this request reach non-public addresses. */
  allowPrivate: boolean
  /** The answer will be redacted, so it must come as plain bytes. */
  plainBytesOnly: boolean
  /** Bytes charged for the request: method, URL, headers and body. */
  requestBytes: number
}

/** The run's egress budget: bytes out and in are added to `counters` as they pass. */
export interface EgressBudget {
  counters: { egressBytes: number }
  limits: { egressBytes: number }
}

/** One call's share of the run, as {@link Transport.send} needs it. */
export interface SendContext {
  budget: EgressBudget
  deadline: Deadline
  /** Told the address the connection actually reached, for the audit record. */
  onConnect: (address: string) => void
}

/** Sends authorised requests. */
export interface Transport {
  /**
   * Charge the request, resolve and check the host, send on a fresh connection to a checked
   * address, and read the answer within the limits. Throws `denied` (an address outside the
   * rules), `limit-exceeded` or `upstream`.
   */
  send(request: OutgoingRequest, call: SendContext): Promise<HttpResponse>
}

/** One request's deadline: the request's own timeout, or the end of the run. */
export interface Deadline {
  /** Aborted when the deadline passes or the run ends. */
  readonly signal: AbortSignal
  /** Why `signal` aborted, as the guest should see it. */
  reason(): HostCallError
  /** `promise`, or a rejection with {@link Deadline.reason} if the signal aborts first. */
  race<T>(promise: Promise<T>): Promise<T>
  /** Stop the timer and stop listening to the run. Call once the request is over. */
  dispose(): void
}

const denied = (message: string) => new HostCallError('denied', message)
const limitExceeded = (message: string) => new HostCallError('limit-exceeded', message)
const upstream = (message: string) => new HostCallError('upstream', message)

/** Classes a DNS answer may never have, even with `allowPrivate`; only an IP literal grant can. */
const LITERAL_ONLY: ReadonlySet<AddressClass> = new Set(['metadata', 'unspecified'])

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

/** Node's default resolver, in the shape of {@link TransportOptions.lookup}. */
async function systemLookup(host: string): Promise<readonly ResolvedAddress[]> {
  return dnsLookup(host, { all: true, verbatim: true })
}

/**
 * Start the deadline of one request: `timeoutMs` from now, or sooner if `run` aborts. The
 * guest-facing reason names `origin`.
 *
 * @example
 * const deadline = startDeadline(10_000, ctx.signal, Date.now, url.origin)
 * try { await transport.send(request, { budget: ctx, deadline, onConnect }) }
 * finally { deadline.dispose() }
 */
export function startDeadline(
  timeoutMs: number,
  run: AbortSignal,
  now: () => number,
  origin: string,
): Deadline {
  const end = now() + timeoutMs
  const controller = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, timeoutMs)
  const onRunEnd = () => controller.abort()
  run.addEventListener('abort', onRunEnd, { once: true })
  if (run.aborted) {
    controller.abort()
  }
  const reason = () =>
    timedOut || now() >= end
      ? upstream(`request to ${origin} timed out after ${timeoutMs} ms`)
      : upstream('the run ended before the request completed')
  return {
    signal: controller.signal,
    reason,
    race: (promise) => raceAbort(promise, controller.signal, reason),
    dispose() {
      clearTimeout(timer)
      run.removeEventListener('abort', onRunEnd)
    },
  }
}

/**
 * The guest's headers with any `Accept-Encoding` replaced by `identity`: redaction searches
 * plain bytes and cannot see into a compressed body.
 */
export function askForPlainBytes(headers: readonly HttpHeader[]): HttpHeader[] {
  return [
    ...headers.filter((h) => h.name.toLowerCase() !== 'accept-encoding'),
    { name: 'accept-encoding', value: 'identity' },
  ]
}

/**
 * The transport for one capability. Every request goes on a fresh connection (never pooled) to
 * an address from one DNS answer in which EVERY address was classified: non-public ones only
 * when the request says `allowPrivate`, metadata and unspecified ones only as IP literals.
 *
 * @example
 * const transport = createTransport({ maxResponseHeaderBytes: 32_768, maxResponseBytes: 5 << 20 })
 */
export function createTransport(options: TransportOptions): Transport {
  const lookup = options.lookup ?? systemLookup
  return {
    async send(request, call) {
      const { budget } = call
      if (budget.counters.egressBytes + request.requestBytes > budget.limits.egressBytes) {
        throw egressBudgetSpent(budget)
      }
      const addresses = await resolvePinned(lookup, request, call.deadline)
      return exchange(options, request, addresses, call)
    },
  }
}

function egressBudgetSpent(budget: EgressBudget): HostCallError {
  return limitExceeded(`the run's egress budget of ${budget.limits.egressBytes} bytes is spent`)
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

function classify(address: string): AddressRangeMatch | undefined {
  try {
    return addressRange(address)
  } catch {
    return undefined
  }
}

/** `a private address (10.0.0.0/8)`: the rule, not the address. */
function describeClass(match: AddressRangeMatch): string {
  const range = match.range === undefined ? '' : ` (${match.range})`
  return `${CLASS_NAMES[match.class]} address${range}`
}

/**
 * Resolve once and check EVERY address; the connection may go to these addresses only. An IP
 * literal is not resolved, but it is classified all the same. A refusal names the range.
 */
async function resolvePinned(
  lookup: (host: string) => Promise<readonly ResolvedAddress[]>,
  { url, allowPrivate }: OutgoingRequest,
  deadline: Deadline,
): Promise<ResolvedAddress[]> {
  let answers: readonly ResolvedAddress[]
  if (url.isIp) {
    answers = [{ address: url.host, family: url.ipFamily ?? 4 }]
  } else {
    try {
      answers = await deadline.race(Promise.resolve(lookup(url.host)))
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
    if (!allowPrivate) {
      throw denied(`${url.host} ${verb} ${describeClass(match)}`)
    }
    if (!url.isIp && LITERAL_ONLY.has(match.class)) {
      throw denied(`${url.host} ${verb} ${describeClass(match)}, never allowed by name`)
    }
  }
  // The family comes from the address itself, not from what the resolver claimed.
  return answers.map(({ address }) => ({ address, family: isIP(address) }))
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

type NodeRequestOptions = RequestOptions & {
  servername?: string
  ca?: string[]
  rejectUnauthorized?: boolean
}

/** Node request options for one connection to `addresses` and nowhere else. */
function requestOptions(
  options: TransportOptions,
  x: OutgoingRequest,
  addresses: readonly ResolvedAddress[],
): NodeRequestOptions {
  const { url } = x
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
  const pinned = addresses.map(({ address, family }) => ({ address, family }))
  const lookup = ((
    _host: string,
    lookupOptions: { all?: boolean },
    callback: (...args: unknown[]) => void,
  ) => {
    if (lookupOptions.all) {
      callback(null, pinned)
    } else {
      callback(null, pinned[0]!.address, pinned[0]!.family)
    }
  }) as unknown as LookupFunction
  const request: NodeRequestOptions = {
    host: url.host,
    port: url.port,
    method: x.method,
    path: url.path,
    headers: outgoing,
    // NB: never pool. A kept-alive socket was checked under another run's grant and DNS answer.
    agent: false,
    lookup,
    maxHeaderSize: options.maxResponseHeaderBytes,
  }
  if (url.scheme === 'https') {
    request.rejectUnauthorized = true
    if (!url.isIp) {
      request.servername = url.host
    }
    if (options.ca !== undefined) {
      request.ca = [...rootCertificates, ...options.ca]
    }
  }
  return request
}

/** Send one request on a fresh connection to the checked address; read the answer in budget. */
function exchange(
  options: TransportOptions,
  x: OutgoingRequest,
  addresses: readonly ResolvedAddress[],
  call: SendContext,
): Promise<HttpResponse> {
  const { url } = x
  const { budget, deadline } = call
  const send = url.scheme === 'https' ? httpsRequest : httpRequest

  return new Promise<HttpResponse>((resolve, reject) => {
    if (deadline.signal.aborted) {
      reject(deadline.reason())
      return
    }
    let settled = false
    let failure: HostCallError | undefined
    const req = send(requestOptions(options, x, addresses))
    const settle = (error: HostCallError | undefined, value?: HttpResponse) => {
      if (settled) {
        return
      }
      settled = true
      deadline.signal.removeEventListener('abort', onAbort)
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
      budget.counters.egressBytes += bytes
      if (budget.counters.egressBytes > budget.limits.egressBytes) {
        fail(egressBudgetSpent(budget))
      }
    }
    const onAbort = () => fail(deadline.reason())
    deadline.signal.addEventListener('abort', onAbort, { once: true })

    req.on('error', (error) =>
      fail(failure ?? upstreamError(error, url.origin, options.maxResponseHeaderBytes)),
    )
    req.once('socket', (socket) => {
      socket.once('connect', () => {
        if (socket.remoteAddress !== undefined) {
          call.onConnect(socket.remoteAddress)
        }
      })
    })
    req.on('response', (res: IncomingMessage) => {
      const raw = res.rawHeaders
      let responseHeaderBytes = 16 + (res.statusMessage?.length ?? 0)
      for (let i = 0; i + 1 < raw.length; i += 2) {
        responseHeaderBytes += raw[i]!.length + raw[i + 1]!.length + 4
      }
      if (responseHeaderBytes > options.maxResponseHeaderBytes) {
        fail(
          limitExceeded(
            `response headers from ${url.origin} exceed ${options.maxResponseHeaderBytes} bytes`,
          ),
        )
        return
      }
      charge(responseHeaderBytes)
      const encoding = (res.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
      // Transfer codings too: Node undoes `chunked` only, and hands on the bytes of any other
      // (`gzip, chunked` carried a compressed echo of a secret past redaction; fourteenth
      // outside attack).
      const transfer = (res.headers['transfer-encoding'] ?? 'chunked').trim().toLowerCase()
      if (
        x.plainBytesOnly &&
        ((encoding !== 'identity' && encoding !== '') ||
          (transfer !== 'chunked' && transfer !== ''))
      ) {
        // Redaction searches plain bytes; a compressed echo of a secret would slip through.
        fail(upstream(`${url.origin} sent a compressed response on a run that uses secrets`))
        return
      }
      const chunks: Buffer[] = []
      let total = 0
      res.on('data', (chunk: Buffer) => {
        total += chunk.length
        if (total > options.maxResponseBytes) {
          fail(
            limitExceeded(
              `response body from ${url.origin} exceeds ${options.maxResponseBytes} bytes`,
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
        fail(failure ?? upstreamError(error, url.origin, options.maxResponseHeaderBytes)),
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
