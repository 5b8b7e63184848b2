import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { SecretSource } from '../types.js'
import { createRedactor, loadRedactor, MIN_REDACT_BYTES, redactionMarker } from './redact.js'

const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'))
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8')

describe('createRedactor', () => {
  it('replaces every occurrence with [redacted:NAME]', () => {
    const r = createRedactor([{ name: 'api_key', value: 'sk-123456' }])
    expect(r.text('Bearer sk-123456, again sk-123456.')).toBe(
      'Bearer [redacted:api_key], again [redacted:api_key].',
    )
    expect(text(r.bytes(utf8('x=sk-123456')))).toBe('x=[redacted:api_key]')
  })

  it(`ignores values under ${MIN_REDACT_BYTES} UTF-8 bytes, not to shred text`, () => {
    const r = createRedactor([
      { name: 'short', value: 'abc' },
      { name: 'four', value: 'wxyz' },
      { name: 'wide', value: '€€' },
    ])
    expect(r.text('abc wxyz €€ abcabc')).toBe('abc [redacted:four] [redacted:wide] abcabc')
  })

  it('lets the longest value win where one contains another', () => {
    const r = createRedactor([
      { name: 'short', value: 'abcd' },
      { name: 'long', value: 'abcdefgh' },
    ])
    expect(r.text('xxabcdefghxx abcd')).toBe('xx[redacted:long]xx [redacted:short]')
    expect(text(r.bytes(utf8('xxabcdefghxx abcd')))).toBe('xx[redacted:long]xx [redacted:short]')
  })

  it('covers overlapping values as one span, leaving no piece of either', () => {
    const r = createRedactor([
      { name: 'a', value: 'abcdef' },
      { name: 'b', value: 'defghi' },
    ])
    expect(r.text('<abcdefghi>')).toBe('<[redacted:a][redacted:b]>')
    expect(text(r.bytes(utf8('<abcdefghi>')))).toBe('<[redacted:a][redacted:b]>')
  })

  it('covers overlapping occurrences of one value', () => {
    const r = createRedactor([{ name: 's', value: 'aaaa' }])
    expect(r.text('baaaaaab')).toBe('b[redacted:s]b')
  })

  it('handles multi-byte UTF-8 in text and in bytes', () => {
    const value = '🔑pässwörd密码'
    const r = createRedactor([{ name: 'pw', value }])
    const input = `ünïcödé ${value}🙂${value}`
    expect(r.text(input)).toBe('ünïcödé [redacted:pw]🙂[redacted:pw]')
    expect(text(r.bytes(utf8(input)))).toBe('ünïcödé [redacted:pw]🙂[redacted:pw]')
  })

  it('redacts the JSON-escaped and percent-encoded forms too', () => {
    const value = 'pa"ss\\wo rd&x=1'
    const r = createRedactor([{ name: 'pw', value }])
    expect(r.text(JSON.stringify({ header: value }))).toBe('{"header":"[redacted:pw]"}')
    expect(r.text(`https://x.example/?q=${encodeURIComponent(value)}`)).toBe(
      'https://x.example/?q=[redacted:pw]',
    )
  })

  it('redacts the HTML-escaped forms too: named and numeric references, mixed', () => {
    const value = `Xk9<pQ&r"s'T`
    const r = createRedactor([{ name: 'pw', value }])
    const named = value
      .replaceAll('&', '&amp;')
      .replaceAll('<', '&lt;')
      .replaceAll('"', '&quot;')
      .replaceAll("'", '&#39;')
    expect(r.text(`<b>invalid token: ${named}</b>`)).toBe('<b>invalid token: [redacted:pw]</b>')
    const numeric = [...value].map((c) => `&#x${c.codePointAt(0)!.toString(16).toUpperCase()};`)
    expect(r.text(`=${numeric.join('')}=`)).toBe('=[redacted:pw]=')
    expect(r.bytes(Buffer.from(`${value.replaceAll('<', '&#60;')}`))).toEqual(
      new Uint8Array(Buffer.from('[redacted:pw]')),
    )
  })

  it('returns its input when nothing matches, else a fresh unpooled array', () => {
    const r = createRedactor([{ name: 'k', value: 'secret-value' }])
    const clean = utf8('nothing here')
    expect(r.bytes(clean)).toBe(clean)
    const out = r.bytes(utf8('a secret-value b'))
    expect(out.byteOffset).toBe(0)
    expect(out.buffer.byteLength).toBe(out.byteLength)
  })

  it('works on a view into a larger buffer', () => {
    const r = createRedactor([{ name: 'k', value: 'secret-value' }])
    const backing = utf8('XXXXa secret-value bXXXX')
    expect(text(r.bytes(backing.subarray(4, backing.length - 4)))).toBe('a [redacted:k] b')
  })

  it('refuses a malformed list', () => {
    expect(() => createRedactor([{ name: 'x' } as never])).toThrow(TypeError)
    expect(() => createRedactor('x' as never)).toThrow(TypeError)
  })

  it('loads the values of the given names from a source, skipping missing ones', async () => {
    const src: SecretSource = { read: async (n) => ({ one: 'first-secret' })[n] }
    const r = await loadRedactor(src, ['one', 'missing', 'one'])
    expect(r.text('first-secret')).toBe(redactionMarker('one'))
  })
})

