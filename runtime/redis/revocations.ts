/**
 * Token revocations shared by every host of a deployment: the Redis set `<prefix>revoked`, with
 * a bounded cache on each host that pub/sub keeps honest.
 *
 * - A revoked id is cached for good (a revocation is never undone).
 * - A "not revoked" answer is cached only while the change channel is up, and dropped when a
 *   revocation message names it; a whole reconnect drops every such answer (messages sent
 *   while this host was away are lost). A read that raced a revocation is not cached (a
 *   generation counter).
 * - When Redis is away, an id not known to be revoked is `store_unavailable`: fail closed.
 */
import { WardenError } from '../errors.js'
import type { WritableRevocationList } from '../tokens/revocations.js'
import { jtiSchema } from '../tokens/claims.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'
import { BoundedSet } from './bounded.js'

/** Options of {@link createRedisRevocationList}. */
export interface RedisRevocationOptions {
  /** Ids cached per kind (revoked, not revoked). Default 100,000 each. */
  maxCached?: number
}

/**
 * The shared revocation list.
 *
 * @example
 * const revocations = createRedisRevocationList(redis)
 * await revocations.revoke(jti) // every host refuses it from now on
 */
export function createRedisRevocationList(
  redis: RedisConnection,
  options: RedisRevocationOptions = {},
): WritableRevocationList & { close(): void } {
  const max = options.maxCached ?? 100_000
  const key = redis.key('revoked')
  const revoked = new BoundedSet(max)
  const live = new BoundedSet(max)
  let generation = 0
  const stopChange = redis.onChange('revocations', (data) => {
    if (typeof data === 'string') {
      generation++
      live.delete(data)
      revoked.add(data)
    }
  })
  const stopReconnect = redis.onReconnect(() => {
    generation++
    live.clear()
  })
  return {
    async isRevoked(jti) {
      if (revoked.has(jti)) {
        return true
      }
      if (live.has(jti) && redis.healthy()) {
        return false
      }
      const before = generation
      let member: number
      try {
        member = await redis.client.sismember(key, jti)
      } catch (error) {
        throw storeUnavailable('the revocation list cannot be read', error)
      }
      if (member === 1) {
        revoked.add(jti)
        return true
      }
      if (before === generation && redis.healthy()) {
        live.add(jti)
      }
      return false
    },
    async revoke(jti) {
      if (!jtiSchema.safeParse(jti).success) {
        throw new WardenError('invalid_request', 'not a token id')
      }
      // Revoked here at once, whatever Redis says: fail closed.
      revoked.add(jti)
      live.delete(jti)
      try {
        await redis.client
          .multi()
          .sadd(key, jti)
          .publish(redis.channel, JSON.stringify({ store: 'revocations', data: jti }))
          .exec()
          .then(throwOnFailure)
      } catch (error) {
        throw storeUnavailable('the revocation list cannot be written', error)
      }
    },
    close() {
      stopChange()
      stopReconnect()
    },
  }
}

/** `exec()` answers per-command errors in its result: throw the first. */
export function throwOnFailure(
  results: [error: Error | null, result: unknown][] | null,
): unknown[] {
  if (results === null) {
    throw new Error('the transaction was aborted')
  }
  for (const [error] of results) {
    if (error) {
      throw error
    }
  }
  return results.map(([, result]) => result)
}
