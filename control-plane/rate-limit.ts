/**
 * Per-credential rate limits (`rate-limiter-flexible`): in memory on one server; in Redis mode
 * counted in Redis (`RateLimiterRedis`: one Lua script increments a counter and sets its window,
 * atomically, on Redis's clock), so a budget spent on one host is spent on all. When Redis is
 * lost the check fails closed with `store_unavailable`, as the other stores do. An API key is limited by its id once it authenticated, a capability token by its
 * family (the root of its attenuation chain) once it verified: without the family bucket a holder
 * could mint up to 1,000 descendants and get a fresh budget with each. A credential that fails
 * (wrong key, forged, expired or revoked token) is counted against its sender's address, so a
 * flood of distinct bad strings is limited as one; no bucket is made for a string before it
 * verified. Past the limit: `429 rate_limited` with `Retry-After`.
 */
import { createHash } from 'node:crypto'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import type { RateLimiterAbstract } from 'rate-limiter-flexible'
import { storeUnavailable, WardenError } from '../runtime/index.js'
import type { RedisConnection } from '../runtime/index.js'

/** Requests per second allowed to one API key and to one capability token. */
export interface RateLimits {
  keyRps: number
  tokenRps: number
}

/** Defaults: 100 requests/s per API key, 500 per capability token. */
export const DEFAULT_RATE_LIMITS: Readonly<RateLimits> = Object.freeze({
  keyRps: 100,
  tokenRps: 500,
})

/** What a request is counted against. */
export type RateBucket =
  /** A live API key, by id: counted only once the key authenticated. */
  | { kind: 'key'; id: string }
  /**
   * A capability token the server holds (a route's), by a hash of its string; never a token a
   * client presented, which is counted by its family once verified, else by its sender.
   */
  | { kind: 'token'; token: string }
  /**
   * A verified token's family: the root of its chain (`chain[0]`, or its own jti for a root).
   * Only ever charged after the signature checked, so nobody can spend another family's budget.
   */
  | { kind: 'family'; root: string }
  /** A client address whose credential did not authenticate. */
  | { kind: 'client'; address: string }

/** A rate-limit check; throws `rate_limited` (with `retryAfterSeconds`) past the limit. */
export interface RateLimiter {
  check(bucket: RateBucket): Promise<void>
}

/** The family bucket of verified claims: the root of the attenuation chain. */
export function familyOf(claims: { jti: string; chain: readonly string[] }): RateBucket {
  return { kind: 'family', root: claims.chain[0] ?? claims.jti }
}

/** `rate_limited`, and when to come back. */
export class RateLimited extends WardenError {
  readonly retryAfterSeconds: number
  constructor(retryAfterSeconds: number) {
    super('rate_limited', 'too many requests with this credential: slow down')
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/**
 * One limiter for API keys, capability tokens and failed credentials. A key is counted by its
 * id only after it authenticated, so whoever knows a key's id (ids are not secret) cannot use
 * up its budget; failed credentials are counted per client address instead.
 *
 * In Redis mode (`redis`), the counters are `<prefix>rl:<key|tok|fam|bad>:<id>`, shared by every
 * host of the deployment; give every host the same limits.
 *
 * @example
 * const limiter = createRateLimiter({ keyRps: 100, tokenRps: 500 })
 * await limiter.check({ kind: 'key', id }) // throws RateLimited past the limit
 */
export function createRateLimiter(limits: RateLimits, redis?: RedisConnection): RateLimiter {
  const limiter = (points: number, keyPrefix: string): RateLimiterAbstract =>
    redis
      ? new RateLimiterRedis({
          storeClient: redis.client,
          keyPrefix: redis.key(`rl:${keyPrefix}`),
          points,
          duration: 1,
          // Fail at once while Redis is away (the client queues nothing either).
          rejectIfRedisNotReady: true,
        })
      : new RateLimiterMemory({ points, duration: 1, keyPrefix })
  const keys = limiter(limits.keyRps, 'key')
  const tokens = limiter(limits.tokenRps, 'tok')
  const families = limiter(limits.tokenRps, 'fam')
  const clients = limiter(limits.keyRps, 'bad')
  return {
    async check(bucket) {
      try {
        if (bucket.kind === 'key') {
          await keys.consume(bucket.id)
        } else if (bucket.kind === 'client') {
          await clients.consume(bucket.address)
        } else if (bucket.kind === 'family') {
          await families.consume(bucket.root)
        } else {
          // Token strings are bearer credentials: never kept as map keys.
          const id = createHash('sha256').update(bucket.token).digest('base64url').slice(0, 22)
          await tokens.consume(id)
        }
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          throw new RateLimited(Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)))
        }
        if (redis) {
          // Fail closed: a budget that cannot be counted is not granted.
          throw storeUnavailable('the rate limits cannot be counted', rejection)
        }
        throw rejection
      }
    },
  }
}
