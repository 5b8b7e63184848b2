/**
 * The effective grant of a run: what the component imports ∩ what the token grants.
 */
import type {
  CapabilityClaims,
  DataGrantEntry,
  HttpGrantEntry,
  SecretGrantEntry,
} from './claims.js'

/** The WIT interface (unversioned, as jco keys imports) behind each kind of grant. */
export const GRANT_INTERFACES = Object.freeze({
  http: 'warden:platform/http',
  secrets: 'warden:platform/secrets',
  data: 'warden:platform/data',
  log: 'warden:platform/log',
} as const)

/** What one run may do. */
export interface EffectiveGrant {
  /** Granted interfaces, unversioned (`warden:platform/http`), in `GRANT_INTERFACES` order. */
  granted: string[]
  /** The token's entries for each granted interface; absent when the interface is not granted. */
  grants: {
    http?: HttpGrantEntry[]
    secrets?: SecretGrantEntry[]
    data?: DataGrantEntry[]
    log: boolean
  }
}

/**
 * Intersect the component's imports with the token's grants. An interface is granted only
 * when the component imports it and the token grants something for it (a non-empty list, or
 * `log: true`): a capability the component does not import is never granted, whatever the
 * token says. Imports may carry a version (`warden:platform/http@0.1.0`); other interfaces
 * (WASI, `warden:platform/types`) are not grants and are ignored here. The entries returned
 * are copies.
 *
 * @example
 * effectiveGrant(['warden:platform/log', 'wasi:cli/stdout'], claims)
 * // { granted: ['warden:platform/log'], grants: { log: true } }
 */
export function effectiveGrant(
  componentImports: readonly string[],
  claims: Pick<CapabilityClaims, 'grants'>,
): EffectiveGrant {
  const imported = new Set(componentImports.map(unversioned))
  const { grants } = claims
  const out: EffectiveGrant = { granted: [], grants: { log: false } }
  if (imported.has(GRANT_INTERFACES.http) && grants.http.length > 0) {
    out.granted.push(GRANT_INTERFACES.http)
    out.grants.http = structuredClone(grants.http)
  }
  if (imported.has(GRANT_INTERFACES.secrets) && grants.secrets.length > 0) {
    out.granted.push(GRANT_INTERFACES.secrets)
    out.grants.secrets = structuredClone(grants.secrets)
  }
  if (imported.has(GRANT_INTERFACES.data) && grants.data.length > 0) {
    out.granted.push(GRANT_INTERFACES.data)
    out.grants.data = structuredClone(grants.data)
  }
  if (imported.has(GRANT_INTERFACES.log) && grants.log) {
    out.granted.push(GRANT_INTERFACES.log)
    out.grants.log = true
  }
  return out
}

function unversioned(name: string): string {
  const at = name.lastIndexOf('@')
  return at < 0 ? name : name.slice(0, at)
}
