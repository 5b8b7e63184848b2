/**
 * Token verification. Every failure is a WardenError with a fixed message: no message ever
 * contains the token or anything read from it, and no cause carries its claims.
 */
import { sha256 } from '../../core/sha256.js'
import { decodeProtectedHeader, jwtVerify } from 'jose'
import { deepFreeze } from '../../core/freeze.js'
import { WardenError } from '../errors.js'
import type { Capability } from '../../host-capabilities/types.js'
import { TOKEN_AUDIENCE, TOKEN_ISSUER, TOKEN_TYPE, tokenSchemas } from './claims.js'
import type { CapabilityClaims } from './claims.js'
import { TOKEN_ALGORITHM } from './keys.js'
import type { KeyStore } from './keys.js'
import type { RevocationList } from './revocations.js'

/**
 * Longest token minted or accepted, in characters: 8 KiB, so that it fits an `Authorization`
 * header (Node's whole header limit is 16 KiB). Real ones are 1–3 KiB; a child carrying 64
 * http entries of 2 KiB path prefixes was 140 KB, and every one of them was kept in the token
 * index (twelfth outside attack).
 */
export const MAX_TOKEN_LENGTH = 8 * 1024

/** Tokens whose signature and claims verified, remembered per key ring by their hash (LRU). */
const MAX_CACHED_TOKENS = 10_000

interface VerifiedEntry {
  /** Frozen: shared by every verification of the same token. */
  claims: CapabilityClaims
  kid: string
  /** The claims schema (capability list) they were parsed with. */
  schema: unknown
}

const verified = new WeakMap<KeyStore, Map<string, VerifiedEntry>>()

/**
 * The tokens of `keys` that verified, by SHA-256 of the compact token (never the token itself),
 * so a token used again skips the signature check and the claims schema; its key must still
 * verify, and the clock, lifetime, digest and revocations are checked every time.
 */
function verifiedCache(keys: KeyStore): Map<string, VerifiedEntry> {
  let cache = verified.get(keys)
  if (!cache) {
    cache = new Map()
    verified.set(keys, cache)
  }
  return cache
}

/** Default clock leeway for `nbf`, `exp` and `iat`, in seconds. */
export const DEFAULT_LEEWAY_SECONDS = 30

/** Options of {@link verifyToken}. */
export interface VerifyOptions {
  /** Digest (`sha256:<hex>`) of the component about to run; must equal `app.digest`. */
  digest: string
  /** Where revoked token ids are looked up: the token's `jti` and every `chain` member. */
  revocations: RevocationList
  /**
   * Longest lifetime (`exp − iat`) a token may have, in seconds: the same maximum as minting
   * (`maxTokenLifetimeSeconds`). Required: a token is never trusted to come from our mint.
   */
  maxLifetimeSeconds: number
  /** The current time, in seconds since the epoch. Default: the clock. */
  now?: number
  /** Clock leeway for `nbf`, `exp`, `iat`, in seconds. Default {@link DEFAULT_LEEWAY_SECONDS}. */
  leewaySeconds?: number
  /** The capabilities whose grants a token may carry. Default Warden's, `CAPABILITIES`. */
  capabilities?: readonly Capability[]
}

/** {@link VerifyOptions} without the digest: for attenuation, where no component runs. */
export interface VerifyClaimsOptions extends Omit<VerifyOptions, 'digest'> {
  /** When set, must equal `app.digest`. */
  digest?: string
}

function invalid(message: string): WardenError {
  return new WardenError('token_invalid', message)
}

/**
 * Verify a capability token for a run of the component with `options.digest` and return its
 * claims. Checks, in order: shape and size; header `alg` is `EdDSA` (pinned: `none`, HMAC and
 * the rest are refused before any key is touched), `typ` is exactly `warden-cap+jwt`, `kid`
 * names a live key of the ring; the signature; `iss`, `aud`; `nbf` and `exp` with leeway; the
 * claims schema (strict); what minting enforces: a lifetime (`exp − iat`) of at most
 * `maxLifetimeSeconds` and an `iat` not ahead of now by more than the leeway, for root and
 * attenuated tokens alike; the digest; then revocation of the `jti` and every ancestor.
 *
 * Codes: `token_expired` when `exp` has passed, and also when `nbf` is still ahead (the token
 * is outside its validity window either way; the fix is the same); `token_revoked`;
 * `store_unavailable` when the revocation list cannot be read (never a success); everything
 * else `token_invalid`. A forged or malformed token is `token_invalid` even when its claims
 * say it expired, since claims are read only after the signature checks. A TypeError when
 * `maxLifetimeSeconds` or `leewaySeconds` is not a valid number.
 *
 * @example
 * const claims = await verifyToken(keys, bearer, {
 *   digest: app.digest, revocations, maxLifetimeSeconds: config.maxTokenLifetimeSeconds,
 * })
 * const { granted, grants } = effectiveGrant(app.imports, claims)
 */
export async function verifyToken(
  keys: KeyStore,
  token: string,
  options: VerifyOptions,
): Promise<CapabilityClaims> {
  if (typeof options.digest !== 'string') {
    throw new TypeError('verifyToken needs the digest of the component about to run')
  }
  return verifyClaims(keys, token, options)
}

/**
 * {@link verifyToken} with the digest check optional. For attenuation and admin tools only:
 * a token about to run a component is always checked with {@link verifyToken}.
 */