// Values drawn from characters that never appear in a marker (`[redacted:` + name + `]`), so
// any occurrence in the output would have to come from the input.
const valueChar = fc.constantFrom(...'ABCDEFGHIJ€é密🔑-+ '.split(/(?:)/u))
const secretsArb = fc.uniqueArray(
  fc.record({
    name: fc.constantFrom('s0', 's1', 's2', 's3', 's4', 's5'),
    value: fc.string({ unit: valueChar, minLength: 1, maxLength: 12 }),
  }),
  { minLength: 1, maxLength: 5, selector: (s) => s.name },
)
/** Inputs built from whole values, pieces of values and noise, so overlaps are common. */
function inputArb(secrets: { value: string }[]) {
  const values = secrets.map((s) => s.value)
  return fc
    .array(
      fc.oneof(
        fc.constantFrom(...values),
        fc.constantFrom(...values).chain((v) => {
          const chars = [...v]
          return fc
            .tuple(fc.nat(chars.length), fc.nat(chars.length))
            .map(([a, b]) => chars.slice(Math.min(a, b), Math.max(a, b)).join(''))
        }),
        fc.string({ unit: 'grapheme', maxLength: 6 }),
        fc.string({ unit: valueChar, maxLength: 6 }),
      ),
      { maxLength: 12 },
    )
    .map((parts) => parts.join(''))
}

