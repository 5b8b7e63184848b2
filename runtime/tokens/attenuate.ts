/**
 * Attenuation: the holder of a token derives a narrower child token from it
 * (`POST /v1/tokens/attenuate`). The child dies with its parent: it expires no later, and
 * revoking any ancestor revokes it, through its `chain`.
 */
import { z } from 'zod'
import { WardenError } from '../errors.js'
import type { Capability } from '../../host-capabilities/types.js'
import { describeIssue, limitsRequestSchema } from './claims.js'
import type { CapabilityClaims, GrantsInput, LimitsRequest } from './claims.js'
import type { KeyStore } from './keys.js'
import { mintToken } from './mint.js'
import type { MintedToken } from './mint.js'
import type { RevocationList } from './revocations.js'
import { verifyClaims } from './verify.js'

/** What the child token should be. Everything left out is the parent's. */
export interface AttenuationRequest {
  /**
   * The child's grants, each within one of the parent's. Left out: the parent's grants. Given:
   * exactly these (a field left out inside grants nothing, as when minting).
   */
  grants?: GrantsInput
  /** The child's limits, each at most the parent's. A field left out is the parent's. */
  limits?: LimitsRequest
  /** Seconds from now until the child's `exp`. Default: to the parent's `exp`, capped by policy. */
  lifetimeSeconds?: number
}

/** Options of {@link attenuate}. */
export interface AttenuateOptions {
  /** Checked for the parent's `jti` and its ancestors. */
  revocations: RevocationList
  /** Longest lifetime a token may be given, in seconds (as for minting). */
  maxLifetimeSeconds: number
  /** When set, the parent must be for this build. */
  digest?: string
  /** The current time, in seconds since the epoch. Default: the clock. */
  now?: number
  /** Clock leeway when verifying the parent, in seconds. Default 30. */
  leewaySeconds?: number
  /**
   * Told the parent's claims once they verify, before the child is checked and minted: so a
   * caller can say whose attenuation was refused (an audit record) without reading claims
   * from an unverified token.
   */
  onParentVerified?: (parent: CapabilityClaims) => void
  /** The capabilities whose grants a token may carry. Default Warden's, `CAPABILITIES`. */
  capabilities?: readonly Capability[]
}

const requestSchema = z.strictObject({
  // Checked when minting, against the capability list in force.
  grants: z.unknown().optional(),
  limits: limitsRequestSchema.optional(),
  lifetimeSeconds: z.int().positive().optional(),
})

/**
 * Verify `parentToken` and mint a child of it: same app and build, grants ⊆, limits ≤,
 * `exp` ≤ the parent's, `parent` = the parent's `jti`, `chain` = the parent's chain + its `jti`.
 *
 * Throws what verification throws for the parent (`token_invalid`, also for a parent longer
 * than `maxLifetimeSeconds`; `token_expired`, `token_revoked`, `store_unavailable`);
 * `invalid_request` for a malformed request or a lifetime above `maxLifetimeSeconds`;
 * `forbidden`, naming the grant (`grants.http[0] is wider than the parent token allows`), for
 * anything wider than the parent, including a lifetime past the parent's `exp`.
 *
 * @example
 * const child = await attenuate(keys, parentToken, {
 *   grants: { http: [{ host: 'api.github.com', pathPrefix: '/repos/acme/' }] },
 *   limits: { fuel: 1e6 },
 *   lifetimeSeconds: 300,
 * }, { revocations, maxLifetimeSeconds: 86_400 })
 */
export async function attenuate(
  keys: KeyStore,
  parentToken: string,
  request: AttenuationRequest,
  options: AttenuateOptions,
): Promise<MintedToken> {
  const now = options.now ?? Math.floor(Date.now() / 1000)
  const verifyOptions = {
    revocations: options.revocations,
    maxLifetimeSeconds: options.maxLifetimeSeconds,
    now,
    ...(options.digest !== undefined ? { digest: options.digest } : {}),
    ...(options.leewaySeconds !== undefined ? { leewaySeconds: options.leewaySeconds } : {}),
    ...(options.capabilities ? { capabilities: options.capabilities } : {}),
  }
  const parent = await verifyClaims(keys, parentToken, verifyOptions)
  options.onParentVerified?.(parent)

  const parsed = requestSchema.safeParse(request)
  if (!parsed.success) {
    throw new WardenError('invalid_request', describeIssue(parsed.error))
  }
  const remaining = parent.exp - now
  if (remaining <= 0) {
    // Verified within the leeway, but there is no time left to give a child.
    throw new WardenError('token_expired', 'the token has expired')
  }
  const lifetimeSeconds =
    parsed.data.lifetimeSeconds ?? Math.min(remaining, options.maxLifetimeSeconds)
  return mintToken(
    keys,
    {
      appId: parent.app.id,
      digest: parent.app.digest,
      grants: (parsed.data.grants as GrantsInput | undefined) ?? parent.grants,
      ...(parsed.data.limits ? { limits: parsed.data.limits } : {}),
      lifetimeSeconds,
      parent,
    },
    {
      maxLifetimeSeconds: options.maxLifetimeSeconds,
      now,
      ...(options.capabilities ? { capabilities: options.capabilities } : {}),
    },
  )
}
