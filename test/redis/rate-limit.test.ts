/**
 * Rate limits in Redis mode (issue 12): a budget spent on one host is spent on every host, for
 * API keys, token families and failed credentials; when Redis is lost the check fails closed
 * with `store_unavailable` and recovers by itself. Two `warden serve` processes on one Redis:
 * a key's budget spent on A is refused on B.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRateLimiter, RateLimited } from '../../control-plane/rate-limit.js'
import type { RateBucket, RateLimiter } from '../../control-plane/rate-limit.js'
import {
  adminKeyOf,
  call,
  dropPrefix,
  freshPrefix,
  masterKey,
  perTestPrefix,
  REDIS_URL,
  startHost,
  startProxy,
} from './support.js'
import type { Host } from './support.js'

const t = perTestPrefix('rate')
const host = (url?: string) => t.host(url)

/** Spend `bucket`'s budget on `spend` until refused, then ask `other`: refused too? */
async function spentEverywhere(
  spend: () => Promise<boolean>,
  other: () => Promise<boolean>,
): Promise<boolean> {
  // A 1 s window may roll over between the two; a few tries tell that from a per-host budget,
  // which never refuses `other` right after `spend` was refused.
  for (let attempt = 0; attempt < 4; attempt++) {
    let guard = 0
    while (await spend()) {
      if (++guard > 1000) {
        throw new Error('never refused')
      }
    }
    if (!(await other())) {
      return true
    }
    await new Promise((resolve) => setTimeout(resolve, 1100))
  }
  return false
}

const passes = (limiter: RateLimiter, bucket: RateBucket) => () =>
  limiter.check(bucket).then(
    () => true,
    (error: unknown) => {
      if (error instanceof RateLimited) {
        return false
      }
      throw error
    },
  )

describe('rate limits on Redis', () => {
  const limits = { keyRps: 5, tokenRps: 8 }

  it('share a key’s, a family’s and a failed client’s budget between hosts', async () => {
    const a = createRateLimiter(limits, await host())
    const b = createRateLimiter(limits, await host())
    for (const bucket of [
      { kind: 'key', id: 'k1' },
      { kind: 'family', root: 'jti-root' },
      { kind: 'client', address: '192.0.2.7' },
      { kind: 'token', token: 'not.a.token' },
    ] satisfies RateBucket[]) {
      expect(await spentEverywhere(passes(a, bucket), passes(b, bucket))).toBe(true)
    }
    // Another key's budget is its own.
    expect(await passes(b, { kind: 'key', id: 'k2' })()).toBe(true)
    // The counters are under the prefix; no token string is a key.
    const keys = await t.redis.keys(`${t.prefix}rl:*`)
    expect(keys.length).toBeGreaterThan(0)
    expect(keys.some((k) => k.includes('not.a.token'))).toBe(false)
  })

  it('answers rate_limited with a retry time', async () => {
    const a = createRateLimiter({ keyRps: 1, tokenRps: 1 }, await host())
    await a.check({ kind: 'key', id: 'once' }).catch(() => undefined)
    const refused = await a.check({ kind: 'key', id: 'once' }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(RateLimited)
    expect((refused as RateLimited).retryAfterSeconds).toBeGreaterThanOrEqual(1)
  })

  it('fails closed with store_unavailable when Redis is lost, and recovers', async () => {
    const proxy = await startProxy()
    try {
      const connection = await host(proxy.url)
      const limiter = createRateLimiter(limits, connection)
      await limiter.check({ kind: 'key', id: 'k1' })
      proxy.cut()
      for (const bucket of [
        { kind: 'key', id: 'k1' },
        { kind: 'family', root: 'r' },
        { kind: 'token', token: 't' },
      ] satisfies RateBucket[]) {
        await expect(limiter.check(bucket)).rejects.toMatchObject({
          code: 'store_unavailable',
          status: 503,
        })
      }
      proxy.restore()
      const deadline = Date.now() + 10_000
      while (
        !(await limiter.check({ kind: 'key', id: 'k3' }).then(
          () => true,
          () => false,
        ))
      ) {
        expect(Date.now()).toBeLessThan(deadline)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    } finally {
      await proxy.close()
    }
  })
})

describe('two hosts on one Redis', () => {
  let a: Host
  let b: Host
  let admin: string
  let hostPrefix: string

  beforeAll(async () => {
    hostPrefix = freshPrefix()
    const env = {
      WARDEN_REDIS_URL: REDIS_URL,
      WARDEN_REDIS_PREFIX: hostPrefix,
      WARDEN_MASTER_KEY: masterKey(),
      WARDEN_RATE_LIMIT_KEY_RPS: '5',
    }
    a = await startHost(env)
    admin = await adminKeyOf(a)
    b = await startHost(env)
  }, 120_000)

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await dropPrefix(t.redis, hostPrefix)
  })

  it('refuses on B a key’s budget spent on A', async () => {
    const ok = (host: Host) => async () => {
      const answer = await call(host.url, 'GET', '/v1/keys', { auth: admin })
      if (answer.status === 429) {
        expect(answer.body.error.code).toBe('rate_limited')
        return false
      }
      expect(answer.status).toBe(200)
      return true
    }
    expect(await spentEverywhere(ok(a), ok(b))).toBe(true)
  }, 30_000)

  it('counts distinct forged tokens against their sender, with no key per string (fifth outside attack)', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const forged = Array.from({ length: 20 }, (_, i) => `eyJhbGciOiJFZERTQSJ9.e30.forged${i}`)
    const answers = await Promise.all(
      forged.map((token, i) =>
        call(i % 2 ? a.url : b.url, 'POST', '/v1/apps/x/invoke', {
          auth: token,
          json: { input: 1 },
        }),
      ),
    )
    const statuses = answers.map((answer) => answer.status)
    // One address's budget (5/s here) across both hosts, then 429.
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(5)
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(15)
    const keys = await t.redis.keys(`${hostPrefix}rl:*`)
    expect(keys.filter((k) => k.startsWith(`${hostPrefix}rl:tok:`))).toEqual([])
    expect(keys.filter((k) => k.startsWith(`${hostPrefix}rl:bad:`)).length).toBe(1)
  }, 30_000)
})
