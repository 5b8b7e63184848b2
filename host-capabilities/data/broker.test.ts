import { createHmac, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createBroker } from '../../runtime/broker/broker.js'
import type { BrokerRunContext } from '../../runtime/broker/broker.js'
import { WardenError } from '../../runtime/errors.js'
import { fakeRunContext } from '../../test/support/context.js'
import { HostCallError } from '../types.js'
import type { RunContext } from '../types.js'
import { createDataCapability, DATA_INTERFACE, MAX_PAGE_BYTES, MAX_PAGE_ENTRIES } from './broker.js'
import type { DataPageRecord } from './broker.js'
import { compileDataGrant } from './grant.js'
import type { DataGrantEntry } from './grant.js'
import { isValidKey, keyHasPrefix } from './keys.js'
import { PII_MASK } from './pii.js'
import { createFileDataStore } from './store.js'
import type { DataEntry, DataReader, DataSchema } from './store.js'

/** An in-memory reader with the store's semantics, counting its reads. */
function memoryStore(
  collections: Record<string, Record<string, unknown>>,
  schemas: Record<string, DataSchema> = {},
): DataReader & { reads: number } {
  const store = {
    reads: 0,
    async get(collection: string, key: string) {
      store.reads++
      return structuredClone(collections[collection]?.[key])
    },
    async list(collection: string, prefix: string, after: string | undefined, limit: number) {
      store.reads++
      const docs = collections[collection] ?? {}
      return Object.keys(docs)
        .sort()
        .filter((k) => keyHasPrefix(k, prefix) && (after === undefined || k > after))
        .slice(0, limit)
        .map((key): DataEntry => ({ key, value: structuredClone(docs[key]) }))
    },
    async getSchema(collection: string) {
      return schemas[collection]
    },
  }
  return store
}

function context(entries?: DataGrantEntry[], appId = 'app-1'): BrokerRunContext {
  return fakeRunContext({
    invocationId: 'inv-1',
    appId,
    digest: 'sha256:00',
    granted: new Set([DATA_INTERFACE]),
    grants: entries ? { [DATA_INTERFACE]: compileDataGrant(entries) } : {},
  })
}

async function hostError(promise: unknown): Promise<HostCallError> {
  try {
    await promise
  } catch (error) {
    if (!(error instanceof HostCallError)) {
      throw error
    }
    return error
  }
  throw new Error('expected a HostCallError')
}

const cursorKey = new Uint8Array(randomBytes(32))

const contacts = {
  'contacts/alice': {
    name: 'Alice',
    email: 'alice@example.com',
    address: { street: '1 Main St', city: 'Springfield' },
    phones: [{ kind: 'home', number: '555-1234' }],
  },
  'contacts/bob': { name: 'Bob', email: 'bob@example.com' },
  'contacts/vip/carol': { name: 'Carol', email: 'carol@example.com' },
  'deals/1': { amount: 10 },
  secret: { root: true },
}
const schema = { piiFields: ['email', 'address.street', 'phones.number'] }

