/**
 * The secrets grant: which secrets a run may use, where `http` may put them, and whether the
 * guest may see them. Pure: compiled once per token, read by the brokers on every call.
 *
 * The compiled form is read by two capabilities from `ctx.grants['warden:platform/secrets']`:
 * `secrets` (hmac, reveal) and `http` (which substitutes `{{secret:NAME}}` placeholders only as
 * a binding says). Denied by default: a secret not listed cannot be used; a listed secret is
 * sent nowhere unless `hosts` names the origin; `reveal` is off unless `true`.
 *
 * A binding (issue 7) is an origin, a header and a prefix. At egress, the guest's header named
 * `header` (case-insensitive) must have exactly the value `prefix` + `{{secret:NAME}}`, on a
 * request to one of `hosts`; a placeholder anywhere else is refused.
 */
import { z } from 'zod'
import { listGrant, MAX_GRANT_ENTRIES, unique } from '../grant.js'
import { FORBIDDEN_REQUEST_HEADERS, HTTP_TOKEN } from '../http/grant.js'
import { hostPatternKind } from '../http/host-pattern.js'
import { explicitOrigin, parseOrigin } from '../http/url.js'
import type { EgressUrl } from '../http/url.js'
import { isSecretName } from './names.js'

/** One secret the token grants, as written in the token. */
export interface SecretsGrantEntry {
  /** The secret's name (`^[a-z][a-z0-9_]{0,63}$`). */
  name: string
  /**
   * Origins `http` may send it to: `https://host[:port]`, `http://host[:port]`, or a bare host
   * meaning `https://host:443`. Exact hosts or IP literals, no wildcards; a bare `host:port` is
   * refused (write the origin). Default none.
   */
  hosts?: readonly string[]
  /** The one request header it may be sent in, case-insensitive. Default `Authorization`. */
  header?: string
  /**
   * What the header value holds before the placeholder. Default `'Bearer '` for
   * `Authorization`, `''` for any other header.
   */
  prefix?: string
  /** Whether `reveal` may return the plaintext. Default false. */
  reveal?: boolean
}

/** Where `http` may substitute one secret: an origin, a header, a prefix. */
export interface SecretBinding {
  /** `scheme://host:port`, the port always written out, IPv6 bracketed. */
  readonly origin: string
  /** Lower-case header name. */
  readonly header: string
  /** The exact text before the placeholder in the header value. */
  readonly prefix: string
}

/** One compiled entry. Names are unique across a compiled grant. */
export interface CompiledSecretGrantEntry {
  readonly name: string
  readonly bindings: readonly SecretBinding[]
  readonly reveal: boolean
}

const COMPILED: unique symbol = Symbol('warden.secrets.compiledGrant')

/** The compiled grant, frozen: one entry per name. Build it with {@link compileSecretsGrant}. */
export interface CompiledSecretsGrant {
  readonly entries: readonly CompiledSecretGrantEntry[]
  /** Brand: only {@link compileSecretsGrant} makes these. */
  readonly [COMPILED]: true
}

/** The header a binding names when it names none. */
export const DEFAULT_SECRET_HEADER = 'authorization'

/** The prefix of a binding that names none: `Bearer ` for Authorization, else nothing. */
export function defaultSecretPrefix(header: string): string {
  return header.toLowerCase() === DEFAULT_SECRET_HEADER ? 'Bearer ' : ''
}

const ENTRY_FIELDS = new Set(['name', 'hosts', 'header', 'prefix', 'reveal'])
/** Printable ASCII without braces: a prefix can never open a placeholder of its own. */
const PREFIX = /^[\x20-\x7a|~]{0,64}$/

function fail(index: number, message: string): never {
  throw new TypeError(`secrets grant entry ${index}: ${message}`)
}

/**
 * Check and compile a secrets grant. Throws `TypeError` on a malformed entry (an unknown field
 * included, so a typo such as `reveals` never passes silently). Entries naming the same secret
 * are merged: their bindings are united and `reveal` is true if any entry says so, since each
 * entry grants on its own.
 *
 * @example
 * const grant = compileSecretsGrant([{ name: 'github_token', hosts: ['api.github.com'] }])
 * // binds github_token to `Authorization: Bearer {{secret:github_token}}` on
 * // https://api.github.com:443
 * canUse(grant, 'github_token') // true
 * canReveal(grant, 'github_token') // false
 */
