/**
 * The effective grant of a run: what the component imports ∩ what the token grants, walked
 * over the list of capabilities, and its compiled form for the brokers.
 */
import { CAPABILITIES } from '../../host-capabilities/index.js'
import type { Capability } from '../../host-capabilities/types.js'
import type { CapabilityClaims, Grants } from './claims.js'

/** The WIT interface (unversioned, as jco keys imports) behind each field of `grants`. */
export const GRANT_INTERFACES = Object.freeze(
  Object.fromEntries(CAPABILITIES.map((c) => [c.grant.key, c.descriptor.interface])),
) as Readonly<{ [C in (typeof CAPABILITIES)[number] as C['grant']['key']]: string }>

/** What one run may do. */
export interface EffectiveGrant {
  /** Granted interfaces, unversioned (`warden:platform/http`), in the capabilities' order. */
  granted: string[]
  /**
   * The token's value for each granted interface, by grant field (`http`); absent when the
   * interface is not granted. `log` is always there, `false` when not granted.
   */
  grants: Partial<Grants> & { log: boolean }
}

/**
 * Intersect the component's imports with the token's grants. An interface is granted only
 * when the component imports it and the token grants something for it (a non-empty list, or
 * `log: true`): a capability the component does not import is never granted, whatever the
 * token says. Imports may carry a version (`warden:platform/http@0.1.0`); other interfaces
 * (WASI, `warden:platform/types`) are not grants and are ignored here. The values returned
 * are copies.
 *
 * @example
 * effectiveGrant(['warden:platform/log', 'wasi:cli/stdout'], claims)
 * // { granted: ['warden:platform/log'], grants: { log: true } }
 */
export function effectiveGrant(
  componentImports: readonly string[],
  claims: Pick<CapabilityClaims, 'grants'>,
  capabilities: readonly Capability[] = CAPABILITIES,
): EffectiveGrant {
  const imported = new Set(componentImports.map(unversioned))
  const values = claims.grants as Readonly<Record<string, unknown>>
  const out: EffectiveGrant = { granted: [], grants: { log: false } }
  const grants = out.grants as Record<string, unknown>
  for (const { descriptor, grant } of capabilities) {
    const value = values[grant.key]
    if (imported.has(descriptor.interface) && grant.grantsAnything(value)) {
      out.granted.push(descriptor.interface)
      grants[grant.key] = structuredClone(value)
    }
  }
  return out
}

/**
 * Compile, once per run, the grants the brokers read from `RunContext.grants`, keyed by
 * interface: each granted capability's value, and those that apply without an import (secrets
 * bind to http requests) whenever the token grants them.
 *
 * @example
 * const effective = effectiveGrant(app.imports, claims)
 * runtime.invoke(app, input, {
 *   interfaces: effective.granted, compiledGrants: compileGrants(effective, claims),
 * })
 */
export function compileGrants(
  effective: EffectiveGrant,
  claims: Pick<CapabilityClaims, 'grants'>,
  capabilities: readonly Capability[] = CAPABILITIES,
): Record<string, unknown> {
  const granted = new Set(effective.granted)
  const values = claims.grants as Readonly<Record<string, unknown>>
  const out: Record<string, unknown> = {}
  for (const { descriptor, grant } of capabilities) {
    const value = values[grant.key]
    const applies = granted.has(descriptor.interface) || grant.appliesWithoutImport === true
    if (grant.compile && applies && grant.grantsAnything(value)) {
      out[descriptor.interface] = grant.compile(value)
    }
  }
  return out
}

function unversioned(name: string): string {
  const at = name.lastIndexOf('@')
  return at < 0 ? name : name.slice(0, at)
}
