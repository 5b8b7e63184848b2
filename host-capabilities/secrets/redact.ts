/**
 * Redaction: the last line of defence that keeps a secret out of logs, error messages, audit
 * records and API responses. Every occurrence of a secret's value becomes `[redacted:NAME]`.
 *
 * - Values under {@link MIN_REDACT_BYTES} UTF-8 bytes (one to three ASCII characters) are not
 *   redacted: replacing every `a` or `42` in a text would shred it and tell a reader which
 *   short strings are secret. Such a secret is too weak to protect anyway.
 * - Overlapping and nested occurrences are covered as one span (longest match first), so no
 *   piece of a secret survives beside a marker: `abcdef` and `defghi` in `abcdefghi` give
 *   `[redacted:a][redacted:b]`, never `[redacted:a]ghi`.
 * - Besides the raw value, the common encodings of it are redacted too (issue 7), since secrets
 *   come back inside JSON, URLs, Basic credentials and debug dumps:
 *   - JSON string escapes and percent-encoding (of the UTF-8 bytes, `+` for a space), character
 *     by character and in any mix, hex digits in either case: `a%62\u0063` is `abc`;
 *   - hex of the UTF-8 bytes, in either case, for values of at least {@link MIN_REDACT_BYTES};
 *   - base64 and base64url of the UTF-8 bytes, padded or not, also where the value sits inside a
 *     longer base64 text (each of the three byte alignments: only the characters that depend on
 *     the value alone are covered, so one or two characters that mix in a neighbouring byte may
 *     stay), for values of at least {@link MIN_REDACT_BYTES}.
 * - What is guaranteed: no occurrence of a value (or of those forms) in the input survives in
 *   the output. A marker is made of `[redacted:`, the name and `]`, so a value made only of
 *   those characters may appear in the output as part of a marker, never from the input.
 */
import type { SecretSource } from '../types.js'

/** Values shorter than this many UTF-8 bytes are not redacted. */
export const MIN_REDACT_BYTES = 4

/** Replaces secret values in text and bytes. */
export interface Redactor {
  /** `s` with every secret value replaced by `[redacted:NAME]`. */
  text(s: string): string
  /** `b` (UTF-8 or any bytes) with every secret value replaced; `b` itself when none occurs. */
  bytes(b: Uint8Array): Uint8Array
}

/** One secret to redact. */
export interface RedactedSecret {
  name: string
  value: string
}

/** Options of {@link createRedactor}. */
export interface RedactorOptions {
  /**
   * Values shorter than this many UTF-8 bytes are not redacted at all. Default
   * {@link MIN_REDACT_BYTES}. Hex and base64 forms are searched only from
   * {@link MIN_REDACT_BYTES} up, whatever this says: shorter ones collide with ordinary text.
   */
  minBytes?: number
  /**
   * In {@link Redactor.bytes}, also match the value's raw Latin-1 bytes (how Node writes header
   * values on the wire). Off by default: a Latin-1 byte can be the start of a UTF-8 sequence,
   * so text and its UTF-8 bytes would no longer redact alike. Default false.
   */
  latin1?: boolean
}

/** The marker that stands for secret `name`. */
export function redactionMarker(name: string): string {
  return `[redacted:${name}]`
}

/**
 * Where to look for one form of a value: a literal, or a chain of patterns that must match one
 * after the other (the first global, the rest sticky). `text` searches a JS string; `bytes`
 * searches bytes read as Latin-1 (one char per byte).
 */
type Matcher = string | readonly RegExp[] | { readonly hex: string }

interface Needle {
  name: string
  text: Matcher
  bytes: Matcher
}

interface Span {
  start: number
  end: number
  names: string[]
}

/** Merge every occurrence into disjoint spans, each listing the names it covers in order. */
function spans(occurrences: { start: number; end: number; name: string }[]): Span[] {
  occurrences.sort((a, b) => a.start - b.start || b.end - a.end)
  const out: Span[] = []
  let current: Span | undefined
  for (const o of occurrences) {
    if (current && o.start < current.end) {
      if (o.end > current.end) {
        current.end = o.end
        if (current.names.at(-1) !== o.name) {
          current.names.push(o.name)
        }
      }
      continue
    }
    current = { start: o.start, end: o.end, names: [o.name] }
    out.push(current)
  }
  return out
}