export function compileSecretsGrant(entries: readonly SecretsGrantEntry[]): CompiledSecretsGrant {
  if (!Array.isArray(entries)) {
    throw new TypeError('secrets grant must be a list')
  }
  const byName = new Map<string, { bindings: Map<string, SecretBinding>; reveal: boolean }>()
  entries.forEach((entry: unknown, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      fail(i, 'is not an object')
    }
    for (const field of Object.keys(entry)) {
      if (!ENTRY_FIELDS.has(field)) {
        fail(i, `unknown field ${JSON.stringify(field)}`)
      }
    }
    const { name, hosts = [], header, prefix, reveal } = entry as Record<string, unknown>
    if (!isSecretName(name)) {
      fail(i, 'name must match ^[a-z][a-z0-9_]{0,63}$')
    }
    if (!Array.isArray(hosts)) {
      fail(i, 'hosts must be a list of origins')
    }
    if (reveal !== undefined && typeof reveal !== 'boolean') {
      fail(i, 'reveal must be a boolean')
    }
    const headerName = header ?? DEFAULT_SECRET_HEADER
    if (typeof headerName !== 'string' || !HTTP_TOKEN.test(headerName)) {
      fail(i, 'header must be a header name')
    }
    if (FORBIDDEN_REQUEST_HEADERS.has(headerName.toLowerCase())) {
      fail(i, `header ${headerName} is set by the host, never by a secret`)
    }
    const headerPrefix = prefix ?? defaultSecretPrefix(headerName)
    if (typeof headerPrefix !== 'string' || !PREFIX.test(headerPrefix)) {
      fail(i, 'prefix must be at most 64 printable ASCII characters, without { or }')
    }
    const merged = byName.get(name) ?? { bindings: new Map<string, SecretBinding>(), reveal: false }
    for (const host of hosts as unknown[]) {
      let origin: string
      try {
        origin = parseOrigin(host).origin
      } catch (error) {
        fail(i, `hosts: ${(error as Error).message}`)
      }
      const binding = Object.freeze({
        origin,
        header: headerName.toLowerCase(),
        prefix: headerPrefix,
      })
      merged.bindings.set(`${binding.origin} ${binding.header} ${binding.prefix}`, binding)
    }
    merged.reveal ||= reveal === true
    byName.set(name, merged)
  })
  const compiled = [...byName].map(([name, { bindings, reveal }]) =>
    Object.freeze({ name, bindings: Object.freeze([...bindings.values()]), reveal }),
  )
  return Object.freeze({ entries: Object.freeze(compiled), [COMPILED]: true as const })
}

/** The grant's entry for secret `name`, if any. */
export function findSecretGrant(
  grant: CompiledSecretsGrant | undefined,
  name: string,
): CompiledSecretGrantEntry | undefined {
  return grant?.entries.find((e) => e.name === name)
}

/**
 * The bindings of secret `name` for the origin of `url` (any header), in grant order. Empty
 * when the secret is not granted or not bound to that origin.
 */
export function secretBindingsFor(
  grant: CompiledSecretsGrant | undefined,
  name: string,
  url: EgressUrl,
): readonly SecretBinding[] {
  const origin = explicitOrigin(url.scheme, url.host, url.port)
  return findSecretGrant(grant, name)?.bindings.filter((b) => b.origin === origin) ?? []
}

/**
 * The binding that lets secret `name` go in header `header` (case-insensitive) of a request to
 * `url`, or undefined. The header value must then be exactly its `prefix` + the placeholder.
 *
 * @example
 * findSecretBinding(grant, 'github_token', parseEgressUrl('https://api.github.com/x'),
 *   'Authorization') // { origin: 'https://api.github.com:443', header: 'authorization', … }
 */
export function findSecretBinding(
  grant: CompiledSecretsGrant | undefined,
  name: string,
  url: EgressUrl,
  header: string,
): SecretBinding | undefined {
  const lower = header.toLowerCase()
  return secretBindingsFor(grant, name, url).find((b) => b.header === lower)
}

/** True when the grant lets the run use secret `name` (hmac; http as its bindings say). */
export function canUse(grant: CompiledSecretsGrant | undefined, name: string): boolean {
  return findSecretGrant(grant, name) !== undefined
}

/** True when the grant lets the run see secret `name` in plaintext. */
export function canReveal(grant: CompiledSecretsGrant | undefined, name: string): boolean {
  return findSecretGrant(grant, name)?.reveal === true
}

