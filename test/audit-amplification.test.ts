/**
 * Outside attack 5, finding 06: a js token granting only `log` made one audit record per host
 * call (999 `warden.log("x")` = 1,000 records, ~625 KB per request), in the file log and the
 * Redis stream alike, and past the file index's bound every token's lookup of an unknown
 * invocation was a full scan. Now a run's identical calls share a record that counts them
 * (`calls`, bytes summed), so a run writes a bounded number of records that still account for
 * every call and verify; and a token's lookup never scans.
 */
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lineReads } from '../runtime/audit/lines.js'
import { openRedisConnection } from '../runtime/redis/index.js'
import type { RedisConnection } from '../runtime/redis/index.js'
import { dropPrefix, freshPrefix, REDIS_URL, testRedis } from './redis/support.js'
import { startTestServer } from './support/server.js'
import type { TestServer } from './support/server.js'

interface Answer {
  status: number
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field
  body: any
}

interface HostCallRecord {
  kind: string
  capability: string | null
  op: string
  target: string | null
  decision: string
  reason: string | null
  bytesOut: number | null
  calls?: number
  meter: { hostCalls: number | null } | null
}

function client(host: TestServer) {
  return async (method: string, path: string, auth: string, json?: unknown): Promise<Answer> => {
    const response = await fetch(`${host.server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${auth}`,
        ...(json === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: json === undefined ? null : JSON.stringify(json),
    })
    const text = await response.text()
    return { status: response.status, body: JSON.parse(text) }
  }
}

/** The host-call records of `invocationId`, and its run record, as an admin reads them. */
async function recordsOf(api: ReturnType<typeof client>, adminKey: string, invocationId: string) {
  const answer = await api('GET', `/v1/audit?invocation=${invocationId}&limit=1000`, adminKey)
  expect(answer.status).toBe(200)
  const records = answer.body.records as HostCallRecord[]
  return {
    records,
    calls: records.filter((r) => r.kind === 'host-call'),
    run: records.find((r) => r.kind === 'run'),
  }
}

const total = (records: HostCallRecord[], pick: (r: HostCallRecord) => number) =>
  records.reduce((sum, r) => sum + pick(r), 0)

