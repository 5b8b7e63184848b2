/**
 * The readable grant flags of `warden token grant|attenuate`: `--http <url>` (with `--method`),
 * `--secret name@host`, `--data collection:prefix`, `--log`, and the `--ttl`/`--fuel` values.
 * Pure: each flag becomes the JSON a token's `grants` holds, checked against the grants
 * schema, so a bad flag is `invalid_request` before anything is sent or loaded.
 */
import { grantsSchema, WardenError } from '../../runtime/index.js'
import { parseWith } from './io.js'

/** The readable grant flags as commander collects them. */
export interface GrantFlagValues {
  /** `https://api.github.com/repos/`: scheme, host, port and path prefix of one http entry. */
  http?: readonly string[]
  /** Methods of every `--http` entry (default GET and HEAD). */
  method?: readonly string[]
  /** `github_token@api.github.com`: a secret and the origin it may be sent to. */
  secret?: readonly string[]
  /** `crm:contacts/`: a collection and the key prefix the app may read. */
  data?: readonly string[]
  log?: boolean
}

interface HttpEntry {
  scheme: 'https' | 'http'
  host: string
  port?: number
  pathPrefix: string
  methods?: string[]
}

const invalid = (message: string) => new WardenError('invalid_request', message)

/**
 * One `--http` URL as a grant entry: its scheme, host, explicit port and path (the prefix).
 * Refuses what a URL grant cannot say: credentials, a query or a fragment.
 *
 * @example
 * parseHttpFlag('https://api.github.com/repos/')
 * // { scheme: 'https', host: 'api.github.com', pathPrefix: '/repos/' }
 */
export function parseHttpFlag(value: string, methods?: readonly string[]): HttpEntry {
  let url: URL
  try {
    url = new URL(value)
  } catch (error) {
    throw new WardenError('invalid_request', '--http: not a URL (https://host[:port]/path)', {
      cause: error,
    })
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalid('--http: the URL must be https:// or http://')
  }
  if (url.username || url.password) {
    throw invalid('--http: no credentials in the URL (grant a secret with --secret)')
  }
  if (url.search || url.hash || value.includes('?') || value.includes('#')) {
    throw invalid('--http: no query or fragment: the path is a prefix')
  }
  return {
    scheme: url.protocol === 'https:' ? 'https' : 'http',
    host: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    pathPrefix: url.pathname,
    ...(methods && methods.length > 0 ? { methods: methods.map((m) => m.toUpperCase()) } : {}),
  }
}

/**
 * One `--secret name@host` as a grant entry. The host is what a secret grant's `hosts` takes:
 * a bare host (https, port 443) or an origin (`http://10.0.0.5:8080`).
 *
 * @example
 * parseSecretFlag('github_token@api.github.com') // { name: 'github_token', hosts: ['api.github.com'] }
 */
export function parseSecretFlag(value: string): { name: string; hosts: string[] } {
  const at = value.indexOf('@')
  if (at <= 0 || at === value.length - 1) {
    throw invalid('--secret: write name@host, e.g. github_token@api.github.com')
  }
  return { name: value.slice(0, at), hosts: [value.slice(at + 1)] }
}

/**
 * One `--data collection:prefix` as a grant entry (PII stays masked: use `--grants` for
 * `pii: true` or a whole collection).
 *
 * @example
 * parseDataFlag('crm:contacts/') // { collection: 'crm', prefix: 'contacts/' }
 */
export function parseDataFlag(value: string): { collection: string; prefix: string } {
  const colon = value.indexOf(':')
  if (colon <= 0 || colon === value.length - 1) {
    throw invalid('--data: write collection:prefix, e.g. crm:contacts/')
  }
  return { collection: value.slice(0, colon), prefix: value.slice(colon + 1) }
}

/** True when any readable grant flag was given. */
export function hasGrantFlags(flags: GrantFlagValues): boolean {
  return Boolean(
    flags.http?.length || flags.secret?.length || flags.data?.length || flags.log || flags.method,
  )
}

/**
 * The grants of the readable flags, added to `base` (the `--grants` JSON, if any): lists are
 * joined, `log` is on if either says so. Checked against the grants schema; the first bad
 * field is named (`grants.http[0].host: …`).
 *
 * @example
 * grantsFromFlags({ http: ['https://api.github.com/repos/'], log: true })
 */
export function grantsFromFlags(flags: GrantFlagValues, base: unknown = {}): unknown {
  if (flags.method?.length && !flags.http?.length) {
    throw invalid('--method applies to --http entries: give at least one --http')
  }
  if (typeof base !== 'object' || base === null || Array.isArray(base)) {
    throw invalid('--grants must be a JSON object')
  }
  const grants: Record<string, unknown> = { ...base }
  const add = (field: string, entries: readonly unknown[]) => {
    if (entries.length === 0) {
      return
    }
    const existing = grants[field] ?? []
    if (!Array.isArray(existing)) {
      throw invalid(`grants.${field} must be a list`)
    }
    grants[field] = [...existing, ...entries]
  }
  add(
    'http',
    (flags.http ?? []).map((url) => parseHttpFlag(url, flags.method)),
  )
  add('secrets', (flags.secret ?? []).map(parseSecretFlag))
  add('data', (flags.data ?? []).map(parseDataFlag))
  if (flags.log) {
    grants.log = true
  }
  parseWith(grantsSchema, grants, 'grants')
  return grants
}

const TTL = /^([1-9][0-9]*)(s|m|h|d)?$/
const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 }

/**
 * A `--ttl` in seconds: `3600`, `90s`, `30m`, `1h`, `7d`.
 *
 * @example
 * parseTtl('30m') // 1800
 */
export function parseTtl(value: string): number {
  const match = TTL.exec(value.trim())
  const seconds = match ? Number(match[1]) * UNIT_SECONDS[match[2] ?? 's']! : Number.NaN
  if (!Number.isSafeInteger(seconds)) {
    throw invalid('--ttl: a positive whole number of seconds, or with a unit: 90s, 30m, 1h, 7d')
  }
  return seconds
}

/**
 * A `--fuel` budget: a positive whole number, exponent notation allowed (`5e8`).
 *
 * @example
 * parseFuel('5e8') // 500000000
 */
export function parseFuel(value: string): number {
  const fuel = /^[0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?$/i.test(value.trim()) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(fuel) || fuel <= 0) {
    throw invalid('--fuel: a positive whole number, e.g. 1000000 or 5e8')
  }
  return fuel
}
