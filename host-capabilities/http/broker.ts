/**
 * The broker half of `warden:platform/http`: the only place a guest's bytes leave the host. A
 * `fetch` is authorise, then send: parse the arguments, check them against the run's grants
 * (`checks.ts`, pure), read and substitute the secrets, send through the transport
 * (`transport.ts`, all the network), redact the answer (`redact.ts`), and name the target for
 * the audit record. Every decision is made here or in those files, none in the worker.
 *
 * May import every module of this folder and the secrets capability's public door.
 */
import { isCompiledSecretsGrant, SECRETS_INTERFACE } from '../secrets/index.js'
import type { CompiledSecretsGrant, Redactor } from '../secrets/index.js'
import { HostCallError } from '../types.js'
import type { BrokerCapability, RunContext, SecretSource } from '../types.js'
import {
  authoriseRequest,
  headerBytes,
  isHttpMethod,
  parseHttpRequest,
  substituteSecrets,
} from './checks.js'
import type { HttpRequest } from './checks.js'
import { httpDescriptor } from './descriptor.js'
import { isCompiledHttpGrant } from './grant.js'
import type { CompiledHttpGrant } from './grant.js'
import { redactResponse, responseRedactorCache } from './redact.js'
import type { SubstitutedSecret } from './redact.js'
import { askForPlainBytes, createTransport, startDeadline } from './transport.js'
import type { Deadline, HttpResponse, ResolvedAddress, Transport } from './transport.js'
import { auditTarget, parseEgressUrl } from './url.js'
import type { EgressUrl } from './url.js'

/** The interface key of the `http` grant in `RunContext.grants`. */
export const HTTP_INTERFACE = httpDescriptor.interface

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
  /**
   * Where authorised requests go instead of the network (`warden/testing`'s scripted answers).
   * Every check before it is the same: grant, secrets bindings, header rules, redaction of the
   * answer. Replacing it drops only what the real one does: DNS and address classification,
   * TLS and the response limits. Default: a real transport over `lookup` and `ca`.
   */
  transport?: Transport
}

/** What one capability holds: its resolved options, its transport, its redactors. */
interface HttpBroker {
  readonly secrets: SecretSource | undefined
  readonly now: () => number
  readonly maxRequestHeaderBytes: number
  readonly defaultTimeoutMs: number
  readonly transport: Transport
  readonly redactorFor: (secrets: readonly SubstitutedSecret[]) => Redactor
}

const invalid = (message: string) => new HostCallError('invalid', message)

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) {
    return fallback
  }
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive integer`)
  }
  return value
}

function resolveDeps(deps: HttpCapabilityDeps): HttpBroker {
  const maxRequestHeaderBytes = positiveInt(
    deps.maxRequestHeaderBytes,
    16_384,
    'maxRequestHeaderBytes',
  )
  const transport =
    deps.transport ??
    createTransport({
      lookup: deps.lookup,
      maxResponseHeaderBytes: positiveInt(
        deps.maxResponseHeaderBytes,
        32_768,
        'maxResponseHeaderBytes',
      ),
      maxResponseBytes: positiveInt(deps.maxResponseBytes, 5 * 1024 * 1024, 'maxResponseBytes'),
      ca:
        deps.ca === undefined ? undefined : typeof deps.ca === 'string' ? [deps.ca] : [...deps.ca],
    })
  return Object.freeze({
    secrets: deps.secrets,
    now: deps.now ?? Date.now,
    maxRequestHeaderBytes,
    defaultTimeoutMs: positiveInt(deps.defaultTimeoutMs, 10_000, 'defaultTimeoutMs'),
    transport,
    redactorFor: responseRedactorCache(),
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
  const broker = resolveDeps(deps)
  // Keyed by the call's own `args` array: the broker asks for the target with the same one.
  const connected = new WeakMap<object, string>()
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
      const method = isHttpMethod(req.method) ? req.method.toUpperCase() : '-'
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
      return fetchOnce(broker, req, ctx, (address) => connected.set(args, address))
    },
  }
}

/** Authorise, then send: every check before any I/O, every secret redacted from the answer. */
async function fetchOnce(
  broker: HttpBroker,
  req: HttpRequest,
  ctx: RunContext,
  onConnect: (address: string) => void,
): Promise<HttpResponse> {
  const allowed = authoriseRequest(
    req,
    httpGrantOf(ctx),
    secretsGrantOf(ctx),
    broker.maxRequestHeaderBytes,
  )
  const timeoutMs = Math.min(req.timeoutMs ?? broker.defaultTimeoutMs, broker.defaultTimeoutMs)
  const deadline = startDeadline(timeoutMs, ctx.signal, broker.now, allowed.url.origin)
  try {
    const values = await readSecrets(
      broker.secrets,
      [...allowed.secrets, ...allowed.reachable],
      deadline,
    )
    const substituted = substituteSecrets(req.headers, allowed, values)
    const redactor =
      values.size === 0
        ? undefined
        : broker.redactorFor([...values].map(([name, value]) => ({ name, value })))
    // Not checked against the header budget again once substituted: the guest's headers were
    // (placeholders as written), and a refusal now would tell the script how long its secret is
    // (found by bisecting a padding header in 14 calls, fourteenth outside attack). The secret
    // adds what the admin stored, at most MAX_SECRET_BYTES.
    const headers = redactor === undefined ? substituted : askForPlainBytes(substituted)
    const response = await broker.transport.send(
      {
        url: allowed.url,
        method: req.method,
        headers,
        body: req.body,
        allowPrivate: allowed.entry.allowPrivate,
        plainBytesOnly: redactor !== undefined,
        requestBytes:
          Buffer.byteLength(req.method) +
          Buffer.byteLength(req.url) +
          headerBytes(headers) +
          (req.body?.byteLength ?? 0),
      },
      { budget: ctx, deadline, onConnect },
    )
    return redactor === undefined ? response : redactResponse(redactor, response)
  } finally {
    deadline.dispose()
  }
}

/** The run's compiled `http` grant: absent is a denial; not compiled is host misuse. */
function httpGrantOf(ctx: RunContext): CompiledHttpGrant {
  const grant = ctx.grants[HTTP_INTERFACE]
  if (grant === undefined) {
    throw new HostCallError('denied', `${HTTP_INTERFACE} is not granted to this run`)
  }
  if (!isCompiledHttpGrant(grant)) {
    // Ends the run as `internal`.
    throw new TypeError(`ctx.grants['${HTTP_INTERFACE}'] is not a CompiledHttpGrant`)
  }
  return grant
}

/** The run's compiled secrets grant; any other shape binds nothing (fail closed). */
function secretsGrantOf(ctx: RunContext): CompiledSecretsGrant | undefined {
  const grant = ctx.grants[SECRETS_INTERFACE]
  return isCompiledSecretsGrant(grant) ? grant : undefined
}

/**
 * Read each named secret once, within the deadline. An empty value counts as none; a store
 * failure is `upstream`, never the store's own error.
 */
async function readSecrets(
  source: SecretSource | undefined,
  names: readonly string[],
  deadline: Deadline,
): Promise<Map<string, string>> {
  const values = new Map<string, string>()
  if (source === undefined) {
    return values
  }
  for (const name of new Set(names)) {
    let value: string | undefined
    try {
      value = await deadline.race(source.read(name))
    } catch (error) {
      if (error instanceof HostCallError) {
        throw error
      }
      throw new HostCallError('upstream', 'the secret store is unavailable')
    }
    if (value !== undefined && value !== '') {
      values.set(name, value)
    }
  }
  return values
}
