/**
 * The local-file data store: collections of JSON documents that apps read through scoped
 * grants. One file per collection (`<dir>/<collection>.json`, mode 0o600, in a 0o700
 * directory), rewritten atomically (temporary file + rename) on every admin write.
 *
 * Reads are served from an in-memory copy, reloaded whenever the file changes (inode, size or
 * mtime), so another process's writes are seen. Writes within one process are serialised per
 * collection; two processes writing the same collection at once may lose one update (last
 * rename wins): the admin API is the only writer in the embedded setup.
 *
 * Keys are ordered by JavaScript string comparison (UTF-16 code units); `list` pages in that
 * order.
 */
import type { FileHandle } from 'node:fs/promises'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { WardenError } from '../../core/errors.js'
import { isErrno, readdirOrEmpty, ensurePrivateDir, writeFileAtomic } from '../../core/fs-atomic.js'
import {
  assertCollection,
  assertKey,
  assertPrefix,
  canonicalPrefix,
  isValidCollection,
  isValidKey,
} from './keys.js'

/** Largest document, as serialised JSON: 1 MiB. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024

/** Deepest nesting of arrays and objects in a document. */
export const MAX_DOCUMENT_DEPTH = 64

/** Most PII paths in one schema. */
export const MAX_PII_FIELDS = 256

/** What the broker must know about a collection. */
export interface DataSchema {
  /**
   * Fields masked as `"[pii]"` unless the grant says `pii: true`: top-level names (`email`) or
   * dotted paths (`address.street`). A path crossing an array applies to each element.
   */
  piiFields: string[]
}

/** One document of a listing. */
export interface DataEntry {
  key: string
  /** The parsed JSON document; a fresh copy per call. */
  value: unknown
}

/** The reads the broker needs: any backend (files, Redis) implements these. */
export interface DataReader {
  /** The document at `key`, or undefined. */
  get(collection: string, key: string): Promise<unknown>
  /**
   * Up to `limit` documents under `prefix` that sort after `after` (all of them when `after` is
   * undefined), in key order. Under `prefix` means by whole segments, as `keyHasPrefix`: the
   * key equal to the canonical prefix (`reports` for `reports/`) and keys starting with it and
   * a `/`, never `reports-archive/…`; the empty prefix is every key. A backend that scans by
   * plain string prefix must filter: the broker fails closed on any other key.
   */
  list(
    collection: string,
    prefix: string,
    after: string | undefined,
    limit: number,
  ): Promise<DataEntry[]>
  /** The collection's schema, or undefined when it has none. */
  getSchema(collection: string): Promise<DataSchema | undefined>
}

/** A data store: the broker's reads and the admin's writes. */
export interface DataStore extends DataReader {
  /** Create or replace a document. Throws `TypeError` on a bad name, key or non-JSON value. */
  put(collection: string, key: string, value: unknown): Promise<void>
  /** Delete a document. Resolves to whether it existed. */
  delete(collection: string, key: string): Promise<boolean>
  /** Set (replace) the collection's schema. `{ piiFields: [] }` clears it. */
  setSchema(collection: string, schema: DataSchema): Promise<void>
  /** The names of the collections that have a file, sorted. */
  listCollections(): Promise<string[]>
}

/** A collection as held in memory: documents kept as JSON text, so every read is a copy. */
interface Collection {
  stamp: string
  schema: DataSchema | undefined
  docs: Map<string, string>
  /** The keys of `docs`, sorted. */
  keys: string[]
}

/** The file format. */
interface CollectionFile {
  v: 1
  schema: DataSchema | null
  docs: [string, unknown][]
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** First index in sorted `keys` whose key is greater than `bound` (or `>=`, when `inclusive`). */
function lowerBound(keys: readonly string[], bound: string, inclusive: boolean): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const k = keys[mid] as string
    if (k < bound || (!inclusive && k === bound)) {
      lo = mid + 1
    } else {
      hi = mid
    }
  }
  return lo
}

/**
 * Throw `TypeError` unless `value` is plain JSON: null, boolean, finite number, string, array
 * or plain object.
 */
function assertJson(value: unknown, depth = 0): void {
  if (depth > MAX_DOCUMENT_DEPTH) {
    throw new TypeError(`document is nested deeper than ${MAX_DOCUMENT_DEPTH}`)
  }
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    return
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      throw new TypeError('document holds a number JSON cannot represent')
    }
    return
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      assertJson(item, depth + 1)
    }
    return
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      throw new TypeError('document holds an object that is not plain JSON')
    }
    for (const item of Object.values(value)) {
      assertJson(item, depth + 1)
    }
    return
  }
  throw new TypeError(`document holds a ${typeof value}, which is not JSON`)
}

