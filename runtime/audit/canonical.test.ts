import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalJson } from './canonical.js'

/** A deep copy, keys re-inserted in another order (except integer-like ones: JS sorts those). */
function reorder(value: unknown, pick: (keys: string[]) => string[]): unknown {
  if (Array.isArray(value)) {
    return value.map((item) => reorder(item, pick))
  }
  if (typeof value === 'object' && value !== null) {
    const source = value as Record<string, unknown>
    return Object.fromEntries(pick(Object.keys(source)).map((k) => [k, reorder(source[k], pick)]))
  }
  return value
}

/** Any UTF-16 code unit, lone surrogates included (fast-check's 'binary' unit has none). */
const utf16 = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit))

describe('canonicalJson', () => {
  it('sorts keys at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: null, y: true }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[3,{"y":true,"z":null}]},"b":1}',
    )
  })

  it('sorts integer-like keys as strings, not numbers', () => {
    expect(canonicalJson({ 2: 'b', 10: 'a', x: 'c' })).toBe('{"10":"a","2":"b","x":"c"}')
  })

  it('sorts by UTF-16 code unit', () => {
    expect(canonicalJson({ é: 1, z: 2, '😀': 3, '\uffff': 4 })).toBe(
      '{"z":2,"é":1,"😀":3,"\uffff":4}',
    )
  })

  it('escapes strings exactly as JSON.stringify does', () => {
    for (const s of ['a"b\\c', '\n\r\t\u0000\u001f', '\u2028\u2029', '\ud800', 'é😀']) {
      expect(canonicalJson(s)).toBe(JSON.stringify(s))
      expect(canonicalJson({ [s]: s })).toBe(`{${JSON.stringify(s)}:${JSON.stringify(s)}}`)
    }
  })

  it('writes any string, valid UTF-16 or not, as JSON.stringify does', () => {
    fc.assert(
      fc.property(fc.string({ unit: utf16 }), fc.string({ unit: 'grapheme' }), (a, b) => {
        expect(canonicalJson(a)).toBe(JSON.stringify(a))
        expect(canonicalJson({ [b]: b })).toBe(`{${JSON.stringify(b)}:${JSON.stringify(b)}}`)
      }),
    )
  })

  it('writes numbers as JSON.stringify does', () => {
    expect(canonicalJson([0, -0, 1.5, 1e21, 1e-7, -3])).toBe('[0,0,1.5,1e+21,1e-7,-3]')
  })

  it('leaves out properties whose value is undefined, and honours toJSON', () => {
    expect(canonicalJson({ a: undefined, b: new Date(0) })).toBe('{"b":"1970-01-01T00:00:00.000Z"}')
  })

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', [1, Number.POSITIVE_INFINITY]],
    ['-Infinity', { a: Number.NEGATIVE_INFINITY }],
    ['undefined in an array', [1, undefined]],
    // biome-ignore lint/suspicious/noSparseArray: the hole is the case under test
    ['a hole in an array', [1, , 3]],
    ['a BigInt', { a: 1n }],
    ['a function', { a: () => 1 }],
    ['a symbol', [Symbol('s')]],
    ['undefined at the top', undefined],
  ])('rejects %s with a TypeError', (_name, value) => {
    expect(() => canonicalJson(value)).toThrow(TypeError)
  })

  it('rejects a cycle but accepts a shared, acyclic object', () => {
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    expect(() => canonicalJson(cycle)).toThrow(TypeError)
    const shared = { x: 1 }
    expect(canonicalJson([shared, shared])).toBe('[{"x":1},{"x":1}]')
  })

  it('round-trips any JSON value, whatever its key order', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const encoded = canonicalJson(value)
        expect(JSON.parse(encoded)).toEqual(JSON.parse(JSON.stringify(value)))
        expect(canonicalJson(reorder(value, (keys) => [...keys].reverse()))).toBe(encoded)
        expect(canonicalJson(JSON.parse(encoded))).toBe(encoded)
      }),
    )
  })

  it('is JSON.stringify of the key-sorted value when no key is integer-like', () => {
    const noIntegerKeys = fc.jsonValue().filter((v) => !/"(0|[1-9]\d*)":/.test(JSON.stringify(v)))
    fc.assert(
      fc.property(noIntegerKeys, (value) => {
        const sorted = reorder(value, (keys) => [...keys].sort())
        expect(canonicalJson(value)).toBe(JSON.stringify(sorted))
      }),
    )
  })
})