/** Every start of `needle` in `text`, overlapping ones included. */
function* starts(text: string, needle: string): Generator<number> {
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) {
    yield at
  }
}

/** Every start and end of a chain of patterns in `text`, overlapping ones included. */
function* chainMatches(text: string, chain: readonly RegExp[]): Generator<[number, number]> {
  const [head, ...tail] = chain
  head!.lastIndex = 0
  for (let hit = head!.exec(text); hit !== null; hit = head!.exec(text)) {
    let end = hit.index + hit[0].length
    for (const next of tail) {
      next.lastIndex = end
      const more = next.exec(text)
      if (more === null) {
        end = -1
        break
      }
      end += more[0].length
    }
    if (end !== -1) {
      yield [hit.index, end]
    }
    head!.lastIndex = hit.index + 1
  }
}

function find(
  hay: string,
  needles: readonly Needle[],
  pick: (needle: Needle) => Matcher,
): { start: number; end: number; name: string }[] {
  const found: { start: number; end: number; name: string }[] = []
  let lowered: string | undefined
  for (const needle of needles) {
    const { name } = needle
    const m = pick(needle)
    // Step by one, not by the match: overlapping occurrences of one value must all be covered.
    if (typeof m === 'string') {
      for (const start of starts(hay, m)) {
        found.push({ start, end: start + m.length, name })
      }
    } else if ('hex' in m) {
      lowered ??= hay.replace(/[A-F]+/g, (upper) => upper.toLowerCase())
      for (const start of starts(lowered, m.hex)) {
        found.push({ start, end: start + m.hex.length, name })
      }
    } else {
      for (const [start, end] of chainMatches(hay, m)) {
        found.push({ start, end, name })
      }
    }
  }
  return found
}

/** A regex source matching `s` literally: every UTF-16 unit escaped, so nothing is special. */
function literal(s: string): string {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    out += `\\u${s.charCodeAt(i).toString(16).padStart(4, '0')}`
  }
  return out
}

/** A regex source matching the hex digits of `n` (`width` of them) in either case. */
function hexDigits(n: number, width: number): string {
  return [...n.toString(16).padStart(width, '0')]
    .map((d) => (/[a-f]/.test(d) ? `[${d}${d.toUpperCase()}]` : d))
    .join('')
}

const JSON_SHORT: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '/': '\\/',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
}

/**
 * The ways one code point of a value may be written: itself, JSON-escaped, percent-encoded.
 * `raw` are its own spellings in the domain searched (the UTF-16 units in a string; the UTF-8,
 * and maybe Latin-1, bytes read as Latin-1). Longest first, so a match takes the whole escape.
 */
/** The named HTML character references an escaper writes. */
const HTML_NAMED: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
}

function codePointPattern(cp: string, raw: readonly string[]): string {
  const alternatives = new Map<string, number>()
  for (const r of raw) {
    alternatives.set(literal(r), r.length)
  }
  const short = JSON_SHORT[cp]
  if (short !== undefined) {
    alternatives.set(literal(short), short.length)
  }
  let json = ''
  for (let i = 0; i < cp.length; i++) {
    json += `${literal('\\u')}${hexDigits(cp.charCodeAt(i), 4)}`
  }
  alternatives.set(json, 6 * cp.length)
  if (cp.isWellFormed()) {
    const bytes = Buffer.from(cp, 'utf8')
    alternatives.set(
      [...bytes].map((b) => `${literal('%')}${hexDigits(b, 2)}`).join(''),
      3 * bytes.length,
    )
  }
  if (cp === ' ') {
    alternatives.set(literal('+'), 1)
  }
  // HTML: a character reference, named or numeric (an honest error page that escapes what it
  // echoes handed a secret with `&` or `<` in it to the script; fourteenth outside attack).
  const code = cp.codePointAt(0)!
  const hex = code.toString(16)
  const references = [`&#${code};`]
  for (const x of ['x', 'X']) {
    references.push(`&#${x}${hex};`, `&#${x}${hex.toUpperCase()};`)
  }
  const named = HTML_NAMED[cp]
  if (named !== undefined) {
    references.push(named)
  }
  for (const reference of references) {
    alternatives.set(literal(reference), reference.length)
  }
  const sorted = [...alternatives].sort((a, b) => b[1] - a[1]).map(([source]) => source)
  return `(?:${sorted.join('|')})`
}