/**
 * @internal Up to `limit` documents of `c` under `prefix` after `after`, in key order (the
 * contract of {@link DataReader.list}); arguments already checked.
 */
export function listEntries(
  c: { docs: ReadonlyMap<string, string>; keys: readonly string[] },
  prefix: string,
  after: string | undefined,
  limit: number,
): DataEntry[] {
  const p = canonicalPrefix(prefix)
  const fromAfter = after === undefined ? 0 : lowerBound(c.keys, after, false)
  const out: DataEntry[] = []
  const push = (key: string) => {
    out.push({ key, value: JSON.parse(c.docs.get(key) as string) })
  }
  // `p` itself sorts first; siblings such as `p-x` and `p.x` sort between it and `p/`, so
  // the keys below it are a second contiguous range, starting at `p/`.
  if (p !== '' && c.docs.has(p) && (after === undefined || p > after)) {
    push(p)
  }
  const below = p === '' ? '' : `${p}/`
  const from = Math.max(lowerBound(c.keys, below, true), fromAfter)
  for (let i = from; i < c.keys.length && out.length < limit; i++) {
    const key = c.keys[i] as string
    // Keys with one prefix are contiguous in sorted order: the first miss ends the range.
    if (!key.startsWith(below)) {
      break
    }
    push(key)
  }
  return out
}

/** What a store's copy of a collection holds: documents as JSON text, and its keys sorted. */
export interface CollectionCopy {
  schema: DataSchema | undefined
  docs: ReadonlyMap<string, string>
  keys: readonly string[]
}

/**
 * @internal The reads of a {@link DataReader} over a store's copies of its collections: the
 * file store's and the Redis store's (each read is a fresh copy of the document).
 */
export function readsOver(
  load: (collection: string) => Promise<CollectionCopy | undefined>,
): DataReader {
  return {
    async get(collection, key) {
      assertCollection(collection)
      assertKey(key)
      const text = (await load(collection))?.docs.get(key)
      return text === undefined ? undefined : JSON.parse(text)
    },
    async list(collection, prefix, after, limit) {
      assertListArgs(collection, prefix, after, limit)
      const c = await load(collection)
      return c ? listEntries(c, prefix, after, limit) : []
    },
    async getSchema(collection) {
      assertCollection(collection)
      const schema = (await load(collection))?.schema
      return schema && { piiFields: [...schema.piiFields] }
    },
  }
}

/** @internal Check the arguments of {@link DataReader.list}. Throws `TypeError`. */
export function assertListArgs(
  collection: unknown,
  prefix: unknown,
  after: unknown,
  limit: unknown,
): void {
  assertCollection(collection)
  assertPrefix(prefix)
  if (after !== undefined && typeof after !== 'string') {
    throw new TypeError('after must be a string or undefined')
  }
  if (!Number.isSafeInteger(limit) || (limit as number) < 1) {
    throw new TypeError('limit must be a positive integer')
  }
}

/** @internal A document as stored: checked JSON text. Throws `TypeError`. */
export function encodeDocument(value: unknown): string {
  assertJson(value)
  const text = JSON.stringify(value)
  if (Buffer.byteLength(text, 'utf8') > MAX_DOCUMENT_BYTES) {
    throw new TypeError(`document is larger than ${MAX_DOCUMENT_BYTES} bytes`)
  }
  return text
}

/** @internal Sort data keys as every store does. */
export function sortKeys(keys: Iterable<string>): string[] {
  return [...keys].sort(compareKeys)
}

/** Check and copy a schema. Throws `TypeError`. */
export function parseDataSchema(schema: unknown): DataSchema {
  const fields = (schema as { piiFields?: unknown } | null)?.piiFields
  if (!Array.isArray(fields) || fields.length > MAX_PII_FIELDS) {
    throw new TypeError(`schema.piiFields must be a list of at most ${MAX_PII_FIELDS} paths`)
  }
  for (const field of fields as unknown[]) {
    if (typeof field !== 'string' || field.split('.').some((s) => s === '')) {
      throw new TypeError('schema.piiFields holds a path that is not `name` or `a.b.c`')
    }
  }
  return { piiFields: [...new Set(fields as string[])] }
}

/**
 * Create a data store over JSON files in `dir` (created with mode 0o700).
 *
 * @example
 * const data = createFileDataStore(join(dataDir, 'data'))
 * await data.put('crm', 'contacts/alice', { name: 'Alice', email: 'alice@example.com' })
 * await data.setSchema('crm', { piiFields: ['email'] })
 * await data.list('crm', 'contacts', undefined, 10) // [{ key: 'contacts/alice', value: {…} }]
 */
