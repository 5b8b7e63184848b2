/**
 * Data keys, key prefixes and collection names: validation, and one canonical form.
 *
 * A key is a `/`-separated UTF-8 string of 1 to {@link MAX_KEY_BYTES} bytes: no control
 * characters (U+0000–U+001F, U+007F), no lone surrogates, no leading `/`, no empty segment
 * (`a//b`, `a/`), no `.` or `..` segment, and already in Unicode NFC. A key that is not NFC is
 * refused rather than normalised, so each key has exactly one spelling.
 *
 * A prefix is a key, optionally followed by one `/`, or empty (the grant decides whether an
 * empty prefix is allowed). `contacts/` and `contacts` are the same prefix; its canonical form
 * has no trailing `/` ({@link canonicalPrefix}). Prefixes match whole segments
 * ({@link keyHasPrefix}): `contacts` covers `contacts` and `contacts/…`, never `contacts-old/…`.
 * A grant's prefix must also be free of `*` ({@link checkGrantPrefix}).
 */

/** Longest key or prefix, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 512

/** What a collection name looks like: `^[a-z][a-z0-9_-]{0,63}$`. */
export const COLLECTION_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/

/** Why a key or prefix is refused. Stable: tests and callers switch on it. */
export type KeyProblem =
  | 'not_string'
  | 'empty'
  | 'too_long'
  | 'control_char'
  | 'lone_surrogate'
  | 'not_nfc'
  | 'leading_slash'
  | 'empty_segment'
  | 'dot_segment'
  | 'wildcard'

// U+0000–U+001F and U+007F.
const CONTROL = /[\u0000-\u001f\u007f]/

/**
 * The problem with `key`, or undefined when it is a valid canonical key.
 *
 * @example
 * checkKey('contacts/alice') // undefined
 * checkKey('contacts/../admin') // 'dot_segment'
 */
export function checkKey(key: unknown): KeyProblem | undefined {
  if (typeof key !== 'string') {
    return 'not_string'
  }
  if (key === '') {
    return 'empty'
  }
  return checkText(key) ?? checkSegments(key.split('/'))
}

/**
 * The problem with `prefix`, or undefined when it is a valid prefix (possibly empty): a valid
 * key, or a valid key and one `/`.
 *
 * @example
 * checkPrefix('contacts/') // undefined
 * checkPrefix('contacts/a') // undefined (the segment `a`, not keys starting with `a`)
 * checkPrefix('/contacts') // 'leading_slash'
 */
export function checkPrefix(prefix: unknown): KeyProblem | undefined {
  if (typeof prefix !== 'string') {
    return 'not_string'
  }
  if (prefix === '') {
    return undefined
  }
  const problem = checkText(prefix)
  if (problem) {
    return problem
  }
  const segments = prefix.split('/')
  if (segments.length > 1 && segments.at(-1) === '') {
    // `contacts/` is another spelling of `contacts`.
    segments.pop()
  }
  return checkSegments(segments)
}

/**
 * The problem with `prefix` as a grant's prefix, or undefined: {@link checkPrefix}, and no `*`
 * anywhere. Keys may hold a `*`, but in a grant it reads as a wildcard that never was one, so
 * `tenants/*` is refused rather than granting the one key spelled `tenants/*`.
 *
 * @example
 * checkGrantPrefix('tenants/acme/reports') // undefined
 * checkGrantPrefix('tenants/*') // 'wildcard'
 */
export function checkGrantPrefix(prefix: unknown): KeyProblem | undefined {
  const problem = checkPrefix(prefix)
  if (problem) {
    return problem
  }
  return (prefix as string).includes('*') ? 'wildcard' : undefined
}

/**
 * The canonical form of a valid prefix: without its trailing `/`.
 *
 * @example
 * canonicalPrefix('contacts/') // 'contacts'
 * canonicalPrefix('contacts') // 'contacts'
 */
export function canonicalPrefix(prefix: string): string {
  return prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
}

/** Length, characters and normalisation: the rules keys and prefixes share. */
function checkText(s: string): KeyProblem | undefined {
  if (!s.isWellFormed()) {
    return 'lone_surrogate'
  }
  if (Buffer.byteLength(s, 'utf8') > MAX_KEY_BYTES) {
    return 'too_long'
  }
  if (CONTROL.test(s)) {
    return 'control_char'
  }
  if (s.normalize('NFC') !== s) {
    return 'not_nfc'
  }
  if (s.startsWith('/')) {
    return 'leading_slash'
  }
  return undefined
}

function checkSegments(segments: readonly string[]): KeyProblem | undefined {
  for (const segment of segments) {
    if (segment === '') {
      return 'empty_segment'
    }
    if (segment === '.' || segment === '..') {
      return 'dot_segment'
    }
  }
  return undefined
}

/** True when `key` is a valid canonical key. */
export function isValidKey(key: unknown): key is string {
  return checkKey(key) === undefined
}

/** True when `prefix` is a valid prefix (the empty prefix included). */
export function isValidPrefix(prefix: unknown): prefix is string {
  return checkPrefix(prefix) === undefined
}

/** True when `name` is a valid collection name. */
export function isValidCollection(name: unknown): name is string {
  return typeof name === 'string' && COLLECTION_PATTERN.test(name)
}

/** Throw a `TypeError` (host misuse) unless `key` is a valid key. */
export function assertKey(key: unknown): asserts key is string {
  const problem = checkKey(key)
  if (problem) {
    throw new TypeError(`invalid data key: ${problem}`)
  }
}

/** Throw a `TypeError` (host misuse) unless `prefix` is a valid prefix. */
export function assertPrefix(prefix: unknown): asserts prefix is string {
  const problem = checkPrefix(prefix)
  if (problem) {
    throw new TypeError(`invalid data key prefix: ${problem}`)
  }
}

/** Throw a `TypeError` (host misuse) unless `name` is a valid collection name. */
export function assertCollection(name: unknown): asserts name is string {
  if (!isValidCollection(name)) {
    throw new TypeError('collection name must match ^[a-z][a-z0-9_-]{0,63}$')
  }
}

/**
 * Whether `key` is under `prefix`, by whole segments: the empty prefix covers every key;
 * otherwise `key` equals the canonical prefix or starts with it and a `/`. The one rule for
 * `get`, listings, cursors and the store; `isDataEntrySubset` in `grant.ts` applies it to attenuation.
 *
 * @example
 * keyHasPrefix('reports/q1', 'reports') // true
 * keyHasPrefix('reports', 'reports/') // true
 * keyHasPrefix('reports-archive/q1', 'reports') // false
 */
export function keyHasPrefix(key: string, prefix: string): boolean {
  const p = canonicalPrefix(prefix)
  return p === '' || key === p || key.startsWith(`${p}/`)
}