export async function verifyClaims(
  keys: KeyStore,
  token: string,
  options: VerifyClaimsOptions,
): Promise<CapabilityClaims> {
  const leeway = options.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS
  if (!Number.isSafeInteger(leeway) || leeway < 0) {
    throw new TypeError('leewaySeconds must be a non-negative integer')
  }
  const maxLifetime = options.maxLifetimeSeconds
  if (!Number.isSafeInteger(maxLifetime) || maxLifetime <= 0) {
    throw new TypeError('maxLifetimeSeconds must be a positive integer')
  }
  const now = options.now ?? Math.floor(Date.now() / 1000)
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw invalid('the token is malformed')
  }
  const schema = tokenSchemas(options.capabilities).claims
  const cache = verifiedCache(keys)
  const cacheKey = sha256(token, 'base64url')
  const hit = cache.get(cacheKey)
  let claims: CapabilityClaims
  if (hit && hit.schema === schema && (await keys.verificationKey(hit.kid)) !== undefined) {
    // The spelling, the signature and the claims were checked when this exact string was
    // first seen (a hit is the same SHA-256), and its key still verifies; the clock is
    // checked again as jose does. Least recently used goes first.
    cache.delete(cacheKey)
    cache.set(cacheKey, hit)
    if (hit.claims.nbf > now + leeway) {
      throw new WardenError('token_expired', 'the token is not valid yet')
    }
    if (hit.claims.exp <= now - leeway) {
      cache.delete(cacheKey)
      throw new WardenError('token_expired', 'the token has expired')
    }
    claims = hit.claims
  } else {
    // One spelling per token: base64url has spare bits at the end of a segment, so the same
    // token could be written 256 ways and pass as 256 tokens (rate limits, the cache) without
    // this. A spelling that is not canonical never enters the cache.
    if (!isCanonicalCompact(token)) {
      throw invalid('the token is malformed')
    }
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(token)
    } catch {
      throw invalid('the token is malformed')
    }
    if (header.alg !== TOKEN_ALGORITHM) {
      throw invalid('the token is not signed with EdDSA')
    }
    if (header.typ !== TOKEN_TYPE) {
      throw invalid('the token is not a Warden capability token')
    }
    if (typeof header.kid !== 'string' || header.kid === '') {
      throw invalid('the token names no signing key')
    }
    const key = await keys.verificationKey(header.kid)
    if (!key) {
      throw invalid('the token is signed by an unknown or retired key')
    }

    let payload: unknown
    try {
      const verified = await jwtVerify(token, key, {
        algorithms: [TOKEN_ALGORITHM],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        typ: TOKEN_TYPE,
        currentDate: new Date(now * 1000),
        clockTolerance: leeway,
        requiredClaims: ['jti', 'sub', 'iat', 'nbf', 'exp'],
      })
      payload = verified.payload
    } catch (error) {
      throw mapJoseError(error)
    }

    const parsed = schema.safeParse(payload)
    if (!parsed.success) {
      throw invalid('the token claims are malformed')
    }
    claims = deepFreeze(parsed.data)
    cache.set(cacheKey, { claims, kid: header.kid, schema })
    if (cache.size > MAX_CACHED_TOKENS) {
      cache.delete(cache.keys().next().value!)
    }
  }
  // A valid signature says who signed, not that mintToken did: whoever holds the signing key
  // (a leaked key file, another minting path) can sign anything, so minting's rules hold here.
  if (claims.exp - claims.iat > maxLifetime) {
    throw invalid('the token lives longer than the maximum token lifetime')
  }
  if (claims.iat > now + leeway) {
    throw invalid('the token is issued in the future')
  }
  if (options.digest !== undefined && claims.app.digest !== options.digest) {
    throw invalid('the token is for another app or build')
  }
  let checks: boolean[]
  try {
    checks = await Promise.all(
      [claims.jti, ...claims.chain].map((jti) => options.revocations.isRevoked(jti)),
    )
  } catch (error) {
    // Whatever the store threw, the answer is "cannot tell", never "not revoked".
    throw new WardenError('store_unavailable', 'the revocation list cannot be read', {
      cause: error,
    })
  }
  if (checks[0]) {
    throw new WardenError('token_revoked', 'the token is revoked')
  }
  if (checks.some(Boolean)) {
    throw new WardenError('token_revoked', 'a token this one was derived from is revoked')
  }
  return claims
}

function mapJoseError(error: unknown): WardenError {
  const { code, claim, reason } = (error ?? {}) as {
    code?: string
    claim?: string
    reason?: string
  }
  if (code === 'ERR_JWT_EXPIRED') {
    return new WardenError('token_expired', 'the token has expired')
  }
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim === 'nbf' && reason === 'check_failed') {
    return new WardenError('token_expired', 'the token is not valid yet')
  }
  if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') {
    return invalid('the token signature does not verify')
  }
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && (claim === 'iss' || claim === 'aud')) {
    return invalid('the token is not issued by and for Warden')
  }
  // NB: no cause: jose errors carry the decoded claims (`payload`), which must not travel.
  return invalid('the token is malformed')
}

/** Three base64url segments, each exactly as re-encoding its bytes would write it. */
function isCanonicalCompact(token: string): boolean {
  const segments = token.split('.')
  return (
    segments.length === 3 &&
    segments.every(
      (segment) =>
        /^[A-Za-z0-9_-]+$/.test(segment) &&
        Buffer.from(segment, 'base64url').toString('base64url') === segment,
    )
  )
}
