/**
 * The secrets grant: which secrets a run may use, toward which hosts, and whether it may see
 * them. Pure: compiled once per token, read by the broker on every call.
 *
 * The compiled form is read by two capabilities from `ctx.grants['warden:platform/secrets']`:
 * `secrets` (hmac, reveal) and `http` (which binds `{{secret:NAME}}` placeholders to `hosts`).
 * Denied by default: a secret not listed cannot be used; `reveal` is off unless `true`.
 */
import { isSecretName } from './names.js'

/** One secret the token grants, as written in the token. */
export interface SecretsGrantEntry {
  /** The secret's name (`^[a-z][a-z0-9_]{0,63}$`). */
  name: string
  /** Hosts toward which `http` may substitute it (lowercased here; matched by `http`). */
  hosts: readonly string[]
  /** Whether `reveal` may return the plaintext. Default false. */
  reveal?: boolean
}

/** One compiled entry. Names are unique across a compiled grant. */
export interface CompiledSecretGrantEntry {
  name: string
  hosts: string[]
  reveal: boolean
}

/** The compiled grant, frozen: `{ entries }` with one entry per name. */
export interface CompiledSecretsGrant {
  entries: CompiledSecretGrantEntry[]
}

const ENTRY_FIELDS = new Set(['name', 'hosts', 'reveal'])
const HOST_PATTERN = /^[^\s/?#@\\]+$/

/**
 * Check and compile a secrets grant. Throws `TypeError` on a malformed entry (an unknown field
 * included, so a typo such as `reveals` never passes silently). Entries naming the same secret
 * are merged: their hosts are united and `reveal` is true if any entry says so, since each
 * entry grants on its own.
 *
 * @example
 * const grant = compileSecretsGrant([{ name: 'github_token', hosts: ['api.github.com'] }])
 * canUse(grant, 'github_token') // true
 * canReveal(grant, 'github_token') // false
 */
export function compileSecretsGrant(entries: readonly SecretsGrantEntry[]): CompiledSecretsGrant {
  if (!Array.isArray(entries)) {
    throw new TypeError('secrets grant must be a list')
  }
  const byName = new Map<string, { hosts: Set<string>; reveal: boolean }>()
  entries.forEach((entry: unknown, i) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new TypeError(`secrets grant entry ${i} is not an object`)
    }
    for (const field of Object.keys(entry)) {
      if (!ENTRY_FIELDS.has(field)) {
        throw new TypeError(
          `secrets grant entry ${i} has an unknown field ${JSON.stringify(field)}`,
        )
      }
    }
    const { name, hosts, reveal } = entry as Record<string, unknown>
    if (!isSecretName(name)) {
      throw new TypeError(`secrets grant entry ${i}: name must match ^[a-z][a-z0-9_]{0,63}$`)
    }
    if (!Array.isArray(hosts)) {
      throw new TypeError(`secrets grant entry ${i}: hosts must be a list of host names`)
    }
    if (reveal !== undefined && typeof reveal !== 'boolean') {
      throw new TypeError(`secrets grant entry ${i}: reveal must be a boolean`)
    }
    const merged = byName.get(name) ?? { hosts: new Set<string>(), reveal: false }
    for (const host of hosts as unknown[]) {
      if (typeof host !== 'string' || !HOST_PATTERN.test(host)) {
        throw new TypeError(`secrets grant entry ${i}: hosts must be bare host names`)
      }
      merged.hosts.add(host.toLowerCase())
    }
    merged.reveal ||= reveal === true
    byName.set(name, merged)
  })
  const compiled = [...byName].map(([name, { hosts, reveal }]) =>
    Object.freeze({ name, hosts: Object.freeze([...hosts]) as string[], reveal }),
  )
  return Object.freeze({ entries: Object.freeze(compiled) as CompiledSecretGrantEntry[] })
}

/** The grant's entry for secret `name`, if any. */
export function findSecretGrant(
  grant: CompiledSecretsGrant | undefined,
  name: string,
): CompiledSecretGrantEntry | undefined {
  return grant?.entries.find((e) => e.name === name)
}

/** True when the grant lets the run use secret `name` (hmac; http toward its hosts). */
export function canUse(grant: CompiledSecretsGrant | undefined, name: string): boolean {
  return findSecretGrant(grant, name) !== undefined
}

/** True when the grant lets the run see secret `name` in plaintext. */
export function canReveal(grant: CompiledSecretsGrant | undefined, name: string): boolean {
  return findSecretGrant(grant, name)?.reveal === true
}

/**
 * True when `value` has the compiled grant's shape. The broker uses it to refuse a grant that
 * was not compiled by {@link compileSecretsGrant} (host misuse).
 */
export function isCompiledSecretsGrant(value: unknown): value is CompiledSecretsGrant {
  if (typeof value !== 'object' || value === null) {
    return false
  }
  const entries = (value as { entries?: unknown }).entries
  return (
    Array.isArray(entries) &&
    entries.every(
      (e: unknown) =>
        typeof e === 'object' &&
        e !== null &&
        isSecretName((e as CompiledSecretGrantEntry).name) &&
        Array.isArray((e as CompiledSecretGrantEntry).hosts) &&
        typeof (e as CompiledSecretGrantEntry).reveal === 'boolean',
    )
  )
}
