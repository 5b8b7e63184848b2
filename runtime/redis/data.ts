/**
 * The data store of a deployment: per collection a hash `<prefix>data:<collection>` (key →
 * JSON text), the schemas in `<prefix>data-schemas` and a version per collection in
 * `<prefix>data-versions`, bumped in the same transaction as every write. A host keeps the last
 * copy of each collection it read and uses it while the version is unchanged: one round trip
 * per read, the listing logic of the file store.
 */
import {
  assertCollection,
  assertKey,
  encodeDocument,
  isValidCollection,
  parseDataSchema,
  readsOver,
  sortKeys,
} from '../../host-capabilities/data/index.js'
import type { DataSchema, DataStore } from '../../host-capabilities/data/index.js'
import { WardenError } from '../errors.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'
import { throwOnFailure } from './revocations.js'

interface Copy {
  version: string
  schema: DataSchema | undefined
  docs: Map<string, string>
  keys: string[]
}

/** Collections a host keeps a copy of. */
const MAX_COPIES = 64

/**
 * The shared data store.
 *
 * @example
 * const data = createRedisDataStore(redis)
 * await data.put('crm', 'contacts/alice', { name: 'Alice' })
 */
export function createRedisDataStore(redis: RedisConnection): DataStore {
  const docsKey = (collection: string) => redis.key(`data:${collection}`)
  const schemas = redis.key('data-schemas')
  const versions = redis.key('data-versions')
  const copies = new Map<string, Copy>()
  const guard = async <T>(task: () => Promise<T>): Promise<T> => {
    try {
      return await task()
    } catch (error) {
      throw storeUnavailable('the data store cannot be reached', error)
    }
  }

  async function load(collection: string): Promise<Copy | undefined> {
    const version = await guard(() => redis.client.hget(versions, collection))
    if (version === null) {
      copies.delete(collection)
      return undefined
    }
    const cached = copies.get(collection)
    if (cached?.version === version) {
      return cached
    }
    const [all, schemaText, again] = await guard(async () =>
      throwOnFailure(
        await redis.client
          .multi()
          .hgetall(docsKey(collection))
          .hget(schemas, collection)
          .hget(versions, collection)
          .exec(),
      ),
    )
    let schema: DataSchema | undefined
    try {
      schema = schemaText === null ? undefined : parseDataSchema(JSON.parse(schemaText as string))
    } catch (error) {
      throw new WardenError('internal', `data collection ${collection} is corrupt`, {
        cause: error,
      })
    }
    const docs = new Map(Object.entries(all as Record<string, string>))
    const copy: Copy = { version: String(again), schema, docs, keys: sortKeys(docs.keys()) }
    copies.delete(collection)
    copies.set(collection, copy)
    if (copies.size > MAX_COPIES) {
      copies.delete(copies.keys().next().value as string)
    }
    return copy
  }

  const write = async (
    collection: string,
    build: (m: ReturnType<typeof redis.client.multi>) => void,
  ) =>
    guard(async () => {
      const multi = redis.client.multi()
      build(multi)
      multi.hincrby(versions, collection, 1)
      return throwOnFailure(await multi.exec())
    })

  return {
    ...readsOver(load),
    async put(collection, key, value) {
      assertCollection(collection)
      assertKey(key)
      const text = encodeDocument(value)
      await write(collection, (m) => m.hset(docsKey(collection), key, text))
    },
    async delete(collection, key) {
      assertCollection(collection)
      assertKey(key)
      const [removed] = await write(collection, (m) => m.hdel(docsKey(collection), key))
      return removed === 1
    },
    async setSchema(collection, schema) {
      assertCollection(collection)
      const parsed = parseDataSchema(schema)
      await write(collection, (m) => {
        if (parsed.piiFields.length > 0) {
          m.hset(schemas, collection, JSON.stringify(parsed))
        } else {
          m.hdel(schemas, collection)
        }
      })
    },
    async listCollections() {
      const names = await guard(() => redis.client.hkeys(versions))
      return sortKeys(names.filter(isValidCollection))
    },
  }
}
