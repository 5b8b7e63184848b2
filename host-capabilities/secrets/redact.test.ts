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