/**
 * True when `value` came from {@link compileSecretsGrant}. The brokers use it to refuse a
 * grant that was not compiled (host misuse, or a shape from before issue 7).
 */
export function isCompiledSecretsGrant(value: unknown): value is CompiledSecretsGrant {
  return typeof value === 'object' && value !== null && COMPILED in value
}

/**
 * Where a secret may be sent, as a token writes it: an origin `https://host[:port]` or
 * `http://host[:port]`, or a bare exact host or bracketed IP literal meaning `https://host:443`.
 * A bare `host:port` is refused: `[::1]:8080` and `::1` read both ways. Hosts are canonical, as
 * for http grants; {@link compileSecretsGrant} normalises and matches the exact origin.
 */
function isSecretHost(host: string): boolean {
  const origin = /^(https?):\/\/(\[[^\]]+\]|[^/:?#@\\[\]]+)(?::([1-9][0-9]{0,4}))?$/.exec(host)
  if (origin?.[3] !== undefined && Number(origin[3]) > 65535) {
    return false
  }
  const kind = hostPatternKind(origin ? origin[2]! : host)
  return kind === 'exact' || kind === 'ip'
}

/**
 * One secrets grant entry as a token carries it: the secret `name`
 * (`^[a-z][a-z0-9_]{0,63}$`), the `hosts` the http capability may send it to (default none),
 * the `header` it goes in (default `Authorization`) after `prefix` (default `Bearer ` for
 * Authorization, else ''), and whether the guest may `reveal` its plaintext (default false).
 * Several entries for one name add up.
 *
 * @example
 * secretGrantEntrySchema.parse({ name: 'github_token', hosts: ['api.github.com'] })
 */
export const secretGrantEntrySchema = z.strictObject({
  name: z.string().refine(isSecretName, 'not a secret name'),
  hosts: z
    .array(z.string().refine(isSecretHost, 'not an origin or an exact host'))
    .max(MAX_GRANT_ENTRIES)
    .refine(unique, 'hosts repeat')
    .default(() => []),
  header: z
    .string()
    .regex(HTTP_TOKEN, 'not a header name')
    .refine((h) => !FORBIDDEN_REQUEST_HEADERS.has(h.toLowerCase()), 'a header the host sets')
    .optional(),
  prefix: z
    .string()
    .regex(PREFIX, 'printable ASCII without braces, at most 64 characters')
    .optional(),
  reveal: z.boolean().default(false),
})

/** One secrets grant entry as a token carries it, normalised. */
export type SecretGrant = z.output<typeof secretGrantEntrySchema>

/** Every (origin, header, prefix) an entry binds, as the broker compiles them; undefined if invalid. */
function bindingKeys(entry: SecretsGrantEntry): Set<string> | undefined {
  try {
    const [compiled] = compileSecretsGrant([entry]).entries
    return new Set(compiled!.bindings.map((b) => `${b.origin} ${b.header} ${b.prefix}`))
  } catch {
    return undefined
  }
}

/**
 * True when `child` is within `parent`: same secret, every binding of the child (origin,
 * header, prefix, as {@link compileSecretsGrant} normalises them) is one of the parent's,
 * `reveal` only if the parent reveals. Origins are compared canonically (`api.github.com` is
 * `https://api.github.com:443`), never by subdomain or port range; header names
 * case-insensitively; prefixes exactly.
 *
 * @example
 * isSecretEntrySubset(
 *   { name: 'gh', hosts: ['https://api.github.com:443'], reveal: false },
 *   { name: 'gh', hosts: ['api.github.com', 'uploads.github.com'], reveal: false },
 * ) // true
 */
export function isSecretEntrySubset(child: SecretsGrantEntry, parent: SecretsGrantEntry): boolean {
  if (child.name !== parent.name || (child.reveal === true && parent.reveal !== true)) {
    return false
  }
  const childBindings = bindingKeys(child)
  const parentBindings = bindingKeys(parent)
  if (childBindings === undefined || parentBindings === undefined) {
    return false
  }
  return [...childBindings].every((binding) => parentBindings.has(binding))
}

/** The `secrets` field of a token's grants: schema, attenuation rule and compilation. */
export const secretsGrant = {
  ...listGrant('secrets', secretGrantEntrySchema, isSecretEntrySubset, compileSecretsGrant),
  // Secrets bind to http requests of a component that never imports `secrets` itself.
  appliesWithoutImport: true,
}