describe.each(['file', 'redis'] as const)('the audit records of a run (%s mode)', (mode) => {
  let host: TestServer
  let api: ReturnType<typeof client>
  let redis: Redis | undefined
  let connection: RedisConnection | undefined
  const prefix = freshPrefix()
  let token: string

  beforeAll(async () => {
    if (mode === 'redis') {
      redis = await testRedis()
      connection = await openRedisConnection({ url: REDIS_URL, prefix })
    }
    host = await startTestServer('warden-amp-', {
      agent: true,
      warden: connection ? { redis: connection } : {},
    })
    api = client(host)
    const minted = await api('POST', '/v1/tokens', host.adminKey, {
      app: 'js',
      grants: { log: true },
      ttlSeconds: 600,
    })
    expect(minted.status).toBe(201)
    token = minted.body.token
  }, 60_000)

  afterAll(async () => {
    await host?.close()
    await connection?.close()
    if (redis) {
      await dropPrefix(redis, prefix)
      redis.disconnect()
    }
  })

  const run = async (source: string) => {
    const answer = await api('POST', '/v1/runs', token, { source })
    expect(answer.status).toBe(200)
    return answer.body.invocationId as string
  }

  it('999 log writes are one record that counts every call and byte; the chain verifies', async () => {
    const id = await run('for (let i = 0; i < 999; i++) warden.log("x"); return 1')
    const { records, calls, run: end } = await recordsOf(api, host.adminKey, id)
    expect(records).toHaveLength(2)
    expect(calls).toEqual([
      expect.objectContaining({
        capability: 'warden:platform/log',
        op: 'write',
        target: 'info',
        decision: 'allow',
        reason: null,
        bytesOut: 999,
        calls: 999,
      }),
    ])
    expect(end?.meter?.hostCalls).toBe(999)
    // The run record has no `calls`: the field is on grouped host-call records only.
    expect(end).not.toHaveProperty('calls')
    const verified = await api('GET', '/v1/audit/verify', host.adminKey)
    expect(verified.body).toMatchObject({ ok: true })
    if (redis) {
      // Read by the test itself: the records are in this prefix's stream.
      const entries = await redis.xrange(`${prefix}audit`, '-', '+')
      const mine = entries.filter(([, fields]) => fields.join(' ').includes(id))
      expect(mine).toHaveLength(2)
    }
  })

  it('mixed levels and repeated denials stay bounded and counted', async () => {
    // 200 rounds of: a line at a rotating level, a line of another size, a fetch the token
    // does not grant (each denied), a data read it does not grant either.
    const id = await run(`
      const levels = ['debug', 'info', 'warn', 'error']
      for (let i = 0; i < 200; i++) {
        warden.log[levels[i % 4]]('ab')
        warden.log('abc')
        try { await warden.fetch('https://example.com/' + i) } catch {}
        try { await warden.data.get('c', 'k' + i) } catch {}
      }
      return 1`)
    const { calls, run: end } = await recordsOf(api, host.adminKey, id)
    expect(end?.meter?.hostCalls).toBe(800)
    expect(total(calls, (r) => r.calls ?? 1)).toBe(800)
    // One record for the allowed lines (every level named), one per denied interface.
    expect(calls.length).toBeLessThanOrEqual(3)
    const lines = calls.filter((r) => r.decision === 'allow')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ calls: 400, bytesOut: 200 * 2 + 200 * 3 })
    expect(lines[0]?.target).toBe('debug,info,warn,error')
    for (const denied of calls.filter((r) => r.decision === 'deny')) {
      expect(denied).toMatchObject({ calls: 200, reason: 'not granted' })
    }
    expect((await api('GET', '/v1/audit/verify', host.adminKey)).body).toMatchObject({ ok: true })
  })

  it('a single log write is one plain record, without `calls`', async () => {
    const id = await run('warden.log("hello"); return 1')
    const { calls } = await recordsOf(api, host.adminKey, id)
    expect(calls).toHaveLength(1)
    expect(calls[0]).not.toHaveProperty('calls')
    expect(calls[0]).toMatchObject({ bytesOut: 5, target: 'info' })
  })
})

describe('a token holder looking invocations up past the index bound', () => {
  let host: TestServer
  let api: ReturnType<typeof client>
  let token: string
  let otherToken: string

  beforeAll(async () => {
    // An index of 6 records: a few runs overflow it.
    host = await startTestServer('warden-amp-idx-', {
      agent: true,
      warden: { auditIndexLimit: 6 },
    })
    api = client(host)
    const mint = async () =>
      (await api('POST', '/v1/tokens', host.adminKey, { app: 'js', grants: { log: true } })).body
        .token as string
    token = await mint()
    otherToken = await mint()
  }, 60_000)

  afterAll(async () => {
    await host?.close()
  })

  it('never scans the log: the recent runs and the index answer, anything else is not_found', async () => {
    const ids: string[] = []
    for (let i = 0; i < 8; i++) {
      const answer = await api('POST', '/v1/runs', token, {
        source: `warden.log("${i}"); return 1`,
      })
      expect(answer.status).toBe(200)
      ids.push(answer.body.invocationId)
    }
    // Past the bound now (8 runs × 2 records > 6): an admin's lookup of an unknown id scans.
    const unknown = '00000000-0000-4000-8000-000000000000'
    let before = lineReads.count
    expect((await api('GET', `/v1/invocations/${unknown}`, host.adminKey)).status).toBe(404)
    expect(lineReads.count - before).toBe(1)

    before = lineReads.count
    const answers = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) =>
        api('GET', `/v1/invocations/${unknown.slice(0, -2)}${10 + i}`, token),
      ),
      api('GET', `/v1/invocations/${ids[0]}`, otherToken),
    ])
    for (const answer of answers) {
      expect(answer.status).toBe(404)
      expect(answer.body.error.code).toBe('not_found')
    }
    // Its own latest run: found, with its records, from the index of recent records.
    const latest = await api('GET', `/v1/invocations/${ids[7]}`, token)
    expect(latest.status).toBe(200)
    expect(latest.body.records.map((r: HostCallRecord) => r.kind)).toEqual(['host-call', 'run'])
    expect(lineReads.count - before).toBe(0)
  })
})
