import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  canonicalPrefix,
  checkGrantPrefix,
  checkKey,
  checkPrefix,
  isValidCollection,
  isValidKey,
  keyHasPrefix,
  MAX_KEY_BYTES,
} from './keys.js'
import type { KeyProblem } from './keys.js'

describe('checkKey', () => {
  it.each<[string, unknown, KeyProblem | undefined]>([
    ['a simple key', 'contacts/alice', undefined],
    ['one segment', 'a', undefined],
    ['dots inside a segment', 'a/.hidden/b..c/...', undefined],
    ['non-ASCII in NFC', 'café/日本/🔑', undefined],
    ['spaces and punctuation', 'a b/c-d_e:f@g', undefined],
    ['the longest key', 'x'.repeat(MAX_KEY_BYTES), undefined],
    ['not a string', 42, 'not_string'],
    ['empty', '', 'empty'],
    ['one byte too long', 'x'.repeat(MAX_KEY_BYTES + 1), 'too_long'],
    ['too long in bytes, not in characters', 'é'.repeat(257), 'too_long'],
    ['a leading slash', '/a', 'leading_slash'],
    ['a trailing slash', 'a/', 'empty_segment'],
    ['an empty segment', 'a//b', 'empty_segment'],
    ['a lone slash', '/', 'leading_slash'],
    ['a dot segment', 'a/./b', 'dot_segment'],
    ['a dot-dot segment', 'a/../b', 'dot_segment'],
    ['a leading dot-dot', '../a', 'dot_segment'],
    ['a trailing dot', 'a/.', 'dot_segment'],
    ['only dot-dot', '..', 'dot_segment'],
    ['NUL', 'a\u0000b', 'control_char'],
    ['a newline', 'a\nb', 'control_char'],
    ['U+001F', 'a\u001fb', 'control_char'],
    ['DEL', 'a\u007fb', 'control_char'],
    ['a lone surrogate', 'a\ud800b', 'lone_surrogate'],
    ['NFD (decomposed é)', 'cafe\u0301', 'not_nfc'],
    ['a compatibility-decomposable but NFC key (ﬁ)', 'ﬁle', undefined],
  ])('%s', (_, key, problem) => {
    expect(checkKey(key)).toBe(problem)
    expect(isValidKey(key)).toBe(problem === undefined)
  })
})

describe('checkPrefix', () => {
  it.each<[string, unknown, KeyProblem | undefined]>([
    ['empty (the grant decides)', '', undefined],
    ['a trailing slash', 'contacts/', undefined],
    ['a partial segment', 'contacts/a', undefined],
    ['a nested trailing slash', 'a/b/', undefined],
    ['a leading slash', '/contacts', 'leading_slash'],
    ['a lone slash', '/', 'leading_slash'],
    ['two trailing slashes', 'a//', 'empty_segment'],
    ['an empty segment', 'a//b/', 'empty_segment'],
    ['a dot-dot segment', 'a/../', 'dot_segment'],
    ['a trailing dot-dot', 'a/..', 'dot_segment'],
    ['a control character', 'a\tb/', 'control_char'],
    ['NFD', 'cafe\u0301/', 'not_nfc'],
    ['too long', `${'x'.repeat(MAX_KEY_BYTES)}/`, 'too_long'],
    ['not a string', null, 'not_string'],
  ])('%s', (_, prefix, problem) => {
    expect(checkPrefix(prefix)).toBe(problem)
  })

  it('accepts every valid key as a prefix, and that key followed by a slash', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), (s) => {
        if (isValidKey(s)) {
          expect(checkPrefix(s)).toBeUndefined()
          if (Buffer.byteLength(s) < MAX_KEY_BYTES) {
            expect(checkPrefix(`${s}/`)).toBeUndefined()
          }
        }
      }),
    )
  })

  it('never accepts a key whose NFC form differs from it', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), (s) => {
        if (s.isWellFormed() && s.normalize('NFC') !== s) {
          expect(isValidKey(s)).toBe(false)
          expect(checkPrefix(s)).toBeDefined()
        }
      }),
    )
  })
})

describe('isValidCollection', () => {
  it.each([
    ['crm', true],
    ['a', true],
    ['my-data_2', true],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
    ['', false],
    ['Crm', false],
    ['1crm', false],
    ['-crm', false],
    ['crm/x', false],
    ['crm.json', false],
    ['../crm', false],
  ])('%j → %s', (name, ok) => {
    expect(isValidCollection(name)).toBe(ok)
  })
})

describe('keyHasPrefix (issue 7)', () => {
  it.each<[string, string, boolean]>([
    ['tenants/acme/reports', 'tenants/acme/reports', true],
    ['tenants/acme/reports/q1', 'tenants/acme/reports', true],
    ['tenants/acme/reports/q1', 'tenants/acme/reports/', true],
    ['tenants/acme/reports', 'tenants/acme/reports/', true],
    ['tenants/acme/reports-archive/q1', 'tenants/acme/reports', false],
    ['tenants/acme/reports-archive/q1', 'tenants/acme/reports/', false],
    ['tenants/acme/reportsx', 'tenants/acme/reports', false],
    ['tenants/acme/report', 'tenants/acme/reports', false],
    ['tenants/acme', 'tenants/acme/reports', false],
    ['anything/at/all', '', true],
  ])('%s under %s: %s', (key, prefix, expected) => {
    expect(keyHasPrefix(key, prefix)).toBe(expected)
  })
})

describe('checkGrantPrefix and canonicalPrefix (issue 7)', () => {
  it.each<[string, unknown, KeyProblem | undefined]>([
    ['a prefix', 'tenants/acme/reports', undefined],
    ['a prefix with a trailing slash', 'tenants/acme/reports/', undefined],
    ['empty (the grant decides)', '', undefined],
    ['a `*` segment', 'tenants/*/reports', 'wildcard'],
    ['a trailing `*`', 'tenants/*', 'wildcard'],
    ['a `*` inside a segment', 'tenants/ac*me', 'wildcard'],
    ['a leading slash before a `*`', '/*', 'leading_slash'],
    ['an empty segment', 'a//b', 'empty_segment'],
    ['a dot segment', 'a/./b', 'dot_segment'],
  ])('%s', (_, prefix, problem) => {
    expect(checkGrantPrefix(prefix)).toBe(problem)
  })

  it('lets a key or a listing hold a `*`, as a plain character', () => {
    expect(checkKey('a/*')).toBeUndefined()
    expect(checkPrefix('a/*')).toBeUndefined()
  })

  it('drops one trailing slash, and nothing else', () => {
    expect(canonicalPrefix('a/b/')).toBe('a/b')
    expect(canonicalPrefix('a/b')).toBe('a/b')
    expect(canonicalPrefix('')).toBe('')
  })
})