describe('data broker: get', () => {
  const grant: DataGrantEntry[] = [
    { collection: 'crm', prefix: 'contacts/' },
    { collection: 'crm', prefix: 'contacts/vip/', pii: true },
  ]

  it('returns the document as JSON text with PII masked, nested fields included', async () => {
    const cap = createDataCapability({
      store: memoryStore({ crm: contacts }, { crm: schema }),
      cursorKey,
    })
    const text = await cap.handle('get', ['crm', 'contacts/alice'], context(grant))
    expect(typeof text).toBe('string')
    expect(JSON.parse(text as string)).toEqual({
      name: 'Alice',
      email: PII_MASK,
      address: { street: PII_MASK, city: 'Springfield' },
      phones: [{ kind: 'home', number: PII_MASK }],
    })
  })

  it('shows PII under an entry with pii: true', async () => {
    const cap = createDataCapability({
      store: memoryStore({ crm: contacts }, { crm: schema }),
      cursorKey,
    })
    const text = await cap.handle('get', ['crm', 'contacts/vip/carol'], context(grant))
    expect(JSON.parse(text as string)).toEqual(contacts['contacts/vip/carol'])
    const all = context([{ collection: 'crm', prefix: 'contacts/', pii: true }])
    const alice = await cap.handle('get', ['crm', 'contacts/alice'], all)
    expect(JSON.parse(alice as string)).toEqual(contacts['contacts/alice'])
  })

  it('returns undefined for a granted key with no document', async () => {
    const cap = createDataCapability({ store: memoryStore({ crm: contacts }), cursorKey })
    expect(await cap.handle('get', ['crm', 'contacts/nobody'], context(grant))).toBeUndefined()
  })

  it('denies keys outside the grant alike, existing or not, without reading', async () => {
    const store = memoryStore({ crm: contacts })
    const cap = createDataCapability({ store, cursorKey })
    const exists = await hostError(cap.handle('get', ['crm', 'secret'], context(grant)))
    const absent = await hostError(cap.handle('get', ['crm', 'nothing'], context(grant)))
    const otherCollection = await hostError(
      cap.handle('get', ['hr', 'contacts/alice'], context(grant)),
    )
    const noGrant = await hostError(cap.handle('get', ['crm', 'contacts/alice'], context()))
    for (const error of [exists, absent, otherCollection, noGrant]) {
      expect(error.payload.tag).toBe('denied')
    }
    expect(exists.payload).toEqual(absent.payload)
    expect(store.reads).toBe(0)
  })

  it.each<[string, unknown[]]>([
    ['a dot-dot key', ['crm', 'contacts/../secret']],
    ['an empty segment', ['crm', 'contacts//alice']],
    ['a leading slash', ['crm', '/contacts/alice']],
    ['a control character', ['crm', 'contacts/al\u0000ice']],
    ['a non-NFC key', ['crm', 'contacts/cafe\u0301']],
    ['a key that is not a string', ['crm', 7]],
    ['a bad collection', ['CRM', 'contacts/alice']],
    ['too few arguments', ['crm']],
  ])('refuses %s as invalid', async (_, args) => {
    const store = memoryStore({ crm: contacts })
    const cap = createDataCapability({ store, cursorKey })
    expect((await hostError(cap.handle('get', args, context(grant)))).payload.tag).toBe('invalid')
    expect(store.reads).toBe(0)
  })

  it('is recorded by the broker as allow or deny', async () => {
    const onHostCall = createBroker([
      createDataCapability({ store: memoryStore({ crm: contacts }), cursorKey }),
    ])
    const ctx = context(grant)
    await onHostCall(ctx, {
      call: 1,
      capability: DATA_INTERFACE,
      fn: 'get',
      args: ['crm', 'contacts/bob'],
    })
    await onHostCall(ctx, {
      call: 2,
      capability: DATA_INTERFACE,
      fn: 'get',
      args: ['crm', 'secret'],
    })
    expect(ctx.decisions.map((d) => d.decision)).toEqual(['allow', 'deny'])
  })

  it('works over the file store', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-data-broker-'))
    try {
      const store = createFileDataStore(dir)
      await store.put('crm', 'contacts/alice', contacts['contacts/alice'])
      await store.setSchema('crm', schema)
      const cap = createDataCapability({ store, cursorKey })
      const text = await cap.handle('get', ['crm', 'contacts/alice'], context(grant))
      expect(JSON.parse(text as string).email).toBe(PII_MASK)
      const page = (await cap.handle(
        'listKeys',
        ['crm', 'contacts/', undefined, 10],
        context(grant),
      )) as DataPageRecord
      expect(page.entries.map((e) => e.key)).toEqual(['contacts/alice'])
      expect(JSON.parse(page.entries[0]?.value as string).email).toBe(PII_MASK)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

/** Every page of a listing, following cursors. */
async function listAll(
  cap: ReturnType<typeof createDataCapability>,
  ctx: RunContext,
  collection: string,
  prefix: string,
  limit: number,
): Promise<DataPageRecord[]> {
  const pages: DataPageRecord[] = []
  let cursor: string | undefined
  do {
    const page = (await cap.handle(
      'listKeys',
      [collection, prefix, cursor, limit],
      ctx,
    )) as DataPageRecord
    pages.push(page)
    cursor = page.nextCursor
  } while (cursor !== undefined && pages.length < 1000)
  return pages
}

describe('data broker: listKeys', () => {
  const grant: DataGrantEntry[] = [
    { collection: 'crm', prefix: 'contacts/' },
    { collection: 'crm', prefix: 'contacts/vip/', pii: true },
  ]

  it('returns masked entries and no cursor on the last page', async () => {
    const cap = createDataCapability({
      store: memoryStore({ crm: contacts }, { crm: schema }),
      cursorKey,
    })
    const page = (await cap.handle(
      'listKeys',
      ['crm', 'contacts/', undefined, 10],
      context(grant),
    )) as DataPageRecord
    expect(page.entries.map((e) => e.key)).toEqual([
      'contacts/alice',
      'contacts/bob',
      'contacts/vip/carol',
    ])
    expect(page.nextCursor).toBeUndefined()
    const [alice, , carol] = page.entries.map((e) => JSON.parse(e.value) as { email: string })
    expect(alice?.email).toBe(PII_MASK)
    // Masking is decided per key: carol falls under the pii: true entry.
    expect(carol?.email).toBe('carol@example.com')
  })

  it('clamps the limit to 1..100', async () => {
    const docs = Object.fromEntries(
      Array.from({ length: 150 }, (_, i) => [`k/${String(i).padStart(3, '0')}`, i]),
    )
    const cap = createDataCapability({ store: memoryStore({ c: docs }), cursorKey })
    const ctx = context([{ collection: 'c', prefix: 'k/' }])
    const zero = (await cap.handle('listKeys', ['c', 'k/', undefined, 0], ctx)) as DataPageRecord
    expect(zero.entries.length).toBe(1)
    expect(zero.nextCursor).toBeDefined()
    const huge = (await cap.handle(
      'listKeys',
      ['c', 'k/', undefined, 0xffff_ffff],
      ctx,
    )) as DataPageRecord
    expect(huge.entries.length).toBe(MAX_PAGE_ENTRIES)
  })

  it('denies a prefix that is not within a granted prefix', async () => {
    const store = memoryStore({ crm: contacts })
    const cap = createDataCapability({ store, cursorKey })
    for (const prefix of ['', 'c', 'contactsx', 'contacts-old/', 'deals/', 'secret']) {
      const error = await hostError(
        cap.handle('listKeys', ['crm', prefix, undefined, 10], context(grant)),
      )
      expect(error.payload.tag).toBe('denied')
    }
    expect(store.reads).toBe(0)
  })

  it('lists a whole collection only under wholeCollection', async () => {
    const cap = createDataCapability({ store: memoryStore({ crm: contacts }), cursorKey })
    const ctx = context([{ collection: 'crm', prefix: '', wholeCollection: true }])
    const page = (await cap.handle('listKeys', ['crm', '', undefined, 100], ctx)) as DataPageRecord
    expect(page.entries.length).toBe(Object.keys(contacts).length)
  })

  it.each<[string, unknown[]]>([
    ['a bad prefix', ['crm', 'contacts/../', undefined, 10]],
    ['a prefix with a leading slash', ['crm', '/contacts/', undefined, 10]],
    ['a cursor that is not a string', ['crm', 'contacts/', 5, 10]],
    ['a negative limit', ['crm', 'contacts/', undefined, -1]],
    ['a fractional limit', ['crm', 'contacts/', undefined, 1.5]],
    ['a limit past u32', ['crm', 'contacts/', undefined, 2 ** 32]],
    ['too few arguments', ['crm', 'contacts/', undefined]],
  ])('refuses %s as invalid', async (_, args) => {
    const cap = createDataCapability({ store: memoryStore({ crm: contacts }), cursorKey })
    expect((await hostError(cap.handle('listKeys', args, context(grant)))).payload.tag).toBe(
      'invalid',
    )
  })

  it('stops a page early past MAX_PAGE_BYTES, and still lists everything', async () => {
    const big = 'x'.repeat(1024 * 1024)
    const count = Math.ceil(MAX_PAGE_BYTES / big.length) + 2
    const docs = Object.fromEntries(Array.from({ length: count }, (_, i) => [`k/${i}`, big]))
    const cap = createDataCapability({ store: memoryStore({ c: docs }), cursorKey })
    const pages = await listAll(cap, context([{ collection: 'c', prefix: 'k/' }]), 'c', 'k/', 100)
    expect(pages.length).toBeGreaterThan(1)
    expect((pages[0]?.entries.length ?? 0) * big.length).toBeLessThanOrEqual(
      MAX_PAGE_BYTES + big.length,
    )
    expect(pages.flatMap((p) => p.entries).length).toBe(count)
  })

  it('fails closed when a store returns a key outside the listing', async () => {
    const liar: DataReader = {
      get: async () => undefined,
      list: async () => [{ key: 'secret', value: { root: true } }],
      getSchema: async () => undefined,
    }
    const cap = createDataCapability({ store: liar, cursorKey })
    const error = await Promise.resolve(
      cap.handle('listKeys', ['crm', 'contacts/', undefined, 10], context(grant)),
    ).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(WardenError)
    expect((error as WardenError).code).toBe('internal')
  })
})

describe('data broker: cursors', () => {
  const docs = Object.fromEntries(
    [
      'contacts/a',
      'contacts/b',
      'contacts/c',
      'contacts/sub/a',
      'contacts/sub/b',
      'contactz',
      'secret/x',
    ].map((k) => [k, { k }]),
  )
  const grant: DataGrantEntry[] = [
    { collection: 'crm', prefix: 'contacts/' },
    { collection: 'hr', prefix: 'contacts/' },
  ]
  const store = memoryStore({ crm: docs, hr: docs })

  async function firstCursor(
    prefix = 'contacts/',
    collection = 'crm',
    appId = 'app-1',
  ): Promise<string> {
    const cap = createDataCapability({ store, cursorKey })
    const page = (await cap.handle(
      'listKeys',
      [collection, prefix, undefined, 1],
      context(grant, appId),
    )) as DataPageRecord
    expect(page.nextCursor).toBeDefined()
    return page.nextCursor as string
  }

  it('resumes after the last key', async () => {
    const cap = createDataCapability({ store, cursorKey })
    const cursor = await firstCursor()
    const page = (await cap.handle(
      'listKeys',
      ['crm', 'contacts/', cursor, 2],
      context(grant),
    )) as DataPageRecord
    expect(page.entries.map((e) => e.key)).toEqual(['contacts/b', 'contacts/c'])
  })

  it('refuses a cursor issued for another prefix, collection or app', async () => {
    const cap = createDataCapability({ store, cursorKey })
    const cases: [string, unknown[], string][] = [
      [await firstCursor('contacts/sub/'), ['crm', 'contacts/', undefined, 1], 'app-1'],
      [await firstCursor(), ['crm', 'contacts/sub/', undefined, 1], 'app-1'],
      [await firstCursor('contacts/', 'hr'), ['crm', 'contacts/', undefined, 1], 'app-1'],
      [await firstCursor(), ['crm', 'contacts/', undefined, 1], 'app-2'],
    ]
    for (const [cursor, args, appId] of cases) {
      const call = [args[0], args[1], cursor, args[3]]
      const error = await hostError(cap.handle('listKeys', call, context(grant, appId)))
      expect(error.payload.tag).toBe('invalid')
    }
  })

  it('refuses a cursor signed with another key', async () => {
    const other = createDataCapability({ store, cursorKey: new Uint8Array(randomBytes(32)) })
    const cursor = await firstCursor()
    const error = await hostError(
      other.handle('listKeys', ['crm', 'contacts/', cursor, 1], context(grant)),
    )
    expect(error.payload.tag).toBe('invalid')
  })

  it('refuses an authentic-looking cursor that would resume outside its prefix', async () => {
    // Simulates a leaked cursor key: the MAC is right, but `k` is outside the prefix.
    const payload = Buffer.from(
      JSON.stringify({ c: 'crm', p: 'contacts/', k: 'contactz' }),
    ).toString('base64url')
    const mac = createHmac('sha256', cursorKey)
      .update(JSON.stringify(['warden:data-cursor:v1', 'app-1', payload]))
      .digest('base64url')
    const cap = createDataCapability({ store, cursorKey })
    const error = await hostError(
      cap.handle('listKeys', ['crm', 'contacts/', `${payload}.${mac}`, 10], context(grant)),
    )
    expect(error.payload.tag).toBe('invalid')
  })

  it('never yields a key outside the prefix from a forged or edited cursor', async () => {
    const cap = createDataCapability({ store, cursorKey })
    const valid = await firstCursor()
    const alphabet = fc.constantFrom(
      ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.='.split(''),
    )
    const edited = fc.oneof(
      fc
        .tuple(fc.nat(valid.length - 1), alphabet)
        .map(([i, c]) => valid.slice(0, i) + c + valid.slice(i + 1)),
      fc.nat(valid.length - 1).map((i) => valid.slice(0, i)),
      fc.string({ unit: alphabet, maxLength: 4 }).map((s) => valid + s),
      fc.string({ unit: alphabet, maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 100 }),
      fc.constantFrom(...Object.keys(docs)).map((k) => {
        const [payload] = valid.split('.') as [string]
        const body = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<
          string,
          string
        >
        const forged = Buffer.from(JSON.stringify({ ...body, k })).toString('base64url')
        return `${forged}.${valid.split('.')[1] ?? ''}`
      }),
    )
    await fc.assert(
      fc.asyncProperty(edited, async (cursor) => {
        try {
          const page = (await cap.handle(
            'listKeys',
            ['crm', 'contacts/', cursor, 100],
            context(grant),
          )) as DataPageRecord
          // Only the untouched cursor may pass.
          expect(cursor).toBe(valid)
          for (const entry of page.entries) {
            expect(entry.key.startsWith('contacts/')).toBe(true)
          }
        } catch (error) {
          expect(error).toBeInstanceOf(HostCallError)
          expect((error as HostCallError).payload.tag).toBe('invalid')
        }
      }),
      { numRuns: 500 },
    )
  })
})

describe('data broker: whole-segment prefixes (issue 7)', () => {
  const docs = Object.fromEntries(
    [
      'tenants/acme/reports',
      'tenants/acme/reports-archive/q1',
      'tenants/acme/reports.bak',
      'tenants/acme/reports/q1',
      'tenants/acme/reports/q2',
      'tenants/acme/reportsx',
    ].map((k) => [k, { k }]),
  )
  const grant: DataGrantEntry[] = [{ collection: 'crm', prefix: 'tenants/acme/reports' }]
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warden-data-segments-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function fileCapability() {
    const store = createFileDataStore(dir)
    for (const [key, value] of Object.entries(docs)) {
      await store.put('crm', key, value)
    }
    return createDataCapability({ store, cursorKey })
  }

  it('gets the prefix key and keys below it, and denies a sibling', async () => {
    const cap = await fileCapability()
    for (const key of ['tenants/acme/reports', 'tenants/acme/reports/q1']) {
      const text = await cap.handle('get', ['crm', key], context(grant))
      expect(JSON.parse(text as string)).toEqual({ k: key })
    }
    for (const key of ['tenants/acme/reports-archive/q1', 'tenants/acme/reportsx']) {
      const error = await hostError(cap.handle('get', ['crm', key], context(grant)))
      expect(error.payload.tag).toBe('denied')
    }
  })

  it('lists only whole segments, page by page, with or without a trailing slash', async () => {
    const cap = await fileCapability()
    for (const prefix of ['tenants/acme/reports', 'tenants/acme/reports/']) {
      for (const limit of [1, 2, 100]) {
        const pages = await listAll(cap, context(grant), 'crm', prefix, limit)
        expect(pages.flatMap((p) => p.entries.map((e) => e.key))).toEqual([
          'tenants/acme/reports',
          'tenants/acme/reports/q1',
          'tenants/acme/reports/q2',
        ])
      }
    }
  })

  it('denies listing a sibling prefix', async () => {
    const cap = await fileCapability()
    const siblings = ['tenants/acme/reports-archive', 'tenants/acme/reports-', 'tenants/acme/']
    for (const prefix of siblings) {
      const error = await hostError(
        cap.handle('listKeys', ['crm', prefix, undefined, 10], context(grant)),
      )
      expect(error.payload.tag).toBe('denied')
    }
  })

  it('takes a cursor issued for `p/` on a listing of `p`: one listing, one spelling', async () => {
    const cap = await fileCapability()
    const first = (await cap.handle(
      'listKeys',
      ['crm', 'tenants/acme/reports/', undefined, 1],
      context(grant),
    )) as DataPageRecord
    const next = (await cap.handle(
      'listKeys',
      ['crm', 'tenants/acme/reports', first.nextCursor, 10],
      context(grant),
    )) as DataPageRecord
    expect(next.entries.map((e) => e.key)).toEqual([
      'tenants/acme/reports/q1',
      'tenants/acme/reports/q2',
    ])
  })

  it('fails closed when a store returns a sibling key for a listing', async () => {
    const naive: DataReader = {
      get: async () => undefined,
      list: async () => [{ key: 'tenants/acme/reports-archive/q1', value: {} }],
      getSchema: async () => undefined,
    }
    const cap = createDataCapability({ store: naive, cursorKey })
    const error = await Promise.resolve(
      cap.handle('listKeys', ['crm', 'tenants/acme/reports', undefined, 10], context(grant)),
    ).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(WardenError)
    expect((error as WardenError).code).toBe('internal')
  })
})

describe('data broker: paging property', () => {
  const segment = fc.string({
    unit: fc.constantFrom('a', 'b', 'c', 'é', '日', '🔑'),
    minLength: 1,
    maxLength: 3,
  })
  const key = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'))

  it('returns every key under the prefix exactly once across pages, and nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(key, { maxLength: 40 }),
        fc.constantFrom('a', 'a/', 'b/', 'a/b', 'é', '🔑/'),
        fc.integer({ min: 0, max: 7 }),
        async (keys, prefix, limit) => {
          const docs = Object.fromEntries(
            keys.filter(isValidKey).map((k) => [k, { k, email: `${k}@x` }]),
          )
          const cap = createDataCapability({
            store: memoryStore({ c: docs }, { c: { piiFields: ['email'] } }),
            cursorKey,
          })
          const pages = await listAll(
            cap,
            context([{ collection: 'c', prefix }]),
            'c',
            prefix,
            limit,
          )
          const seen = pages.flatMap((p) => p.entries.map((e) => e.key))
          // Whole segments: `a` lists `a` and `a/…`, never `ab` or `a-b`.
          const p = prefix.replace(/\/$/, '')
          const expected = Object.keys(docs)
            .filter((k) => k === p || k.startsWith(`${p}/`))
            .sort()
          expect(seen).toEqual(expected)
          for (const page of pages) {
            expect(page.entries.length).toBeLessThanOrEqual(Math.max(limit, 1))
            for (const entry of page.entries) {
              expect(JSON.parse(entry.value)).toEqual({ k: entry.key, email: PII_MASK })
            }
          }
          expect(pages.at(-1)?.nextCursor).toBeUndefined()
        },
      ),
      { numRuns: 300 },
    )
  })
})
