/**
 * Redis mode for the control plane's small stores: the document of `json-file.ts` (a list of
 * items with ids, in memory, read synchronously by the routes) kept in a Redis hash
 * (`<prefix><name>`, id → item JSON) that every host mirrors.
 *
 * - `save()` writes the items that changed since they were last seen, and deletes those taken
 *   out of the list (the token index's expired entries), all or none, with one Lua script that
 *   first checks each write is still over what this host last saw (compare and set; a deletion
 *   is not compared), and announces each on the change channel (a deletion with an empty
 *   `json`). Another host's change in between is a `conflict`:
 *   nothing is written and the caller undoes its change (the registry and key store do).
 * - Announcements carry the item, so every host updates its copy as the message arrives; the
 *   control plane awaits `redis.sync()` before each request, so a request sees every change
 *   acknowledged before it began. A reconnect reloads the whole hash.
 * - `volatile` fields (a run's `lastRunAt`, shared apart by the registry) are never stored in
 *   the document, never compared.
 */
import type { z } from 'zod'
import { storeUnavailable, WardenError } from '../runtime/index.js'
import type { RedisConnection } from '../runtime/index.js'
import type { JsonFile } from './json-file.js'

/** What {@link openRedisDoc} needs to know about the document. */
export interface RedisDocShape<T, K extends keyof T> {
  /** The hash and the change channel's store name: `apps`, `api-keys`, `tokens`. */
  name: string
  /** The list field of the document. */
  field: K
  /** An item's id. */
  idOf: (item: ItemOf<T, K>) => string
  /** An item read from Redis; invalid ones are skipped (never trusted). */
  itemSchema: z.ZodType<ItemOf<T, K>>
  /** The document with an empty list. */
  empty: () => T
  /** Order of the list after a full load (creation order). */
  order: (a: ItemOf<T, K>, b: ItemOf<T, K>) => number
  /** Fields kept on this host only. */
  volatile?: readonly string[]
  /** Items to delete from Redis when a host loads the hash (expired token entries). */
  prune?: (item: ItemOf<T, K>) => boolean
  /** A value no two items may share (an app's name), enforced in Redis across hosts. */
  uniqueOf?: (item: ItemOf<T, K>) => string
}

type ItemOf<T, K extends keyof T> = T[K] extends readonly (infer I)[] ? I : never

/** A {@link JsonFile} on Redis, which also says when another host changed it. */
export interface RedisDoc<T> extends JsonFile<T> {
  /** Called after the copy changed because of another host (or a reload). */
  onChange(listener: () => void): void
}

// KEYS[1]: the hash, KEYS[2]: its unique values (value → id). ARGV[1]: channel, ARGV[2]: store
// name, then (id, expected or '', new or '' to delete, unique value or '') per item. A deletion
// is not compared: two hosts may prune the same item at once.
const COMPARE_AND_SET = `
for i = 3, #ARGV, 4 do
  if ARGV[i + 2] ~= '' then
    local now = redis.call('HGET', KEYS[1], ARGV[i]) or ''
    if now ~= ARGV[i + 1] then return 0 end
    if ARGV[i + 3] ~= '' then
      local owner = redis.call('HGET', KEYS[2], ARGV[i + 3])
      if owner and owner ~= ARGV[i] then return 0 end
    end
  end
end
for i = 3, #ARGV, 4 do
  if ARGV[i + 2] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
    if ARGV[i + 3] ~= '' and redis.call('HGET', KEYS[2], ARGV[i + 3]) == ARGV[i] then
      redis.call('HDEL', KEYS[2], ARGV[i + 3])
    end
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    if ARGV[i + 3] ~= '' then redis.call('HSET', KEYS[2], ARGV[i + 3], ARGV[i]) end
  end
  redis.call('PUBLISH', ARGV[1], cjson.encode({store = ARGV[2], data = {id = ARGV[i], json = ARGV[i + 2]}}))
end
return 1
`

/**
 * Open the Redis copy of a control-plane document.
 *
 * @example
 * const doc = await openRedisDoc(redis, { name: 'tokens', field: 'tokens', … })
 */
