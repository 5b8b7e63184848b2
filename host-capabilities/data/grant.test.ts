import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { WardenError } from '../../runtime/errors.js'
import {
  allows,
  allowsPrefix,
  compileDataGrant,
  DataGrantInvalid,
  isCompiledDataGrant,
} from './grant.js'
import type { DataGrantEntry } from './grant.js'
import { isValidKey, isValidPrefix } from './keys.js'

describe('compileDataGrant', () => {
  it('compiles entries with defaults, frozen', () => {
    const grant = compileDataGrant([{ collection: 'crm', prefix: 'contacts/' }])
    expect(grant).toEqual({
      entries: [{ collection: 'crm', prefix: 'contacts', pii: false, wholeCollection: false }],
    })
    expect(Object.isFrozen(grant.entries)).toBe(true)
    expect(Object.isFrozen(grant.entries[0])).toBe(true)
    expect(isCompiledDataGrant(grant)).toBe(true)
  })

  it('grants a whole collection only with the explicit flag', () => {
    expect(thrown(() => compileDataGrant([{ collection: 'crm', prefix: '' }]))).toMatchObject({
      code: 'invalid_request',
      field: 'grants.data[0].prefix',
    })
    const grant = compileDataGrant([{ collection: 'crm', prefix: '', wholeCollection: true }])
    expect(allows(grant, 'crm', 'anything/at/all')).toBeDefined()
    expect(allows(grant, 'other', 'anything')).toBeUndefined()
    expect(allowsPrefix(grant, 'crm', '')).toBeDefined()
  })

  it.each<[string, unknown, string]>([
    ['not a list', { collection: 'crm', prefix: 'a/' }, 'grants.data'],
    ['an entry that is not an object', [null], 'grants.data[0]'],
    ['a bad collection', [{ collection: 'CRM', prefix: 'a/' }], 'grants.data[0].collection'],
    ['a bad prefix', [{ collection: 'crm', prefix: '../a' }], 'grants.data[0].prefix'],
    ['a leading slash', [{ collection: 'crm', prefix: '/a' }], 'grants.data[0].prefix'],
    ['a prefix that is not a string', [{ collection: 'crm', prefix: 1 }], 'grants.data[0].prefix'],
    [
      'an empty prefix without wholeCollection',
      [{ collection: 'crm', prefix: '', pii: true }],
      'grants.data[0].prefix',
    ],
    [
      'wholeCollection with a prefix',
      [{ collection: 'crm', prefix: 'a/', wholeCollection: true }],
      'grants.data[0].wholeCollection',
    ],
    ['a non-boolean pii', [{ collection: 'crm', prefix: 'a/', pii: 'yes' }], 'grants.data[0].pii'],
    [
      'an unknown field',
      [{ collection: 'crm', prefix: 'a/', pathPrefix: 'b/' }],
      'grants.data[0].pathPrefix',
    ],
  ])('refuses %s as invalid_request naming the field', (_, entries, field) => {
    const error = thrown(() => compileDataGrant(entries as DataGrantEntry[]))
    expect(error).toBeInstanceOf(DataGrantInvalid)
    expect(error).toMatchObject({ code: 'invalid_request', field })
  })

  it('tells a compiled grant from anything else', () => {
    const good = compileDataGrant([{ collection: 'crm', prefix: 'a/b/' }])
    expect(isCompiledDataGrant(good)).toBe(true)
    const entry = { collection: 'crm', pii: false, wholeCollection: false }
    for (const prefix of ['a/b/', 'a/*', 'a//b', '']) {
      expect(isCompiledDataGrant({ entries: [{ ...entry, prefix }] })).toBe(false)
    }
  })
})

