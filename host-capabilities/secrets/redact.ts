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
 * - Besides the raw value, its JSON-escaped and percent-encoded forms are redacted too, since
 *   secrets turn up inside serialised JSON and URLs.
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

/** The marker that stands for secret `name`. */
export function redactionMarker(name: string): string {
  return `[redacted:${name}]`
}

interface Needle {
  name: string
  text: string
  bytes: Buffer
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

function find(
  needles: readonly Needle[],
  indexOf: (needle: Needle, from: number) => number,
  length: (needle: Needle) => number,
): { start: number; end: number; name: string }[] {
  const found: { start: number; end: number; name: string }[] = []
  for (const needle of needles) {
    const n = length(needle)
    // Step by one, not by n: overlapping occurrences of one value must all be covered.
    for (let at = indexOf(needle, 0); at !== -1; at = indexOf(needle, at + 1)) {
      found.push({ start: at, end: at + n, name: needle.name })
    }
  }
  return found
}

/**
 * Build a redactor for the given secrets.
 *
 * @example
 * const redact = createRedactor([{ name: 'api_key', value: 'sk-123456' }])
 * redact.text('Authorization: Bearer sk-123456') // 'Authorization: Bearer [redacted:api_key]'
 */
export function createRedactor(secrets: readonly RedactedSecret[]): Redactor {
  if (!Array.isArray(secrets)) {
    throw new TypeError('secrets must be a list of { name, value }')
  }
  const needles: Needle[] = []
  const seen = new Set<string>()
  for (const secret of secrets) {
    const { name, value } = (secret ?? {}) as Partial<RedactedSecret>
    if (typeof name !== 'string' || typeof value !== 'string') {
      throw new TypeError('secrets must be a list of { name, value }')
    }
    if (Buffer.byteLength(value, 'utf8') < MIN_REDACT_BYTES) {
      continue
    }
    const forms = [value, JSON.stringify(value).slice(1, -1)]
    if (value.isWellFormed()) {
      forms.push(encodeURIComponent(value))
    }
    for (const form of forms) {
      const key = `${name}\u0000${form}`
      if (!seen.has(key)) {
        seen.add(key)
        needles.push({ name, text: form, bytes: Buffer.from(form, 'utf8') })
      }
    }
  }
  // Longest first: at one start, the longer value wins the span and names it first.
  needles.sort((a, b) => b.bytes.byteLength - a.bytes.byteLength)
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
      const found = spans(
        find(
          needles,
          (n, from) => s.indexOf(n.text, from),
          (n) => n.text.length,
        ),
      )
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
      const found = spans(
        find(
          needles,
          (n, from) => hay.indexOf(n.bytes, from),
          (n) => n.bytes.byteLength,
        ),
      )
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
