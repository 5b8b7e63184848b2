import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WardenError } from '../../runtime/errors.js'
import { createFileDataStore, MAX_DOCUMENT_BYTES } from './store.js'

let root: string
let dir: string

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'warden-data-'))
  dir = join(root, 'data')
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (error: unknown) => error,
  )
}

describe('createFileDataStore', () => {
  it('puts, gets, replaces and deletes documents', async () => {
    const store = createFileDataStore(dir)
    expect(await store.get('crm', 'contacts/alice')).toBeUndefined()
    await store.put('crm', 'contacts/alice', { name: 'Alice', tags: ['a'], n: 1.5, ok: true })
    expect(await store.get('crm', 'contacts/alice')).toEqual({
      name: 'Alice',
      tags: ['a'],
      n: 1.5,
      ok: true,
    })
    await store.put('crm', 'contacts/alice', 'replaced')
    expect(await store.get('crm', 'contacts/alice')).toBe('replaced')
    expect(await store.delete('crm', 'contacts/alice')).toBe(true)
    expect(await store.delete('crm', 'contacts/alice')).toBe(false)
    expect(await store.get('crm', 'contacts/alice')).toBeUndefined()
  })

  it('returns a fresh copy on every read', async () => {
    const store = createFileDataStore(dir)
    await store.put('crm', 'k', { nested: { v: 1 } })
    const first = (await store.get('crm', 'k')) as { nested: { v: number } }
    first.nested.v = 2
    expect(await store.get('crm', 'k')).toEqual({ nested: { v: 1 } })
  })

  it('keeps a key named __proto__ as a plain key', async () => {
    const store = createFileDataStore(dir)
    await store.put('crm', '__proto__', { polluted: true })
    await store.put('crm', 'x', JSON.parse('{"__proto__":{"polluted":true}}'))
    expect(await store.get('crm', '__proto__')).toEqual({ polluted: true })
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    const again = createFileDataStore(dir)
    expect(await again.get('crm', '__proto__')).toEqual({ polluted: true })
  })

  it('lists sorted keys under a prefix, after a key, up to a limit', async () => {
    const store = createFileDataStore(dir)
    for (const key of ['b/2', 'a/1', 'b/1', 'b/10', 'bb/1', 'c', 'b/3']) {
      await store.put('crm', key, key)
    }
    const keys = async (prefix: string, after: string | undefined, limit: number) =>
      (await store.list('crm', prefix, after, limit)).map((e) => e.key)
    expect(await keys('b/', undefined, 10)).toEqual(['b/1', 'b/10', 'b/2', 'b/3'])
    expect(await keys('b/', undefined, 2)).toEqual(['b/1', 'b/10'])
    expect(await keys('b/', 'b/10', 10)).toEqual(['b/2', 'b/3'])
    expect(await keys('b/', 'a', 10)).toEqual(['b/1', 'b/10', 'b/2', 'b/3'])
    expect(await keys('b/', 'z', 10)).toEqual([])
    expect(await keys('b', undefined, 10)).toEqual(['b/1', 'b/10', 'b/2', 'b/3'])
    expect(await keys('', undefined, 100)).toEqual([
      'a/1',
      'b/1',
      'b/10',
      'b/2',
      'b/3',
      'bb/1',
      'c',
    ])
    expect(await store.list('crm', 'b/', undefined, 1)).toEqual([{ key: 'b/1', value: 'b/1' }])
    expect(await store.list('nothing', '', undefined, 10)).toEqual([])
  })

  it('lists whole segments: the prefix and keys below it, never a sibling (issue 7)', async () => {
    const store = createFileDataStore(dir)
    const all = ['r', 'r-archive/1', 'r.bak', 'r/1', 'r/1-x', 'r/1/a', 'r/2', 'r0', 'ra/1']
    for (const key of all) {
      await store.put('crm', key, key)
    }
    const keys = async (prefix: string, after: string | undefined, limit: number) =>
      (await store.list('crm', prefix, after, limit)).map((e) => e.key)
    const under = ['r', 'r/1', 'r/1-x', 'r/1/a', 'r/2']
    expect(await keys('r', undefined, 100)).toEqual(under)
    expect(await keys('r/', undefined, 100)).toEqual(under)
    expect(await keys('r/1', undefined, 100)).toEqual(['r/1', 'r/1/a'])
    // Paging from each key in turn skips the siblings between `r` and `r/`.
    for (let i = 0; i < under.length; i++) {
      expect(await keys('r', under[i], 1)).toEqual(under.slice(i + 1, i + 2))
    }
    expect(await keys('r', 'r-archive/1', 100)).toEqual(under.slice(1))
    expect(await keys('r-archive', undefined, 100)).toEqual(['r-archive/1'])
  })

  it('stores and returns a schema', async () => {
    const store = createFileDataStore(dir)
    expect(await store.getSchema('crm')).toBeUndefined()
    await store.put('crm', 'k', 1)
    await store.setSchema('crm', { piiFields: ['email', 'address.street', 'email'] })
    expect(await store.getSchema('crm')).toEqual({ piiFields: ['email', 'address.street'] })
    expect(await store.get('crm', 'k')).toBe(1)
    await store.setSchema('crm', { piiFields: [] })
    expect(await store.getSchema('crm')).toBeUndefined()
  })

  it('sees writes made by another store on the same directory', async () => {
    const a = createFileDataStore(dir)
    const b = createFileDataStore(dir)
    await a.put('crm', 'k', 1)
    expect(await b.get('crm', 'k')).toBe(1)
    await a.put('crm', 'k', 2)
    expect(await b.get('crm', 'k')).toBe(2)
    await b.setSchema('crm', { piiFields: ['x'] })
    expect(await a.getSchema('crm')).toEqual({ piiFields: ['x'] })
  })

  it('serialises concurrent writes to one collection without losing any', async () => {
    const store = createFileDataStore(dir)
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.put('crm', `k/${i}`, i)))
    expect((await store.list('crm', 'k/', undefined, 100)).length).toBe(50)
  })

  it.runIf(process.platform !== 'win32')(
    'writes 0o600 files in a 0o700 directory, leaving no temporary file',
    async () => {
      const store = createFileDataStore(dir)
      await store.put('crm', 'k', 1)
      await store.put('hr', 'k', 1)
      expect((await stat(dir)).mode & 0o777).toBe(0o700)
      expect((await stat(join(dir, 'crm.json'))).mode & 0o777).toBe(0o600)
      expect((await readdir(dir)).sort()).toEqual(['crm.json', 'hr.json'])
      expect(await store.listCollections()).toEqual(['crm', 'hr'])
    },
  )

  it('fails closed on a corrupt collection file', async () => {
    const store = createFileDataStore(dir)
    await store.put('crm', 'k', 1)
    for (const text of [
      'not json',
      '{"v":2,"docs":[]}',
      '{"v":1,"schema":null,"docs":[["../x",1]]}',
    ]) {
      await writeFile(join(dir, 'crm.json'), text)
      const error = await rejection(store.get('crm', 'k'))
      expect(error).toBeInstanceOf(WardenError)
      expect((error as WardenError).code).toBe('internal')
    }
  })

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['a function', () => 1],
    ['a bigint', 1n],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a nested undefined', { a: [undefined] }],
    ['a document nested too deep', JSON.parse('['.repeat(100) + ']'.repeat(100))],
    ['a document over the size cap', 'x'.repeat(MAX_DOCUMENT_BYTES)],
  ])('refuses %s as a document with a TypeError', async (_, value) => {
    const store = createFileDataStore(dir)
    expect(await rejection(store.put('crm', 'k', value))).toBeInstanceOf(TypeError)
  })

  it('refuses bad names, keys, prefixes, limits and schemas with a TypeError', async () => {
    const store = createFileDataStore(dir)
    const calls: (() => Promise<unknown>)[] = [
      () => store.put('../crm', 'k', 1),
      () => store.put('crm', 'a//b', 1),
      () => store.get('crm', '/k'),
      () => store.delete('crm', 'a/../b'),
      () => store.list('crm', '/a', undefined, 1),
      () => store.list('crm', 'a/', undefined, 0),
      () => store.list('crm', 'a/', undefined, 1.5),
      () => store.setSchema('crm', { piiFields: ['a..b'] }),
      () => store.setSchema('crm', { piiFields: 'email' } as never),
    ]
    for (const call of calls) {
      expect(await rejection(call())).toBeInstanceOf(TypeError)
    }
  })
})
