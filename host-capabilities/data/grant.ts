/**
 * The data grant: which collections and key prefixes a run may read, and whether it sees PII.
 * Pure: compiled once per token, read by the broker on every call.
 *
 * Denied by default: a key is readable only when an entry names its collection and the key is
 * under the entry's prefix by whole segments (`reports` covers `reports` and `reports/…`, never
 * `reports-archive/…`; see `keyHasPrefix` in `keys.ts`). `reports/` is the same prefix and
 * compiles to `reports`. A whole collection needs `wholeCollection: true` with an empty prefix:
 * an empty prefix alone is refused, so that forgetting a prefix never grants everything. PII is
 * masked unless the matching entry says `pii: true`.
 */
import { z } from 'zod'
import { WardenError } from '../../core/errors.js'
import { listGrant } from '../grant.js'
import {
  canonicalPrefix,
  checkGrantPrefix,
  isValidCollection,
  isValidKey,
  isValidPrefix,
  keyHasPrefix,
} from './keys.js'
import type { KeyProblem } from './keys.js'

/** One entry as written in the token. */
export interface DataGrantEntry {
  /** The collection (`^[a-z][a-z0-9_-]{0,63}$`). */
  collection: string
  /**
   * `contacts` (or `contacts/`): the key `contacts` and every key below it are readable. No
   * `*`, no empty, `.` or `..` segment. Empty only with `wholeCollection`.
   */
  prefix: string
  /** Whether PII fields are shown instead of masked. Default false. */
  pii?: boolean
  /** Grant every key of the collection; requires `prefix: ''`. Default false. */
  wholeCollection?: boolean
}

/** One compiled entry. */
export interface CompiledDataGrantEntry {
  collection: string
  /** Canonical: no trailing `/`. */
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
 * `invalid_request`: a data grant that cannot be compiled. `field` names the first bad part as
 * a path into the token's claims, as minting does: `grants.data[1].prefix`.
 *
 * @example
 * if (err instanceof DataGrantInvalid) console.log(err.field) // 'grants.data[0].prefix'
 */
export class DataGrantInvalid extends WardenError {
  /** The bad part, as a path into the token's claims. */
  readonly field: string

