import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decode, encode } from './codec.js'

/** Values as jco lifts WIT values, plus the protocol's plain objects. */
const witValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(undefined),
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.bigInt({ min: -(1n << 63n), max: (1n << 64n) - 1n }),
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.uint8Array({ maxLength: 64 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string(), tie('value'), { maxKeys: 5, noNullPrototype: true }),
  ),
})).value

function roundTrip(value: unknown): unknown {
  // Through shared memory, as on the channel.
  const bytes = encode(value)
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length))
  shared.set(bytes)
  return decode(shared)
}

describe('channel codec', () => {
  it('round-trips every value a WIT call can carry', () => {
    fc.assert(
      fc.property(witValue, (value) => {
        expect(roundTrip(value)).toStrictEqual(value)
      }),
      { numRuns: 500 },
    )
  })

  it('keeps -0, NaN, lone surrogates and a __proto__ key as they are', () => {
    expect(Object.is(roundTrip(-0), -0)).toBe(true)
    expect(roundTrip(Number.NaN)).toBeNaN()
    expect(roundTrip('a\uD800b')).toBe('a\uFFFDb') // UTF-8 cannot carry a lone surrogate
    const tricky = JSON.parse('{"__proto__": {"polluted": true}}') as object
    const back = roundTrip(tricky) as Record<string, unknown>
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.keys(back)).toEqual(['__proto__'])
  })

  it('decodes every key as written, whatever keys came before (the key cache)', () => {
    // 9,000 distinct short keys over the cache's 4,096 slots: many share a slot, and each is
    // read after others took its slot, then again while it holds it.
    const keys = Array.from({ length: 9000 }, (_, i) => `k${i.toString(36)}${'x'.repeat(i % 29)}`)
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < keys.length; i += 3) {
        const value = {
          [keys[i]!]: i,
          [keys[(i + 1) % keys.length]!]: 'v',
          é: 1,
          ['y'.repeat(40)]: 2,
        }
        expect(roundTrip(value)).toStrictEqual(value)
      }
    }
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: 'binary-ascii', maxLength: 34 }), {
          minLength: 1,
          maxLength: 8,
        }),
        (names) => {
          const value = Object.fromEntries(names.map((name, i) => [name, i]))
          expect(roundTrip(value)).toStrictEqual(value)
        },
      ),
      { numRuns: 500 },
    )
  })

  it('returns bytes that do not alias the shared memory', () => {
    const bytes = encode({ blob: new Uint8Array([1, 2, 3]) })
    const shared = new Uint8Array(new SharedArrayBuffer(bytes.length))
    shared.set(bytes)
    const back = decode(shared) as { blob: Uint8Array }
    shared.fill(0)
    expect([...back.blob]).toEqual([1, 2, 3])
    expect(back.blob.buffer).toBeInstanceOf(ArrayBuffer)
  })

  it('carries other objects through v8 serialisation, and refuses functions', () => {
    expect(roundTrip(new Map([[1, 'a']]))).toEqual(new Map([[1, 'a']]))
    expect(roundTrip(new Uint32Array([7, 8]))).toEqual(new Uint32Array([7, 8]))
    expect(() => encode(() => 1)).toThrow(TypeError)
  })

  it('refuses a truncated or trailing message', () => {
    const bytes = encode({ name: 'x'.repeat(100) }).slice()
    expect(() => decode(bytes.subarray(0, bytes.length - 10))).toThrow()
    const longer = new Uint8Array(bytes.length + 1)
    longer.set(bytes)
    expect(() => decode(longer)).toThrow(TypeError)
  })
})
