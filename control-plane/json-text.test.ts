import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isJsonText } from './json-text.js'

/** What `JSON.parse` says, with the nesting bound the checker applies. */
function parses(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** Deepest nesting of arrays and objects in a value `JSON.parse` returned. */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') {
    return 0
  }
  let deepest = 0
  for (const v of Object.values(value)) {
    deepest = Math.max(deepest, depthOf(v))
  }
  return deepest + 1
}

const JSON_CHARS = [...'{}[]",:0123456789-+.eE \t\n\rtruefalsnl\\/bu"aAfF\u0000\u001f\u2028é😀']

describe('isJsonText', () => {
  it('accepts every JSON text, with any whitespace around it', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.integer({ min: 0, max: 4 }), (value, indent) => {
        const text = JSON.stringify(value, null, indent)
        expect(isJsonText(text)).toBe(true)
        expect(isJsonText(` \n${text}\t\r`)).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('agrees with JSON.parse on mutated JSON texts', () => {
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.array(
          fc.tuple(
            fc.nat(),
            fc.constantFrom(...JSON_CHARS),
            fc.constantFrom('insert', 'replace', 'delete'),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        (value, edits) => {
          let text = JSON.stringify(value)
          for (const [at, ch, op] of edits) {
            const i = text.length === 0 ? 0 : at % (text.length + 1)
            text =
              op === 'insert'
                ? text.slice(0, i) + ch + text.slice(i)
                : op === 'replace'
                  ? text.slice(0, i) + ch + text.slice(i + 1)
                  : text.slice(0, i) + text.slice(i + 1)
          }
          expect({ text, ok: isJsonText(text) }).toEqual({ text, ok: parses(text) })
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('agrees with JSON.parse on short strings of JSON characters', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...JSON_CHARS), { maxLength: 12 }), (chars) => {
        const text = chars.join('')
        expect({ text, ok: isJsonText(text) }).toEqual({ text, ok: parses(text) })
      }),
      { numRuns: 5000 },
    )
  })

  it('refuses what JSON.parse refuses, case by case', () => {
    for (const text of [
      '',
      ' ',
      '01',
      '1.',
      '.5',
      '-',
      '1e',
      '1e+',
      '+1',
      '[1,]',
      '{"a":1,}',
      '{"a"}',
      '{a:1}',
      "'a'",
      '"\\x41"',
      '"\\u12G4"',
      '"a\u0001"',
      '"unterminated',
      '[1] [2]',
      'tru',
      'nul',
      'NaN',
      'Infinity',
      '[',
      ']',
      '{"a":1}}',
      '\u00a01',
    ]) {
      expect({ text, ok: isJsonText(text) }).toEqual({ text, ok: false })
      expect(parses(text)).toBe(false)
    }
  })

  it('accepts JSON up to the nesting bound and refuses it past', () => {
    const nested = (d: number) => '['.repeat(d) + ']'.repeat(d)
    expect(isJsonText(nested(10), 10)).toBe(true)
    expect(isJsonText(nested(11), 10)).toBe(false)
    expect(isJsonText('{"a":{"b":[1,{"c":[]}]}}', 5)).toBe(true)
    expect(isJsonText('{"a":{"b":[1,{"c":[]}]}}', 4)).toBe(false)
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const text = JSON.stringify(value)
        expect(isJsonText(text, depthOf(value))).toBe(true)
        if (depthOf(value) > 0) {
          expect(isJsonText(text, depthOf(value) - 1)).toBe(false)
        }
      }),
      { numRuns: 300 },
    )
  })

  it('goes through a megabyte of deep or wide text without recursion', () => {
    const deep = '['.repeat(500_000) + ']'.repeat(500_000)
    expect(isJsonText(deep)).toBe(false)
    expect(isJsonText(deep, 500_000)).toBe(true)
    const wide = `[${Array(300_000).fill('{}').join(',')}]`
    expect(isJsonText(wide)).toBe(true)
  })
})