  constructor(field: string, message: string) {
    super('invalid_request', `${field}: ${message}`)
    this.name = 'DataGrantInvalid'
    this.field = field
  }
}

const PREFIX_PROBLEMS: Readonly<Partial<Record<KeyProblem, string>>> = {
  wildcard: "a prefix may not contain '*': prefixes match whole segments, never patterns",
  leading_slash: "a prefix may not start with '/'",
  empty_segment: "a prefix may not hold an empty segment ('a//b')",
  dot_segment: "a prefix may not hold a '.' or '..' segment",
}

/**
 * Check and compile a data grant (the `grants.data` list of a token). Each prefix compiles to
 * its canonical form, without a trailing `/`. Throws {@link DataGrantInvalid} naming the field
 * on a malformed entry or an unknown field; a prefix with a `*`, an empty, `.` or `..` segment
 * or a leading `/`; an empty prefix without `wholeCollection: true`; or `wholeCollection: true`
 * with a prefix.
 *
 * @example
 * const grant = compileDataGrant([{ collection: 'crm', prefix: 'contacts/' }])
 * allows(grant, 'crm', 'contacts/alice') // { collection: 'crm', prefix: 'contacts', … }
 * allows(grant, 'crm', 'contacts-old/alice') // undefined
 */
export function compileDataGrant(entries: readonly DataGrantEntry[]): CompiledDataGrant {
  if (!Array.isArray(entries)) {
    throw new DataGrantInvalid('grants.data', 'must be a list')
  }
  const compiled = entries.map((entry: unknown, i): CompiledDataGrantEntry => {
    const at = `grants.data[${i}]`
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new DataGrantInvalid(at, 'must be an object')
    }
    for (const field of Object.keys(entry)) {
      if (!ENTRY_FIELDS.has(field)) {
        throw new DataGrantInvalid(`${at}.${field}`, 'is not a field of a data grant')
      }
    }
    const { collection, prefix, pii, wholeCollection } = entry as Record<string, unknown>
    if (!isValidCollection(collection)) {
      throw new DataGrantInvalid(`${at}.collection`, 'must match ^[a-z][a-z0-9_-]{0,63}$')
    }
    const problem = checkGrantPrefix(prefix)
    if (problem) {
      const why = PREFIX_PROBLEMS[problem] ?? `not a canonical key prefix (${problem})`
      throw new DataGrantInvalid(`${at}.prefix`, why)
    }
    if (pii !== undefined && typeof pii !== 'boolean') {
      throw new DataGrantInvalid(`${at}.pii`, 'must be a boolean')
    }
    if (wholeCollection !== undefined && typeof wholeCollection !== 'boolean') {
      throw new DataGrantInvalid(`${at}.wholeCollection`, 'must be a boolean')
    }
    const whole = wholeCollection === true
    if (prefix === '' && !whole) {
      throw new DataGrantInvalid(
        `${at}.prefix`,
        'an empty prefix grants the whole collection: write wholeCollection: true',
      )
    }
    if (prefix !== '' && whole) {
      throw new DataGrantInvalid(`${at}.wholeCollection`, "wholeCollection: true needs prefix ''")
    }
    return Object.freeze({
      collection,
      prefix: canonicalPrefix(prefix as string),
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
 * The entry that lets the run read `key` in `collection`, or undefined: `key` equals the
 * entry's prefix or starts with it and a `/`. An invalid key or collection is never allowed.
 * Each entry grants on its own, so when several match, the one that shows PII wins.
 */
export function allows(
  grant: CompiledDataGrant | undefined,
  collection: string,
  key: string,
): CompiledDataGrantEntry | undefined {
  if (!grant || !isValidCollection(collection) || !isValidKey(key)) {
    return undefined
  }
  return best(
    grant.entries.filter((e) => e.collection === collection && keyHasPrefix(key, e.prefix)),
  )
}

/**
 * The entry whose prefix contains the requested listing `prefix`, or undefined: the listing's
 * canonical prefix is the entry's or a deeper whole-segment prefix, so every key the listing
 * can return is one {@link allows} grants. Under a grant for `contacts`, listing `contacts/`
 * or `contacts/eu` is allowed; `con`, `contacts-old` and `` are refused.
 */
export function allowsPrefix(
  grant: CompiledDataGrant | undefined,
  collection: string,
  prefix: string,
): CompiledDataGrantEntry | undefined {
  if (!grant || !isValidCollection(collection) || !isValidPrefix(prefix)) {
    return undefined
  }
  const p = canonicalPrefix(prefix)
  return best(grant.entries.filter((e) => e.collection === collection && keyHasPrefix(p, e.prefix)))
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
        checkGrantPrefix(x.prefix) === undefined &&
        canonicalPrefix(x.prefix as string) === x.prefix &&
        typeof x.pii === 'boolean' &&
        typeof x.wholeCollection === 'boolean' &&
        (x.prefix !== '' || x.wholeCollection)
      )
    })
  )
}

/**
 * One data grant entry as a token carries it: keys of `collection` under `prefix` by whole
 * segments; `pii` (default false) lets the app read records marked as personal data. The empty
 * prefix (the whole collection) must be spelled out with `wholeCollection: true`, and
 * `wholeCollection: true` needs `''`.
 *
 * @example
 * dataGrantEntrySchema.parse({ collection: 'crm', prefix: 'contacts/' })
 * dataGrantEntrySchema.parse({ collection: 'crm', prefix: '', wholeCollection: true })
 */
export const dataGrantEntrySchema = z
  .strictObject({
    collection: z.string().refine(isValidCollection, 'not a collection name'),
    prefix: z.string().superRefine((prefix, ctx) => {
      const problem = checkGrantPrefix(prefix)
      if (problem) {
        const why = PREFIX_PROBLEMS[problem] ?? `not a canonical key prefix (${problem})`
        ctx.addIssue({ code: 'custom', message: why })
      }
    }),
    pii: z.boolean().default(false),
    wholeCollection: z.boolean().optional(),
  })
  .superRefine((entry, ctx) => {
    const whole = entry.wholeCollection === true
    if (entry.prefix === '' && !whole) {
      ctx.addIssue({
        code: 'custom',
        path: ['prefix'],
        message: 'an empty prefix grants the whole collection: write wholeCollection: true',
      })
    }
    if (entry.prefix !== '' && whole) {
      ctx.addIssue({
        code: 'custom',
        path: ['wholeCollection'],
        message: "wholeCollection: true needs prefix ''",
      })
    }
  })
  .transform((entry) => {
    const out: { collection: string; prefix: string; pii: boolean; wholeCollection?: true } = {
      collection: entry.collection,
      prefix: entry.prefix,
      pii: entry.pii,
    }
    if (entry.wholeCollection === true) {
      out.wholeCollection = true
    }
    return out
  })

/** One data grant entry as a token carries it, normalised. */
export type DataGrant = z.output<typeof dataGrantEntrySchema>

/**
 * True when `child` is within `parent`: same collection, the child's prefix under the parent's
 * by whole segments ({@link keyHasPrefix}, the rule reads use; an empty parent prefix covers
 * all only with `wholeCollection`), `pii` and `wholeCollection` only if the parent has them.
 *
 * @example
 * isDataEntrySubset(
 *   { collection: 'crm', prefix: 'contacts/eu', pii: false },
 *   { collection: 'crm', prefix: 'contacts/', pii: true },
 * ) // true; a child prefix 'contacts-old' would not be
 */
export function isDataEntrySubset(child: DataGrantEntry, parent: DataGrantEntry): boolean {
  const c = canonicalPrefix(child.prefix)
  const p = canonicalPrefix(parent.prefix)
  return (
    child.collection === parent.collection &&
    (p === '' ? parent.wholeCollection === true : keyHasPrefix(c, p)) &&
    (child.pii !== true || parent.pii === true) &&
    (child.wholeCollection !== true || parent.wholeCollection === true)
  )
}

/** The `data` field of a token's grants: schema, attenuation rule and compilation. */
export const dataGrant = listGrant(
  'data',
  dataGrantEntrySchema,
  isDataEntrySubset,
  compileDataGrant,
)
