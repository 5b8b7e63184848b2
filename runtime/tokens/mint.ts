/**
 * Minting capability tokens: validate and normalise the claims, then sign them with the ring's
 * signing key.
 */
import { randomUUID } from 'node:crypto'
import { WardenError } from '../errors.js'
import type { Capability } from '../../host-capabilities/types.js'
import {
  describeIssue,
  limitsRequestSchema,
  MAX_CHAIN_LENGTH,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
  TOKEN_TYPE,
  tokenSchemas,
} from './claims.js'
import type { CapabilityClaims, GrantsInput, LimitsRequest } from './claims.js'
import type { KeyStore } from './keys.js'
import { findAttenuationWidening } from './subset.js'
import { MAX_TOKEN_LENGTH } from './verify.js'

/**
 * `forbidden`: a would-be child token is wider than its parent. `path` names what is wider:
 * `grants.http[0]`, `grants.log`, `limits.fuel`, `exp`, `app`, or `chain` (too deep).
 *
 * @example
 * if (err instanceof AttenuationRefused) console.log(err.path) // 'grants.http[0]'
 */
export class AttenuationRefused extends WardenError {
  /** What is wider than the parent, as a path into the child's claims. */
  readonly path: string

  constructor(path: string, message: string) {
    super('forbidden', message)
    this.name = 'AttenuationRefused'
    this.path = path
  }
}

/** What to mint. */
export interface MintRequest {
  /** The app the token is for; `sub` becomes `app:<appId>`. */
  appId: string
  /** The build the token is for: `sha256:<64 hex>`. A token runs only that build. */
  digest: string
  /** What the token grants; defaults in `grantsSchema`. A field left out grants nothing. */
  grants: GrantsInput
  /**
   * Per-run limits; a field left out is `DEFAULT_LIMITS`' value, or the parent's when there
   * is a parent.
   */
  limits?: LimitsRequest
  /** Seconds from now until `exp`. A positive integer, at most the policy's maximum. */
  lifetimeSeconds: number
  /**
   * The verified claims of the token this one is attenuated from. The new token must be
   * within it (grants, limits, `exp`, same app and build) or minting throws `forbidden`.
   */
  parent?: CapabilityClaims
}

/** The operator's rules for minting. */
export interface MintPolicy {
  /** Longest lifetime a token may be given, in seconds. */
  maxLifetimeSeconds: number
  /** The current time, in seconds since the epoch. Default: the clock. For tests. */
  now?: number
  /** The capabilities whose grants a token may carry. Default Warden's, `CAPABILITIES`. */
  capabilities?: readonly Capability[]
}

/** A minted token and its claims. */
export interface MintedToken {
  /** The compact JWS. A bearer credential: never log it. */
  token: string
  claims: CapabilityClaims
}

/**
 * Mint a capability token: `iat` = `nbf` = now, `exp` = now + `lifetimeSeconds`, a random
 * `jti`. Throws `invalid_request` for a malformed request (the message names the first bad
 * field) or a lifetime above `policy.maxLifetimeSeconds`; with a parent, `forbidden` for
 * anything wider than it or a chain deeper than `MAX_CHAIN_LENGTH`, as an
 * {@link AttenuationRefused} whose `path` (and message) names the grant.
 *
 * @example
 * const { token, claims } = await mintToken(keys, {
 *   appId: 'hello', digest: app.digest, lifetimeSeconds: 3600,
 *   grants: { http: [{ host: 'api.github.com', pathPrefix: '/repos/' }], log: true },
 * }, { maxLifetimeSeconds: 86_400 })
 */
export async function mintToken(
  keys: KeyStore,
  request: MintRequest,
  policy: MintPolicy,
): Promise<MintedToken> {
  const max = policy.maxLifetimeSeconds
  if (!Number.isSafeInteger(max) || max <= 0) {
    throw new TypeError('maxLifetimeSeconds must be a positive integer')
  }
  const lifetime = request.lifetimeSeconds
  if (!Number.isSafeInteger(lifetime) || lifetime <= 0) {
    throw new WardenError('invalid_request', 'lifetimeSeconds must be a positive integer')
  }
  if (lifetime > max) {
    throw new WardenError(
      'invalid_request',
      `lifetimeSeconds ${lifetime} is above the maximum of ${max} seconds`,
    )
  }
  const schemas = tokenSchemas(policy.capabilities)
  const grants = schemas.grants.safeParse(request.grants)
  if (!grants.success) {
    throw new WardenError('invalid_request', describeIssue(grants.error, 'grants'))
  }
  const limits = limitsRequestSchema.safeParse(request.limits ?? {})
  if (!limits.success) {
    throw new WardenError('invalid_request', describeIssue(limits.error, 'limits'))
  }

  const parent = request.parent
  if (parent && parent.chain.length + 1 > MAX_CHAIN_LENGTH) {
    throw new AttenuationRefused(
      'chain',
      `a token may have at most ${MAX_CHAIN_LENGTH} ancestors: this one cannot be attenuated`,
    )
  }
  const now = policy.now ?? Math.floor(Date.now() / 1000)
  const raw = {
    iss: TOKEN_ISSUER,
    aud: TOKEN_AUDIENCE,
    sub: `app:${request.appId}`,
    jti: randomUUID(),
    iat: now,
    nbf: now,
    exp: now + lifetime,
    app: { id: request.appId, digest: request.digest },
    grants: grants.data,
    // With a parent, a limit left out is the parent's, never the (possibly larger) default.
    limits: { ...parent?.limits, ...stripUndefined(limits.data) },
    ...(parent ? { parent: parent.jti, chain: [...parent.chain, parent.jti] } : { chain: [] }),
  }
  const parsed = schemas.claims.safeParse(raw)
  if (!parsed.success) {
    throw new WardenError('invalid_request', describeIssue(parsed.error))
  }
  const claims = parsed.data
  if (parent) {
    const widening = findAttenuationWidening(claims, parent, policy.capabilities)
    if (widening !== undefined) {
      throw new AttenuationRefused(widening, wideningMessage(widening))
    }
  }
  const token = await keys.sign({ ...claims }, TOKEN_TYPE)
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new WardenError(
      'invalid_request',
      `the token would be ${token.length} characters long; a token may have at most ${MAX_TOKEN_LENGTH}: grant fewer or shorter entries`,
    )
  }
  return { token, claims }
}

function wideningMessage(path: string): string {
  if (path === 'app') {
    return 'a child token must be for the same app and build as its parent'
  }
  if (path === 'exp') {
    return 'a child token must not outlive its parent (exp)'
  }
  return `${path} is wider than the parent token allows`
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