describe('allows', () => {
  const grant = compileDataGrant([
    { collection: 'crm', prefix: 'contacts/' },
    { collection: 'crm', prefix: 'contacts/vip/', pii: true },
    { collection: 'crm', prefix: 'deals/2024' },
  ])

  it('matches whole segments of the canonical key', () => {
    expect(allows(grant, 'crm', 'contacts/alice')?.prefix).toBe('contacts')
    expect(allows(grant, 'crm', 'contacts')?.prefix).toBe('contacts')
    expect(allows(grant, 'crm', 'deals/2024/q1')?.prefix).toBe('deals/2024')
    expect(allows(grant, 'crm', 'deals/2024-q1')).toBeUndefined()
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
    expect(allowsPrefix(grant, 'crm', 'contacts')).toBeDefined()
    expect(allowsPrefix(grant, 'crm', 'contacts/al')).toBeDefined()
    expect(allowsPrefix(grant, 'crm', 'contactsx')).toBeUndefined()
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
  it('allows a key iff it is valid and under a granted prefix of its collection', () => {
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
            entries.some((e) => e.collection === coll && underPrefix(key, e.prefix))
          const entry = allows(grant, coll, key)
          expect(entry !== undefined).toBe(expected)
          if (entry) {
            expect(entry.collection).toBe(coll)
            expect(underPrefix(key, entry.prefix)).toBe(true)
          }
        },
      ),
      { numRuns: 1000 },
    )
  })
})

describe('whole-segment prefixes (issue 7)', () => {
  const reports = compileDataGrant([{ collection: 'crm', prefix: 'tenants/acme/reports' }])

  it('covers the prefix and keys below it, never a sibling that shares its spelling', () => {
    expect(allows(reports, 'crm', 'tenants/acme/reports')).toBeDefined()
    expect(allows(reports, 'crm', 'tenants/acme/reports/q1')).toBeDefined()
    expect(allows(reports, 'crm', 'tenants/acme/reports/2024/q1')).toBeDefined()
    for (const key of [
      'tenants/acme/reports-archive/q1',
      'tenants/acme/reports-archive',
      'tenants/acme/reportsx',
      'tenants/acme/reports.bak',
      'tenants/acme/report',
      'tenants/acme',
    ]) {
      expect(allows(reports, 'crm', key)).toBeUndefined()
    }
  })

  it('reads a trailing slash as the same prefix, compiled without it', () => {
    const slash = compileDataGrant([{ collection: 'crm', prefix: 'tenants/acme/reports/' }])
    expect(slash).toEqual(reports)
    expect(allows(slash, 'crm', 'tenants/acme/reports')).toBeDefined()
    expect(allows(slash, 'crm', 'tenants/acme/reports-archive/q1')).toBeUndefined()
  })

  it('lists the prefix or a deeper whole-segment prefix, never a sibling', () => {
    for (const listing of [
      'tenants/acme/reports',
      'tenants/acme/reports/',
      'tenants/acme/reports/2024',
      'tenants/acme/reports/2024/',
    ]) {
      expect(allowsPrefix(reports, 'crm', listing)).toBeDefined()
    }
    for (const listing of [
      'tenants/acme/reports-archive',
      'tenants/acme/reports-',
      'tenants/acme/reportsx/',
      'tenants/acme/report',
      'tenants/acme/',
      '',
    ]) {
      expect(allowsPrefix(reports, 'crm', listing)).toBeUndefined()
    }
  })

  it.each<[string, unknown, string]>([
    ['a `*`', 'tenants/*/reports', 'grants.data[0].prefix'],
    ['a trailing `*`', 'tenants/acme/*', 'grants.data[0].prefix'],
    ['a `*` inside a segment', 'tenants/ac*me', 'grants.data[0].prefix'],
    ['an empty segment', 'tenants//reports', 'grants.data[0].prefix'],
    ['a leading slash', '/tenants', 'grants.data[0].prefix'],
    ['the root prefix', '/', 'grants.data[0].prefix'],
    ['two trailing slashes', 'tenants//', 'grants.data[0].prefix'],
    ['a `.` segment', 'tenants/./reports', 'grants.data[0].prefix'],
    ['a `..` segment', 'tenants/../reports', 'grants.data[0].prefix'],
    ['a trailing `..`', 'tenants/..', 'grants.data[0].prefix'],
    ['a lone `.`', '.', 'grants.data[0].prefix'],
    ['the empty prefix without wholeCollection', '', 'grants.data[0].prefix'],
  ])('refuses %s as invalid_request naming the field', (_, prefix, field) => {
    const error = thrown(() => compileDataGrant([{ collection: 'crm', prefix: prefix as string }]))
    expect(error).toBeInstanceOf(WardenError)
    expect(error).toMatchObject({ code: 'invalid_request', field })
  })

  it('names the entry that is refused', () => {
    const error = thrown(() =>
      compileDataGrant([
        { collection: 'crm', prefix: 'a' },
        { collection: 'crm', prefix: '', wholeCollection: false },
      ]),
    )
    expect(error).toMatchObject({ code: 'invalid_request', field: 'grants.data[1].prefix' })
  })
})