export function createFileDataStore(dir: string): DataStore {
  if (typeof dir !== 'string' || dir === '') {
    throw new TypeError('dir must be a non-empty path')
  }
  const cache = new Map<string, Collection>()
  const queues = new Map<string, Promise<unknown>>()
  let ready: Promise<void> | undefined
  const ensureDir = () =>
    (ready ??= ensurePrivateDir(dir).catch((error: unknown) => {
      ready = undefined
      throw error
    }))
  const pathOf = (collection: string) => join(dir, `${collection}.json`)

  function corrupt(collection: string, cause?: unknown): WardenError {
    return new WardenError('internal', `data collection ${collection} is corrupt`, { cause })
  }

  function parseFile(collection: string, text: string, stamp: string): Collection {
    let file: CollectionFile
    try {
      file = JSON.parse(text) as CollectionFile
    } catch (error) {
      throw corrupt(collection, error)
    }
    if (file?.v !== 1 || !Array.isArray(file.docs)) {
      throw corrupt(collection)
    }
    const docs = new Map<string, string>()
    for (const pair of file.docs) {
      if (!Array.isArray(pair) || pair.length !== 2 || !isValidKey(pair[0]) || docs.has(pair[0])) {
        throw corrupt(collection)
      }
      docs.set(pair[0], JSON.stringify(pair[1]))
    }
    let schema: DataSchema | undefined
    try {
      schema = file.schema === null ? undefined : parseDataSchema(file.schema)
    } catch (error) {
      throw corrupt(collection, error)
    }
    return { stamp, schema, docs, keys: [...docs.keys()].sort(compareKeys) }
  }

  /** The collection as it is on disk now, from the cache when the file is unchanged. */
  async function load(collection: string): Promise<Collection | undefined> {
    let handle: FileHandle
    try {
      handle = await open(pathOf(collection), 'r')
    } catch (error) {
      if (isErrno(error, 'ENOENT')) {
        cache.delete(collection)
        return undefined
      }
      throw error
    }
    try {
      // fstat and read through one descriptor: the stamp always matches the text.
      const st = await handle.stat({ bigint: true })
      const stamp = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
      const cached = cache.get(collection)
      if (cached?.stamp === stamp) {
        return cached
      }
      const loaded = parseFile(collection, await handle.readFile('utf8'), stamp)
      cache.set(collection, loaded)
      return loaded
    } finally {
      await handle.close()
    }
  }

  /** Run one read-modify-write of `collection` after the ones before it. */
  function serial<T>(collection: string, task: () => Promise<T>): Promise<T> {
    const previous = queues.get(collection) ?? Promise.resolve()
    const next = previous.then(task, task)
    const settled = next.catch(() => undefined)
    queues.set(collection, settled)
    void settled.then(() => {
      if (queues.get(collection) === settled) {
        queues.delete(collection)
      }
    })
    return next
  }

  async function save(
    collection: string,
    docs: Map<string, string>,
    schema: DataSchema | undefined,
  ): Promise<void> {
    await ensureDir()
    const keys = [...docs.keys()].sort(compareKeys)
    const body = keys.map((k) => `[${JSON.stringify(k)},${docs.get(k) as string}]`).join(',\n')
    const text = `{"v":1,"schema":${JSON.stringify(schema ?? null)},"docs":[\n${body}\n]}\n`
    await writeFileAtomic(pathOf(collection), text)
    cache.delete(collection)
  }

  return {
    ...readsOver(load),

    async put(collection, key, value) {
      assertCollection(collection)
      assertKey(key)
      const text = encodeDocument(value)
      return serial(collection, async () => {
        const c = await load(collection)
        const docs = new Map(c?.docs)
        docs.set(key, text)
        await save(collection, docs, c?.schema)
      })
    },

    async delete(collection, key) {
      assertCollection(collection)
      assertKey(key)
      return serial(collection, async () => {
        const c = await load(collection)
        if (!c?.docs.has(key)) {
          return false
        }
        const docs = new Map(c.docs)
        docs.delete(key)
        await save(collection, docs, c.schema)
        return true
      })
    },

    async setSchema(collection, schema) {
      assertCollection(collection)
      const parsed = parseDataSchema(schema)
      return serial(collection, async () => {
        const c = await load(collection)
        await save(collection, new Map(c?.docs), parsed.piiFields.length ? parsed : undefined)
      })
    },

    async listCollections() {
      const files = await readdirOrEmpty(dir)
      return files
        .filter((f) => f.endsWith('.json') && isValidCollection(f.slice(0, -5)))
        .map((f) => f.slice(0, -5))
        .sort(compareKeys)
    },
  }
}
