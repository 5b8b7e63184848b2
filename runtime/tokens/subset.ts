/**
 * Attenuation rules: a child token may only narrow its parent. Each capability says how its
 * own grant narrows (`host-capabilities/<cap>/grant.ts`); this file walks the list and adds the
 * rules of the token itself (app, limits, expiry).
 */
import { isDataEntrySubset } from '../../host-capabilities/data/grant.js'
import { isHttpEntrySubset } from '../../host-capabilities/http/grant.js'
import { CAPABILITIES } from '../../host-capabilities/index.js'
import { isSecretEntrySubset } from '../../host-capabilities/secrets/grant.js'
import type { Capability } from '../../host-capabilities/types.js'
import type { CapabilityClaims, Grants, TokenLimits } from './claims.js'

export { isDataEntrySubset, isHttpEntrySubset, isSecretEntrySubset }

/**
 * The path of the first child grant not within `parent` (`grants.http[2]`, `grants.log`), or
 * undefined when every one is. Each capability of the list judges its own field.
 *
 * @example
 * findGrantWidening({ http: [], secrets: [], data: [], log: true },
 *                   { http: [], secrets: [], data: [], log: false }) // 'grants.log'
 */
export function findGrantWidening(
  child: Grants,
  parent: Grants,
  capabilities: readonly Capability[] = CAPABILITIES,
): string | undefined {
  const c = child as Readonly<Record<string, unknown>>
  const p = parent as Readonly<Record<string, unknown>>
  for (const { grant } of capabilities) {
    const widening = grant.widening(c[grant.key], p[grant.key])
    if (widening !== undefined) {
      return `grants.${grant.key}${widening}`
    }
  }
  return undefined
}

/**
 * True when every grant of `child` is within `parent` (see the per-entry functions).
 *
 * @example
 * isGrantSubset(childClaims.grants, parentClaims.grants)
 */
export function isGrantSubset(
  child: Grants,
  parent: Grants,
  capabilities: readonly Capability[] = CAPABILITIES,
): boolean {
  return findGrantWidening(child, parent, capabilities) === undefined
}

/**
 * The path of the first limit of `child` above the parent's (`limits.fuel`), or undefined.
 *
 * @example
 * findLimitWidening({ ...parent.limits, fuel: parent.limits.fuel + 1 }, parent.limits)
 * // 'limits.fuel'
 */
export function findLimitWidening(child: TokenLimits, parent: TokenLimits): string | undefined {
  for (const key of Object.keys(parent) as (keyof TokenLimits)[]) {
    if (child[key] > parent[key]) {
      return `limits.${key}`
    }
  }
  return undefined
}

/**
 * The first way a would-be child token is wider than its parent, as a path: `app` (another
 * app or build), `grants.…`, `limits.…` or `exp` (outlives the parent); undefined if none.
 *
 * @example
 * findAttenuationWidening(child, parent) // undefined: child is a valid attenuation
 */
export function findAttenuationWidening(
  child: Pick<CapabilityClaims, 'app' | 'grants' | 'limits' | 'exp'>,
  parent: Pick<CapabilityClaims, 'app' | 'grants' | 'limits' | 'exp'>,
  capabilities: readonly Capability[] = CAPABILITIES,
): string | undefined {
  if (child.app.id !== parent.app.id || child.app.digest !== parent.app.digest) {
    return 'app'
  }
  return (
    findGrantWidening(child.grants, parent.grants, capabilities) ??
    findLimitWidening(child.limits, parent.limits) ??
    (child.exp > parent.exp ? 'exp' : undefined)
  )
}
