/**
 * Attenuation rules, as pure functions: a child token may only narrow its parent. Each child
 * entry must be covered by one parent entry on its own (never by a union of several).
 */
import type {
  CapabilityClaims,
  DataGrantEntry,
  Grants,
  HttpGrantEntry,
  SecretGrantEntry,
  TokenLimits,
} from './claims.js'
import { isHostSubset } from './host.js'

function normalisePath(prefix: string): string {
  return prefix.startsWith('/') ? prefix : `/${prefix}`
}

/**
 * True when every request `child` allows is allowed by `parent`: same scheme and port,
 * methods ⊆, the child's path prefix starts with the parent's (a string prefix), the host
 * within the parent's ({@link isHostSubset}), and `allowPrivate` only if the parent has it.
 *
 * @example
 * const parent = httpGrantEntrySchema.parse({ host: '*.github.com', pathPrefix: '/repos/' })
 * const child = httpGrantEntrySchema.parse({ host: 'api.github.com', pathPrefix: '/repos/x/' })
 * isHttpEntrySubset(child, parent) // true
 */
export function isHttpEntrySubset(child: HttpGrantEntry, parent: HttpGrantEntry): boolean {
  return (
    child.scheme === parent.scheme &&
    child.port === parent.port &&
    child.methods.every((method) => parent.methods.includes(method)) &&
    normalisePath(child.pathPrefix).startsWith(normalisePath(parent.pathPrefix)) &&
    isHostSubset(child.host, parent.host) &&
    (child.allowPrivate !== true || parent.allowPrivate === true)
  )
}

/**
 * True when `child` is within `parent`: same secret, hosts ⊆ the parent's (exact strings: a
 * host under one of the parent's wildcards is not enough), `reveal` only if the parent reveals.
 *
 * @example
 * isSecretEntrySubset(
 *   { name: 'gh', hosts: [], reveal: false },
 *   { name: 'gh', hosts: ['api.github.com'], reveal: false },
 * ) // true
 */
export function isSecretEntrySubset(child: SecretGrantEntry, parent: SecretGrantEntry): boolean {
  return (
    child.name === parent.name &&
    child.hosts.every((host) => parent.hosts.includes(host)) &&
    (!child.reveal || parent.reveal)
  )
}

/**
 * True when `child` is within `parent`: same collection, the child's prefix starts with the
 * parent's, `pii` only if the parent has it, `wholeCollection` only if the parent has it.
 *
 * @example
 * isDataEntrySubset(
 *   { collection: 'crm', prefix: 'contacts/eu/', pii: false },
 *   { collection: 'crm', prefix: 'contacts/', pii: true },
 * ) // true
 */
export function isDataEntrySubset(child: DataGrantEntry, parent: DataGrantEntry): boolean {
  return (
    child.collection === parent.collection &&
    child.prefix.startsWith(parent.prefix) &&
    (!child.pii || parent.pii) &&
    (child.wholeCollection !== true || parent.wholeCollection === true)
  )
}

/**
 * The path of the first child grant not within `parent` (`grants.http[2]`, `grants.log`), or
 * undefined when every one is.
 *
 * @example
 * findGrantWidening({ http: [], secrets: [], data: [], log: true },
 *                   { http: [], secrets: [], data: [], log: false }) // 'grants.log'
 */
export function findGrantWidening(child: Grants, parent: Grants): string | undefined {
  const http = child.http.findIndex((c) => !parent.http.some((p) => isHttpEntrySubset(c, p)))
  if (http >= 0) {
    return `grants.http[${http}]`
  }
  const secrets = child.secrets.findIndex(
    (c) => !parent.secrets.some((p) => isSecretEntrySubset(c, p)),
  )
  if (secrets >= 0) {
    return `grants.secrets[${secrets}]`
  }
  const data = child.data.findIndex((c) => !parent.data.some((p) => isDataEntrySubset(c, p)))
  if (data >= 0) {
    return `grants.data[${data}]`
  }
  if (child.log && !parent.log) {
    return 'grants.log'
  }
  return undefined
}

/**
 * True when every grant of `child` is within `parent` (see the per-entry functions).
 *
 * @example
 * isGrantSubset(childClaims.grants, parentClaims.grants)
 */
export function isGrantSubset(child: Grants, parent: Grants): boolean {
  return findGrantWidening(child, parent) === undefined
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
): string | undefined {
  if (child.app.id !== parent.app.id || child.app.digest !== parent.app.digest) {
    return 'app'
  }
  return (
    findGrantWidening(child.grants, parent.grants) ??
    findLimitWidening(child.limits, parent.limits) ??
    (child.exp > parent.exp ? 'exp' : undefined)
  )
}