export async function openRedisDoc<T extends object, K extends keyof T>(
  redis: RedisConnection,
  shape: RedisDocShape<T, K>,
): Promise<RedisDoc<T>> {
  const hash = redis.key(shape.name)
  const data = shape.empty()
  const list = () => data[shape.field] as unknown as ItemOf<T, K>[]
  /** The stored JSON of each item as this host last saw it in Redis. */
  const seen = new Map<string, string>()
  const listeners = new Set<() => void>()
  const volatile = new Set(shape.volatile ?? [])
  const stored = (item: ItemOf<T, K>) =>
    JSON.stringify(item, (key, value) => (volatile.has(key) ? undefined : value))

  const parse = (json: string): ItemOf<T, K> | undefined => {
    try {
      const result = shape.itemSchema.safeParse(JSON.parse(json))
      return result.success ? result.data : undefined
    } catch {
      return undefined
    }
  }
  const changed = () => {
    for (const listener of listeners) {
      listener()
    }
  }
  const apply = (id: string, json: string) => {
    if (seen.get(id) === json) {
      return
    }
    if (json === '') {
      // Deleted by another host.
      seen.delete(id)
      const items = list()
      const at = items.findIndex((i) => shape.idOf(i) === id)
      if (at !== -1) {
        items.splice(at, 1)
      }
      changed()
      return
    }
    const item = parse(json)
    if (item === undefined || shape.idOf(item) !== id) {
      return
    }
    seen.set(id, json)
    const items = list()
    const at = items.findIndex((i) => shape.idOf(i) === id)
    if (at === -1) {
      items.push(item)
    } else {
      // Keep what is this host's own.
      const mine = items[at] as Record<string, unknown>
      for (const key of volatile) {
        if (mine[key] !== undefined) {
          ;(item as Record<string, unknown>)[key] = mine[key]
        }
      }
      items[at] = item
    }
    changed()
  }
  const loadAll = async () => {
    let all: Record<string, string>
    try {
      all = await redis.client.hgetall(hash)
    } catch (error) {
      throw storeUnavailable(`the ${shape.name} store cannot be read`, error)
    }
    const items: ItemOf<T, K>[] = []
    const pruned: string[] = []
    seen.clear()
    for (const [id, json] of Object.entries(all)) {
      const item = parse(json)
      if (item !== undefined && shape.prune?.(item)) {
        pruned.push(id)
      } else if (item !== undefined && shape.idOf(item) === id) {
        items.push(item)
        seen.set(id, json)
      }
    }
    if (pruned.length > 0) {
      // Best effort: another host's load prunes what this one could not.
      await redis.client.hdel(hash, ...pruned).catch(() => undefined)
    }
    items.sort(shape.order)
    list().splice(0, list().length, ...items)
    changed()
  }
  await loadAll()
  redis.onChange(shape.name, (message) => {
    const { id, json } = (message ?? {}) as { id?: unknown; json?: unknown }
    if (typeof id === 'string' && typeof json === 'string') {
      apply(id, json)
    }
  })
  redis.onReconnect(() => {
    void loadAll().catch(() => undefined)
  })

  // One save at a time: each writes what changed since the last one (the file store's rule).
  // With `changed`, only those items are serialised: finding what changed by serialising every
  // item made one attenuation cost the whole deployment's token index (thirteenth outside
  // attack: 10.7 M characters per attenuation with 20,000 tokens).
  let saving: Promise<void> = Promise.resolve()
  async function saveNow(changed?: ReadonlySet<string>): Promise<void> {
    const args: string[] = []
    const writes: [string, string][] = []
    const present = new Set<string>()
    for (const item of list()) {
      const id = shape.idOf(item)
      present.add(id)
      if (changed !== undefined && !changed.has(id) && seen.has(id)) {
        continue
      }
      const json = stored(item)
      if (seen.get(id) !== json) {
        args.push(id, seen.get(id) ?? '', json, shape.uniqueOf?.(item) ?? '')
        writes.push([id, json])
      }
    }
    for (const [id, json] of seen) {
      if (!present.has(id)) {
        // Taken out of the list: deleted, if still what this host last saw.
        const item = parse(json)
        args.push(id, json, '', (item && shape.uniqueOf?.(item)) ?? '')
        writes.push([id, ''])
      }
    }
    if (writes.length === 0) {
      return
    }
    let done: unknown
    try {
      done = await redis.client.eval(
        COMPARE_AND_SET,
        2,
        hash,
        `${hash}:unique`,
        redis.channel,
        shape.name,
        ...args,
      )
    } catch (error) {
      throw storeUnavailable(`the ${shape.name} store could not be written`, error)
    }
    if (done !== 1) {
      throw new WardenError(
        'conflict',
        'another host changed this at the same moment: read it again and retry',
      )
    }
    for (const [id, json] of writes) {
      if (json === '') {
        seen.delete(id)
      } else {
        seen.set(id, json)
      }
    }
  }

  return {
    data,
    save(changed) {
      const ids = changed === undefined ? undefined : new Set(changed)
      const run = () => saveNow(ids)
      const next = saving.then(run, run)
      saving = next.catch(() => undefined)
      return next
    },
    onChange(listener) {
      listeners.add(listener)
    },
  }
}
