/**
 * Per-credential rate limits (`rate-limiter-flexible`, in memory: one server; Redis mode will
 * share them). An API key is limited by its id, a capability token by a hash of the presented
 * string (so floods of bad tokens are limited too, before any signature is checked) and, once
 * verified, by its family: the root of its attenuation chain. Without the family bucket a holder
 * could mint up to 1,000 descendants and get a fresh budget with each. Past the limit:
 * `429 rate_limited` with `Retry-After`.
 */
import { createHash } from 'node:crypto'
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible'
import { WardenError } from '../runtime/index.js'

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
  /** A capability token, by a hash of its (canonical) string. */
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
 * @example
 * const limiter = createRateLimiter({ keyRps: 100, tokenRps: 500 })
 * await limiter.check({ kind: 'key', id }) // throws RateLimited past the limit
 */
export function createRateLimiter(limits: RateLimits): RateLimiter {
  const keys = new RateLimiterMemory({ points: limits.keyRps, duration: 1, keyPrefix: 'key' })
  const tokens = new RateLimiterMemory({ points: limits.tokenRps, duration: 1, keyPrefix: 'tok' })
  const families = new RateLimiterMemory({ points: limits.tokenRps, duration: 1, keyPrefix: 'fam' })
  const clients = new RateLimiterMemory({ points: limits.keyRps, duration: 1, keyPrefix: 'bad' })
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
        throw rejection
      }
    },
  }
}