/**
 * Code points per pattern of a chain. NB: V8 compiles a regex recursively, and one pattern for a
 * 64 KiB secret overflows its stack (8192 code points already do), so long values are chained.
 */
const CHUNK_CODE_POINTS = 256

/** The value as itself, JSON-escaped or percent-encoded, code point by code point. */
function spellingPatterns(
  value: string,
  latin1: boolean,
): { text: readonly RegExp[]; bytes: readonly RegExp[] } {
  const text: RegExp[] = []
  const bytes: RegExp[] = []
  const points = [...value]
  const memo = new Map<string, [string, string]>()
  const patternsOf = (cp: string): [string, string] => {
    let both = memo.get(cp)
    if (both === undefined) {
      const raw = [Buffer.from(cp, 'utf8').toString('latin1')]
      const code = cp.codePointAt(0)!
      if (latin1 && code >= 0x80 && code <= 0xff) {
        raw.push(cp)
      }
      both = [codePointPattern(cp, [cp]), codePointPattern(cp, raw)]
      memo.set(cp, both)
    }
    return both
  }
  for (let at = 0; at < points.length; at += CHUNK_CODE_POINTS) {
    let textSource = ''
    let bytesSource = ''
    for (const cp of points.slice(at, at + CHUNK_CODE_POINTS)) {
      const [forText, forBytes] = patternsOf(cp)
      textSource += forText
      bytesSource += forBytes
    }
    const flags = at === 0 ? 'g' : 'y'
    text.push(new RegExp(textSource, flags))
    bytes.push(new RegExp(bytesSource, flags))
  }
  return { text, bytes }
}

/** Base64 forms shorter than this are not searched: they would match ordinary words. */
const MIN_BASE64_CHARS = 4

/**
 * Base64 and base64url of `bytes`: standalone (padded or not), and the characters that only
 * `bytes` decide when they follow 0, 1 or 2 other bytes inside a longer base64 text.
 */
