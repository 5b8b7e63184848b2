/**
 * Attack 13: an auditor's unindexed audit queries in Redis mode are not bounded.
 *
 * The file log reads the whole file for a filtered `GET /v1/audit` at most two requests at a
 * time (`MAX_CONCURRENT_SCANS`, docs/control-plane.md "Limits and metrics"), so an auditor can
 * keep at most two scans going. In Redis mode (`runtime/redis/audit.ts`, `scan`) a query that no
 * index serves (`decision`, `since`, `until`, or none of `app`/`invocation`/`actor`) reads the
 * whole stream with `XRANGE … COUNT 1000` pages and parses every record on the main thread,
 * with no such bound: every concurrent request of an auditor (100 a second by the key budget) is
 * another full scan of the deployment's one stream, on this host's main thread and on the Redis
 * every host shares. A query that matches nothing (`since` in the future) returns nothing and
 * costs the whole stream.
 *
 * What this checks, deterministically: how many stream scans one auditor has in flight at once
 * (counted at ioredis's `xrange` on this test's key prefix), against the file log's bound of 2.
 * Timing figures (a benign `/healthz` and a token's run while the scans go on) are printed.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminKeyPath, startServer } from '../../control-plane/index.js'
import type { RunningServer } from '../../control-plane/index.js'
import { resolveHostConfig } from '../../runtime/index.js'
import { MAX_CONCURRENT_SCANS } from '../../runtime/audit/log.js'
import { call, dropPrefix, freshPrefix, masterKey, testRedis } from '../redis/support.js'

let redis: Redis
let prefix: string
let dataDir: string
let server: RunningServer
let admin: string
let auditor: string

const RECORDS = 30_000

beforeAll(async () => {
  redis = await testRedis()
  prefix = freshPrefix()
  dataDir = await mkdtemp(join(tmpdir(), 'warden-a13-redis-audit-'))
  const config = {
    ...resolveHostConfig({
      WARDEN_DATA_DIR: dataDir,
      WARDEN_REDIS_URL: 'redis://127.0.0.1:6379',
      WARDEN_REDIS_PREFIX: prefix,
      WARDEN_MASTER_KEY: masterKey(),
    }),
    poolSize: 1,
  }
  server = await startServer({ config, port: 0, host: '127.0.0.1', log: () => {} })
  admin = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
  const made = await call(server.url, 'POST', '/v1/keys', {
    auth: admin,
    json: { role: 'auditor', label: 'a13' },
  })
  expect(made.status).toBe(201)
  auditor = made.body.key as string
  // The stream a busy deployment has: records of runs (here appended directly, in batches).
  for (let done = 0; done < RECORDS; done += 1000) {
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        server.warden.audit.append({
          kind: 'host-call',
          invocationId: `inv-${done + i}`,
          appId: 'app-0000000000000001',
          actor: 'app:app-0000000000000001',
          capability: 'log',
          op: 'write',
          decision: 'allow',
          reason: 'filler '.repeat(20),
        }),
      ),
    )
  }
}, 300_000)

afterAll(async () => {
  await server?.close()
  if (redis) {
    await dropPrefix(redis, prefix)
    redis.disconnect()
  }
  await rm(dataDir, { recursive: true, force: true })
})

async function healthz(): Promise<number> {
  const t0 = performance.now()
  const r = await fetch(`${server.url}/healthz`)
  await r.text()
  return performance.now() - t0
}

describe('unindexed audit queries in Redis mode', () => {
  it('one auditor has at most as many stream scans in flight as the file log allows', async () => {
    const stream = `${prefix}audit`
    let inFlight = 0
    let maxInFlight = 0
    let reads = 0
    const proto = Redis.prototype as unknown as { xrange: (...a: unknown[]) => Promise<unknown> }
    const original = proto.xrange
    proto.xrange = function (this: Redis, ...args: unknown[]) {
      if (args[0] !== stream) {
        return original.apply(this, args)
      }
      reads++
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      return original.apply(this, args).finally(() => {
        inFlight--
      })
    }
    try {
      const quiet: number[] = []
      for (let i = 0; i < 5; i++) {
        quiet.push(await healthz())
      }
      const N = 40
      const t0 = performance.now()
      const scans = Array.from({ length: N }, () =>
        fetch(`${server.url}/v1/audit?since=2100-01-01T00:00:00Z&limit=1`, {
          headers: { authorization: `Bearer ${auditor}` },
        }).then(async (r) => ({ status: r.status, body: await r.text() })),
      )
      const busy: number[] = []
      for (let i = 0; i < 5; i++) {
        busy.push(await healthz())
      }
      const answers = await Promise.all(scans)
      const took = performance.now() - t0
      const statuses = [...new Set(answers.map((a) => a.status))]
      console.log(
        `${N} scans of ${RECORDS} records: ${took.toFixed(0)} ms, statuses ${statuses}, ` +
          `${reads} XRANGE pages, at most ${maxInFlight} in flight; /healthz quiet ` +
          `${quiet.map((t) => t.toFixed(1)).join(',')} ms, during ${busy.map((t) => t.toFixed(1)).join(',')} ms`,
      )
      expect(statuses).toEqual([200])
      expect(maxInFlight).toBeLessThanOrEqual(MAX_CONCURRENT_SCANS)
    } finally {
      proto.xrange = original
    }
  }, 300_000)
})
