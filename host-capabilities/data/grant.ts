/**
 * The data grant: which collections and key prefixes a run may read, and whether it sees PII.
 * Pure: compiled once per token, read by the broker on every call.
 *
 * Denied by default: a key is readable only when an entry names its collection and the key
 * starts with the entry's prefix (plain `startsWith` on canonical keys, see `keys.ts`). A whole
 * collection needs `wholeCollection: true` with an empty prefix: an empty prefix alone is
 * refused, so that forgetting a prefix never grants everything. PII is masked unless the
 * matching entry says `pii: true`.
 */
import { checkPrefix, isValidCollection, isValidKey, isValidPrefix } from './keys.js'

/** One entry as written in the token. */
export interface DataGrantEntry {
  /** The collection (`^[a-z][a-z0-9_-]{0,63}$`). */
  collection: string
  /** Keys starting with this are readable, e.g. `contacts/`. Empty only with `wholeCollection`. */
  prefix: string
  /** Whether PII fields are shown instead of masked. Default false. */
  pii?: boolean
  /** Grant every key of the collection; requires `prefix: ''`. Default false. */
  wholeCollection?: boolean
}

/** One compiled entry. */
export interface CompiledDataGrantEntry {
  collection: string
  prefix: string
  pii: boolean
  wholeCollection: boolean
}

/** The compiled grant, frozen. */
export interface CompiledDataGrant {
  entries: CompiledDataGrantEntry[]
}

const ENTRY_FIELDS = new Set(['collection', 'prefix', 'pii', 'wholeCollection'])

/**
 * Check and compile a data grant. Throws `TypeError` on a malformed entry, an unknown field, an
 * empty prefix without `wholeCollection: true`, or `wholeCollection: true` with a prefix.
 *
 * @example
 * const grant = compileDataGrant([{ collection: 'crm', prefix: 'contacts/' }])
 * allows(grant, 'crm', 'contacts/alice') // { collection: 'crm', prefix: 'contacts/', … }
 * allows(grant, 'crm', 'deals/1') // undefined
 */
export function compileDataGrant(entries: readonly DataGrantEntry[]): CompiledDataGrant {
  if (!Array.isArray(entries)) {
    throw new TypeError('data grant must be a list')
  }
  const compiled = entries.map((entry: unknown, i): CompiledDataGrantEntry => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new TypeError(`data grant entry ${i} is not an object`)
    }
    for (const field of Object.keys(entry)) {
      if (!ENTRY_FIELDS.has(field)) {
        throw new TypeError(`data grant entry ${i} has an unknown field ${JSON.stringify(field)}`)
      }
    }
    const { collection, prefix, pii, wholeCollection } = entry as Record<string, unknown>
    if (!isValidCollection(collection)) {
      throw new TypeError(`data grant entry ${i}: collection must match ^[a-z][a-z0-9_-]{0,63}$`)
    }
    const problem = checkPrefix(prefix)
    if (problem) {
      throw new TypeError(`data grant entry ${i}: invalid prefix (${problem})`)
    }
    if (pii !== undefined && typeof pii !== 'boolean') {
      throw new TypeError(`data grant entry ${i}: pii must be a boolean`)
    }
    if (wholeCollection !== undefined && typeof wholeCollection !== 'boolean') {
      throw new TypeError(`data grant entry ${i}: wholeCollection must be a boolean`)
    }
    const whole = wholeCollection === true
    if (prefix === '' && !whole) {
      throw new TypeError(`data grant entry ${i}: an empty prefix needs wholeCollection: true`)
    }
    if (prefix !== '' && whole) {
      throw new TypeError(`data grant entry ${i}: wholeCollection: true needs an empty prefix`)
    }
    return Object.freeze({
      collection,
      prefix: prefix as string,
      pii: pii === true,
      wholeCollection: whole,
    })
  })
  return Object.freeze({ entries: Object.freeze(compiled) as CompiledDataGrantEntry[] })
}

/** Of several matching entries, the one that grants most: PII shown first, then longest prefix. */
function best(matches: CompiledDataGrantEntry[]): CompiledDataGrantEntry | undefined {
  let out: CompiledDataGrantEntry | undefined
  for (const e of matches) {
    if (!out || (e.pii && !out.pii) || (e.pii === out.pii && e.prefix.length > out.prefix.length)) {
      out = e
    }
  }
  return out
}

/**
 * The entry that lets the run read `key` in `collection`, or undefined. An invalid key or
 * collection is never allowed. Each entry grants on its own, so when several match, the one
 * that shows PII wins.
 */
export function allows(
  grant: CompiledDataGrant | undefined,
  collection: string,
  key: string,
): CompiledDataGrantEntry | undefined {
  if (!grant || !isValidCollection(collection) || !isValidKey(key)) {
    return undefined
  }
  return best(grant.entries.filter((e) => e.collection === collection && key.startsWith(e.prefix)))
}

/**
 * The entry whose prefix contains the requested listing `prefix` (`prefix` starts with the
 * entry's prefix), or undefined. Listing `con` under a grant for `contacts/` is refused.
 */
export function allowsPrefix(
  grant: CompiledDataGrant | undefined,
  collection: string,
  prefix: string,
): CompiledDataGrantEntry | undefined {
  if (!grant || !isValidCollection(collection) || !isValidPrefix(prefix)) {
    return undefined
  }
  return best(
    grant.entries.filter((e) => e.collection === collection && prefix.startsWith(e.prefix)),
  )
}

/** True when `value` has the compiled grant's shape (the broker refuses anything else). */
export function isCompiledDataGrant(value: unknown): value is CompiledDataGrant {
  if (typeof value !== 'object' || value === null) {
    return false
  }
  const entries = (value as { entries?: unknown }).entries
  return (
    Array.isArray(entries) &&
    entries.every((e: unknown) => {
      const x = e as Partial<CompiledDataGrantEntry> | null
      return (
        typeof x === 'object' &&
        x !== null &&
        isValidCollection(x.collection) &&
        typeof x.prefix === 'string' &&
        typeof x.pii === 'boolean' &&
        typeof x.wholeCollection === 'boolean' &&
        (x.prefix !== '' || x.wholeCollection)
      )
    })
  )
}