function thrown(f: () => unknown): unknown {
  try {
    f()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

// Segments that collide as strings: `a` is a string prefix of `a-b`, `a.b`, `ab` and `a/b`.
const collidingSegment = fc.string({
  unit: fc.constantFrom('a', 'b', '-', '.', 'é'),
  minLength: 1,
  maxLength: 3,
})
const segmentKey = fc
  .array(collidingSegment, { minLength: 1, maxLength: 4 })
  .map((s) => s.join('/'))
  .filter(isValidKey)

/** The rule, spelled out independently of the code under test. */
function underPrefix(key: string, prefix: string): boolean {
  const p = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix
  return key === p || key.startsWith(`${p}/`)
}

describe('whole-segment properties (issue 7)', () => {
  // Keys near the prefix: the prefix itself, plus a tail that may or may not start a segment.
  const grantAndKey = fc
    .tuple(segmentKey, fc.boolean())
    .map(([p, slash]) => (slash ? `${p}/` : p))
    .chain((prefix) =>
      fc.tuple(
        fc.constant(prefix),
        fc.oneof(
          segmentKey,
          fc
            .string({ unit: fc.constantFrom('a', '-', '.', '/'), maxLength: 4 })
            .map((tail) => `${prefix.endsWith('/') ? prefix.slice(0, -1) : prefix}${tail}`),
        ),
      ),
    )

  it('grants a key iff it equals the prefix or starts with prefix + "/"', () => {
    fc.assert(
      fc.property(grantAndKey, ([prefix, key]) => {
        const grant = compileDataGrant([{ collection: 'c1', prefix }])
        const expected = isValidKey(key) && underPrefix(key, prefix)
        expect(allows(grant, 'c1', key) !== undefined).toBe(expected)
      }),
      { numRuns: 2000 },
    )
  })

  it('lets a listing through iff its prefix is the grant or a deeper whole-segment prefix', () => {
    fc.assert(
      fc.property(grantAndKey, fc.boolean(), ([prefix, listing], slash) => {
        const asked = slash && listing !== '' ? `${listing}/` : listing
        const grant = compileDataGrant([{ collection: 'c1', prefix }])
        const expected =
          isValidPrefix(asked) && asked !== '' && underPrefix(asked.replace(/\/$/, ''), prefix)
        expect(allowsPrefix(grant, 'c1', asked) !== undefined).toBe(expected)
      }),
      { numRuns: 2000 },
    )
  })

  it('allows every key a granted listing can return', () => {
    fc.assert(
      fc.property(grantAndKey, segmentKey, ([prefix, listing], key) => {
        const grant = compileDataGrant([{ collection: 'c1', prefix }])
        if (allowsPrefix(grant, 'c1', listing) && underPrefix(key, listing)) {
          expect(allows(grant, 'c1', key)).toBeDefined()
        }
      }),
      { numRuns: 2000 },
    )
  })
})