function base64Forms(bytes: Buffer): string[] {
  const forms = new Set<string>([bytes.toString('base64').replace(/=+$/, '')])
  const n = bytes.length
  for (let k = 0; k < 3; k++) {
    const encoded = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64')
    // Character i holds bits [6i, 6i + 6); the value's bits are [8k, 8(k + n)).
    const first = Math.ceil((8 * k) / 6)
    const last = Math.floor((8 * (k + n) - 6) / 6)
    if (last - first + 1 >= MIN_BASE64_CHARS) {
      forms.add(encoded.slice(first, last + 1))
    }
  }
  for (const form of [...forms]) {
    forms.add(form.replace(/\+/g, '-').replace(/\//g, '_'))
  }
  return [...forms]
}

/** Every form of one value to search for, as needles. */
function needlesFor(name: string, value: string, latin1: boolean): Needle[] {
  const spelled = spellingPatterns(value, latin1)
  const utf8 = Buffer.from(value, 'utf8')
  const needles: Needle[] = [
    // The value as written, found exactly even where a chain's pieces would not backtrack.
    { name, text: value, bytes: utf8.toString('latin1') },
    { name, text: spelled.text, bytes: spelled.bytes },
  ]
  if (latin1 && /^[\u0000-\u00ff]*$/.test(value)) {
    needles.push({ name, text: value, bytes: value })
  }
  if (utf8.byteLength >= MIN_REDACT_BYTES) {
    // Hex is searched in a copy of the text with A-F lower-cased: same length, same offsets.
    const hex = utf8.toString('hex')
    needles.push({ name, text: { hex }, bytes: { hex } })
    for (const form of base64Forms(utf8)) {
      needles.push({ name, text: form, bytes: form })
    }
  }
  return needles
}

/**
 * Build a redactor for the given secrets.
 *
 * @example
 * const redact = createRedactor([{ name: 'api_key', value: 'sk-123456' }])
 * redact.text('Authorization: Bearer sk-123456') // 'Authorization: Bearer [redacted:api_key]'
 * redact.text('c2stMTIzNDU2') // '[redacted:api_key]' (base64)
 */
export function createRedactor(
  secrets: readonly RedactedSecret[],
  options: RedactorOptions = {},
): Redactor {
  if (!Array.isArray(secrets)) {
    throw new TypeError('secrets must be a list of { name, value }')
  }
  const minBytes = options.minBytes ?? MIN_REDACT_BYTES
  if (!Number.isSafeInteger(minBytes) || minBytes < 1) {
    throw new TypeError('minBytes must be a positive integer')
  }
  const needles: Needle[] = []
  const seen = new Set<string>()
  for (const secret of secrets) {
    const { name, value } = (secret ?? {}) as Partial<RedactedSecret>
    if (typeof name !== 'string' || typeof value !== 'string') {
      throw new TypeError('secrets must be a list of { name, value }')
    }
    const key = `${name}\u0000${value}`
    if (Buffer.byteLength(value, 'utf8') < minBytes || seen.has(key)) {
      continue
    }
    seen.add(key)
    needles.push(...needlesFor(name, value, options.latin1 === true))
  }
  const markerBytes = new Map<string, Buffer>()
  const marker = (name: string) => {
    let m = markerBytes.get(name)
    if (!m) {
      m = Buffer.from(redactionMarker(name), 'utf8')
      markerBytes.set(name, m)
    }
    return m
  }

  return {
    text(s) {
      if (needles.length === 0 || s.length === 0) {
        return s
      }
      const found = spans(find(s, needles, (n) => n.text))
      if (found.length === 0) {
        return s
      }
      let out = ''
      let at = 0
      for (const span of found) {
        out += s.slice(at, span.start) + span.names.map(redactionMarker).join('')
        at = span.end
      }
      return out + s.slice(at)
    },

    bytes(b) {
      if (needles.length === 0 || b.byteLength === 0) {
        return b
      }
      const hay = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
      // Latin-1 maps each byte to one char, so string offsets are byte offsets.
      const found = spans(find(hay.toString('latin1'), needles, (n) => n.bytes))
      if (found.length === 0) {
        return b
      }
      const pieces: Uint8Array[] = []
      let at = 0
      for (const span of found) {
        pieces.push(hay.subarray(at, span.start), ...span.names.map(marker))
        at = span.end
      }
      pieces.push(hay.subarray(at))
      // NB: a fresh, unpooled buffer. Buffer.concat may return a view into Node's shared pool,
      // and sending such a view (postMessage) would copy the whole pool with it.
      const out = new Uint8Array(pieces.reduce((sum, p) => sum + p.byteLength, 0))
      let offset = 0
      for (const p of pieces) {
        out.set(p, offset)
        offset += p.byteLength
      }
      return out
    },
  }
}

/**
 * Build a redactor from the secrets a run may use: read each of `names` from `source` (in the
 * broker), skipping those that do not exist.
 *
 * @example
 * const redact = await loadRedactor(secretStore, grant.entries.map((e) => e.name))
 */
export async function loadRedactor(
  source: SecretSource,
  names: Iterable<string>,
): Promise<Redactor> {
  const secrets: RedactedSecret[] = []
  for (const name of new Set(names)) {
    const value = await source.read(name)
    if (value !== undefined) {
      secrets.push({ name, value })
    }
  }
  return createRedactor(secrets)
}
