import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { allows, allowsPrefix, compileDataGrant, isCompiledDataGrant } from './grant.js'
import type { DataGrantEntry } from './grant.js'
import { isValidKey, isValidPrefix } from './keys.js'

describe('compileDataGrant', () => {
  it('compiles entries with defaults, frozen', () => {
    const grant = compileDataGrant([{ collection: 'crm', prefix: 'contacts/' }])
    expect(grant).toEqual({
      entries: [{ collection: 'crm', prefix: 'contacts/', pii: false, wholeCollection: false }],
    })
    expect(Object.isFrozen(grant.entries)).toBe(true)
    expect(Object.isFrozen(grant.entries[0])).toBe(true)
    expect(isCompiledDataGrant(grant)).toBe(true)
  })

  it('grants a whole collection only with the explicit flag', () => {
    expect(() => compileDataGrant([{ collection: 'crm', prefix: '' }])).toThrow(TypeError)
    const grant = compileDataGrant([{ collection: 'crm', prefix: '', wholeCollection: true }])
    expect(allows(grant, 'crm', 'anything/at/all')).toBeDefined()
    expect(allows(grant, 'other', 'anything')).toBeUndefined()
    expect(allowsPrefix(grant, 'crm', '')).toBeDefined()
  })

  it.each<[string, unknown]>([
    ['not a list', { collection: 'crm', prefix: 'a/' }],
    ['an entry that is not an object', [null]],
    ['a bad collection', [{ collection: 'CRM', prefix: 'a/' }]],
    ['a bad prefix', [{ collection: 'crm', prefix: '../a' }]],
    ['a prefix with a leading slash', [{ collection: 'crm', prefix: '/a' }]],
    ['a prefix that is not a string', [{ collection: 'crm', prefix: 1 }]],
    ['an empty prefix without wholeCollection', [{ collection: 'crm', prefix: '', pii: true }]],
    ['wholeCollection with a prefix', [{ collection: 'crm', prefix: 'a/', wholeCollection: true }]],
    ['a non-boolean pii', [{ collection: 'crm', prefix: 'a/', pii: 'yes' }]],
    ['an unknown field', [{ collection: 'crm', prefix: 'a/', pathPrefix: 'b/' }]],
  ])('refuses %s with a TypeError', (_, entries) => {
    expect(() => compileDataGrant(entries as DataGrantEntry[])).toThrow(TypeError)
  })
})

describe('allows', () => {
  const grant = compileDataGrant([
    { collection: 'crm', prefix: 'contacts/' },
    { collection: 'crm', prefix: 'contacts/vip/', pii: true },
    { collection: 'crm', prefix: 'deals/2024' },
  ])

  it('matches by exact startsWith on the canonical key', () => {
    expect(allows(grant, 'crm', 'contacts/alice')?.prefix).toBe('contacts/')
    expect(allows(grant, 'crm', 'deals/2024-q1')?.prefix).toBe('deals/2024')
    expect(allows(grant, 'crm', 'contacts')).toBeUndefined()
    expect(allows(grant, 'crm', 'contactsx/a')).toBeUndefined()
    expect(allows(grant, 'crm', 'deals/2023')).toBeUndefined()
    expect(allows(grant, 'other', 'contacts/alice')).toBeUndefined()
  })

  it('prefers the entry that shows PII when several match', () => {
    expect(allows(grant, 'crm', 'contacts/vip/bob')?.pii).toBe(true)
    expect(allows(grant, 'crm', 'contacts/bob')?.pii).toBe(false)
  })

  it('never allows an invalid key, even under a granted prefix', () => {
    for (const key of [
      'contacts/../admin',
      'contacts//x',
      'contacts/a\u0000',
      'contacts/cafe\u0301',
    ]) {
      expect(allows(grant, 'crm', key)).toBeUndefined()
    }
    expect(allows(undefined, 'crm', 'contacts/alice')).toBeUndefined()
  })

  it('lists only within a granted prefix', () => {
    expect(allowsPrefix(grant, 'crm', 'contacts/')).toBeDefined()
    expect(allowsPrefix(grant, 'crm', 'contacts/al')).toBeDefined()
    expect(allowsPrefix(grant, 'crm', 'contacts')).toBeUndefined()
    expect(allowsPrefix(grant, 'crm', 'con')).toBeUndefined()
    expect(allowsPrefix(grant, 'crm', '')).toBeUndefined()
    expect(allowsPrefix(grant, 'crm', 'contacts/../')).toBeUndefined()
  })
})

const segment = fc.string({
  unit: fc.constantFrom('a', 'b', '.', 'é', '日', 'e\u0301'),
  minLength: 1,
  maxLength: 3,
})
const rawKey = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'))
const collection = fc.constantFrom('c1', 'c2')

describe('allows properties', () => {
  it('allows a key iff it is valid and starts with a granted prefix of its collection', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            collection,
            prefix: fc.oneof(
              rawKey,
              rawKey.map((k) => `${k}/`),
              rawKey.map((k) => k.slice(0, -1)),
            ),
          }),
          { maxLength: 4 },
        ),
        collection,
        rawKey,
        (rawEntries, coll, key) => {
          const entries = rawEntries.filter((e) => e.prefix !== '' && isValidPrefix(e.prefix))
          const grant = compileDataGrant(entries)
          const expected =
            isValidKey(key) &&
            entries.some((e) => e.collection === coll && key.startsWith(e.prefix))
          const entry = allows(grant, coll, key)
          expect(entry !== undefined).toBe(expected)
          if (entry) {
            expect(entry.collection).toBe(coll)
            expect(key.startsWith(entry.prefix)).toBe(true)
          }
        },
      ),
      { numRuns: 1000 },
    )
  })

  it('allows every key under an allowed listing prefix', () => {
    fc.assert(
      fc.property(rawKey, rawKey, rawKey, (granted, extra, rest) => {
        const grantedPrefix = `${granted}/`
        fc.pre(isValidPrefix(grantedPrefix))
        const grant = compileDataGrant([{ collection: 'c1', prefix: grantedPrefix }])
        const listing = `${grantedPrefix}${extra}`
        const key = `${listing}${rest}`
        if (allowsPrefix(grant, 'c1', listing) && isValidKey(key)) {
          expect(allows(grant, 'c1', key)).toBeDefined()
        }
      }),
    )
  })
})
