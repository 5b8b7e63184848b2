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
 * A secrets entry with the binding fields of issue 7 (`header`, `prefix`), optional until the
 * token schema carries them. Absent, they mean `Authorization` and (for it) `Bearer `.
 */
export type SecretBindingEntry = SecretGrantEntry & { header?: string; prefix?: string }

/**
 * The canonical origin of a secret binding's host, as the http broker compiles it
 * (`parseOrigin` in `host-capabilities/http/url.ts`, restated so tokens stay free of capability
 * code): a bare host is `https://host:443`; `scheme://host[:port]` gets its port written out.
 * Undefined for what the broker refuses (a bare `host:port`, a wildcard, a path…): such an
 * entry is within nothing.
 */
function bindingOrigin(host: string): string | undefined {
  const written = /^(https?):\/\/([^/?#\\@]+)\/?$/i.exec(host)
  // A bare host has no port: only an IPv6 literal in brackets has colons.
  if (written === null && !/^(?:\[[0-9A-Fa-f:.]+\]|[^/?#@\\\s%:[\]]+)$/.test(host)) {
    return undefined
  }
  const scheme = (written?.[1] ?? 'https').toLowerCase()
  let url: URL
  try {
    url = new URL(`${scheme}://${written?.[2] ?? host}/`)
  } catch {
    return undefined
  }
  const hostname = url.hostname.replace(/\.$/, '')
  // WHATWG keeps `*` in a hostname: a wildcard is refused here, as are empty labels.
  if (!/^(?:\[[0-9a-f:.]+\]|(?:[a-z0-9_-]+\.)*[a-z0-9_-]+)$/.test(hostname)) {
    return undefined
  }
  return `${scheme}://${hostname}:${url.port || (scheme === 'https' ? '443' : '80')}`
}

/** Every (origin, header, prefix) an entry binds, as comparable strings; undefined if invalid. */
function secretBindings(entry: SecretBindingEntry): Set<string> | undefined {
  const header = (entry.header ?? 'authorization').toLowerCase()
  const prefix = entry.prefix ?? (header === 'authorization' ? 'Bearer ' : '')
  const out = new Set<string>()
  for (const host of entry.hosts) {
    const origin = bindingOrigin(host)
    if (origin === undefined) {
      return undefined
    }
    out.add(JSON.stringify([origin, header, prefix]))
  }
  return out
}

/**
 * True when `child` is within `parent`: same secret, every binding of the child (origin, header,
 * prefix) is one of the parent's, `reveal` only if the parent reveals. Origins are compared
 * canonically (`api.github.com` is `https://api.github.com:443`), never by subdomain or port
 * range; header names case-insensitively; prefixes exactly. A child that binds no host may name
 * any header: it sends nothing.
 *
 * @example
 * isSecretEntrySubset(
 *   { name: 'gh', hosts: ['https://api.github.com:443'], reveal: false },
 *   { name: 'gh', hosts: ['api.github.com', 'uploads.github.com'], reveal: false },
 * ) // true
 */
export function isSecretEntrySubset(
  child: SecretBindingEntry,
  parent: SecretBindingEntry,
): boolean {
  if (child.name !== parent.name || (child.reveal && !parent.reveal)) {
    return false
  }
  const childBindings = secretBindings(child)
  const parentBindings = secretBindings(parent)
  if (childBindings === undefined || parentBindings === undefined) {
    return false
  }
  return [...childBindings].every((binding) => parentBindings.has(binding))
}

/** A data prefix without its trailing `/`: `contacts/` and `contacts` are one prefix. */
function canonicalDataPrefix(prefix: string): string {
  return prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
}

/**
 * True when `child` is within `parent`: same collection, the child's prefix is the parent's or
 * a deeper whole-segment prefix of it (canonical forms: the child's equals the parent's or
 * starts with it and a `/`; an empty parent prefix, with `wholeCollection`, covers all), `pii`
 * only if the parent has it, `wholeCollection` only if the parent has it. The segment rule is
 * `keyHasPrefix` in `host-capabilities/data/keys.ts`, restated here so tokens stay free of
 * capability code.
 *
 * @example
 * isDataEntrySubset(
 *   { collection: 'crm', prefix: 'contacts/eu', pii: false },
 *   { collection: 'crm', prefix: 'contacts/', pii: true },
 * ) // true; a child prefix 'contacts-old' would not be
 */
export function isDataEntrySubset(child: DataGrantEntry, parent: DataGrantEntry): boolean {
  const c = canonicalDataPrefix(child.prefix)
  const p = canonicalDataPrefix(parent.prefix)
  return (
    child.collection === parent.collection &&
    (p === '' ? parent.wholeCollection === true : c === p || c.startsWith(`${p}/`)) &&
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