describe('createRedactor properties', () => {
  it('never lets a value of 4 or more bytes through, in text or in bytes', () => {
    fc.assert(
      fc.property(
        secretsArb.chain((secrets) => fc.tuple(fc.constant(secrets), inputArb(secrets))),
        ([secrets, input]) => {
          const r = createRedactor(secrets)
          const out = r.text(input)
          const outBytes = Buffer.from(r.bytes(utf8(input)))
          for (const { value } of secrets) {
            if (Buffer.byteLength(value) >= MIN_REDACT_BYTES) {
              expect(out.includes(value)).toBe(false)
              expect(outBytes.includes(Buffer.from(value))).toBe(false)
            }
          }
          // Well-formed text redacts the same way as its UTF-8 bytes.
          expect(outBytes.toString('utf8')).toBe(out)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('leaves no value in the text between markers, whatever the values', () => {
    fc.assert(
      fc.property(
        fc
          .uniqueArray(
            fc.record({
              name: fc.constantFrom('a', 'b', 'c', 'd'),
              value: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
            }),
            { minLength: 1, maxLength: 4, selector: (s) => s.name },
          )
          .chain((secrets) => fc.tuple(fc.constant(secrets), inputArb(secrets))),
        ([secrets, input]) => {
          const out = createRedactor(secrets).text(input)
          const pieces = out.split(/\[redacted:[a-d]\]/)
          for (const { value } of secrets) {
            if (Buffer.byteLength(value) >= MIN_REDACT_BYTES) {
              for (const piece of pieces) {
                expect(piece.includes(value)).toBe(false)
              }
            }
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})

/** Upper- or lower-case each hex digit of `s` at random: hex and percent-encoding ignore case. */
function randomCase(s: string, flips: readonly boolean[]): string {
  return [...s]
    .map((c, i) => (flips[i % flips.length] ? c.toUpperCase() : c.toLowerCase()))
    .join('')
}

/** Percent-encode every byte of `s` (UTF-8), not only the reserved ones. */
function percentEveryByte(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')
}

/** The encodings issue 7 names, as an upstream might echo them. */
function encodingsOf(value: string, flips: readonly boolean[]): Record<string, string> {
  const bytes = Buffer.from(value, 'utf8')
  const hex = bytes.toString('hex')
  return {
    base64: bytes.toString('base64'),
    base64Unpadded: bytes.toString('base64').replace(/=+$/, ''),
    base64url: bytes.toString('base64url'),
    hexLower: hex,
    hexUpper: hex.toUpperCase(),
    hexMixed: randomCase(hex, flips),
    percent: encodeURIComponent(value),
    percentLower: encodeURIComponent(value).replace(/%[0-9A-F]{2}/g, (p) => p.toLowerCase()),
    percentEveryByte: randomCase(percentEveryByte(value), flips),
  }
}

describe('createRedactor: encodings (issue 7)', () => {
  const value = 'tok/en+k€y?=1'
  const r = createRedactor([{ name: 'k', value }])
  const bytes = Buffer.from(value, 'utf8')

  it.each<[string, string]>([
    ['base64', bytes.toString('base64')],
    ['base64 without padding', bytes.toString('base64').replace(/=+$/, '')],
    ['base64url', bytes.toString('base64url')],
    ['lower-case hex', bytes.toString('hex')],
    ['upper-case hex', bytes.toString('hex').toUpperCase()],
    ['percent-encoding', encodeURIComponent(value)],
    ['lower-case percent-encoding', encodeURIComponent(value).toLowerCase()],
    ['every byte percent-encoded', percentEveryByte(value)],
    ['form encoding', encodeURIComponent(value).replace(/%20/g, '+')],
  ])('redacts the %s form, in text and in bytes', (_label, form) => {
    expect(r.text(`<${form}>`)).toBe('<[redacted:k]>')
    expect(text(r.bytes(utf8(`<${form}>`)))).toBe('<[redacted:k]>')
  })

  it('redacts the value inside a longer base64 text, at any alignment', () => {
    for (const before of ['', 'B', 'Be', 'Bearer ']) {
      const blob = Buffer.from(`${before}${value}!`).toString('base64')
      const out = r.text(blob)
      expect(out).toContain('[redacted:k]')
      // What is left around the marker is at most the few characters that mix in other bytes.
      expect(out.replace('[redacted:k]', '').length).toBeLessThanOrEqual(
        Math.ceil(((before.length + 1) * 4) / 3) + 4,
      )
    }
  })

  it('redacts spellings mixed character by character', () => {
    const mixed = createRedactor([{ name: 'k', value: 'a b/c"d' }])
    expect(mixed.text('x=a+b%2Fc\\u0022d;y=a%20b\\/c\\"d')).toBe('x=[redacted:k];y=[redacted:k]')
  })

  it('redacts a value longer than one pattern, up to the largest secret', () => {
    const long = 'tok/'.repeat(1000)
    const r = createRedactor([{ name: 'long', value: long }])
    expect(r.text(`<${encodeURIComponent(long).toLowerCase()}>`)).toBe('<[redacted:long]>')
    expect(r.text(`<${long}>`)).toBe('<[redacted:long]>')
    // One pattern for a value this long would overflow V8's regex compiler; a chain does not.
    const largest = randomBytes(48 * 1024).toString('base64')
    expect(createRedactor([{ name: 'big', value: largest }]).text(`<${largest}>`)).toBe(
      '<[redacted:big]>',
    )
  })

  it('matches raw Latin-1 bytes only when asked to', () => {
    const latin = Buffer.from('x café!', 'latin1')
    expect(text(createRedactor([{ name: 'l', value: 'café' }]).bytes(latin))).not.toContain('[')
    const r = createRedactor([{ name: 'l', value: 'café' }], { latin1: true })
    expect(Buffer.from(r.bytes(latin)).toString('latin1')).toBe('x [redacted:l]!')
  })

  it('redacts shorter values when minBytes says so, but never their hex or base64', () => {
    const r = createRedactor([{ name: 's', value: 'abc' }], { minBytes: 1 })
    expect(r.text('abc YWJj 616263')).toBe('[redacted:s] YWJj 616263')
    expect(() => createRedactor([], { minBytes: 0 })).toThrow(TypeError)
  })

  it('does not search encodings of values under the minimum', () => {
    const short = createRedactor([{ name: 's', value: 'abc' }])
    expect(short.text('YWJj 616263')).toBe('YWJj 616263')
  })
})

describe('createRedactor: encodings, properties (issue 7)', () => {
  // Names and markers are made of characters that no base64, hex or percent form of a value
  // can span, so any form found in the output came through from the input.
  const secretArb = fc.record({
    name: fc.constantFrom('s0', 's1', 's2'),
    value: fc
      .string({ unit: 'grapheme', minLength: 4, maxLength: 24 })
      .filter((v) => Buffer.byteLength(v) >= MIN_REDACT_BYTES),
  })
  const noise = fc.string({ unit: 'grapheme', maxLength: 8 })
  const flipsArb = fc.array(fc.boolean(), { minLength: 1, maxLength: 8 })

  it('leaves no base64, base64url, hex or percent form of a value, whatever surrounds it', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(secretArb, { minLength: 1, maxLength: 3, selector: (s) => s.name }),
        fc.array(fc.tuple(noise, fc.nat(), fc.nat()), { minLength: 1, maxLength: 6 }),
        flipsArb,
        (secrets, parts, flips) => {
          const forms = secrets.map((s) => Object.values(encodingsOf(s.value, flips)))
          const input = parts
            .map(([pre, which, form]) => {
              const choices = forms[which % forms.length]!
              return pre + choices[form % choices.length]!
            })
            .join('')
          const r = createRedactor(secrets)
          const outputs = [r.text(input), Buffer.from(r.bytes(utf8(input))).toString('latin1')]
          for (const out of outputs) {
            const pieces = out.split(/\[redacted:s\d\]/)
            for (const { value } of secrets) {
              const e = encodingsOf(value, flips)
              for (const piece of pieces) {
                expect(piece.toLowerCase()).not.toContain(e.hexLower)
                expect(piece.toLowerCase()).not.toContain(percentEveryByte(value))
                for (const form of [e.base64Unpadded, e.base64url, e.percent, e.percentLower]) {
                  expect(piece).not.toContain(form)
                }
              }
            }
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})
