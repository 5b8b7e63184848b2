/**
 * Redis lost and found (issue 12): a host whose Redis goes through a TCP proxy the test cuts.
 * Token checks fail closed with `store_unavailable`; audit records made meanwhile are spooled
 * durably and replayed in order when Redis is back, the chain still valid; the host recovers
 * by itself. Redis unreachable at start is a clear error and a non-zero exit.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminKeyPath, startServer } from '../../control-plane/index.js'
import type { RunningServer } from '../../control-plane/index.js'
import { resolveHostConfig } from '../../runtime/index.js'
import type { RedisAuditLog } from '../../runtime/redis/index.js'
import { infiniteLoop } from '../support/guests.js'
import { compileWat, guestFile } from '../support/wat.js'
import {
  call,
  dropPrefix,
  freshPrefix,
  masterKey,
  runCli,
  startProxy,
  testRedis,
} from './support.js'
import type { RedisProxy } from './support.js'

let redis: Redis
let prefix: string
let proxy: RedisProxy
let dataDir: string
let server: RunningServer
let admin: string

beforeAll(async () => {
  redis = await testRedis()
  prefix = freshPrefix()
  proxy = await startProxy()
  dataDir = await mkdtemp(join(tmpdir(), 'warden-redis-faults-'))
  const config = {
    ...resolveHostConfig({
      WARDEN_DATA_DIR: dataDir,
      WARDEN_REDIS_URL: proxy.url,
      WARDEN_REDIS_PREFIX: prefix,
      WARDEN_MASTER_KEY: masterKey(),
    }),
    poolSize: 1,
  }
  server = await startServer({ config, port: 0, host: '127.0.0.1' })
  admin = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
}, 60_000)

afterAll(async () => {
  proxy?.restore()
  await server?.close()
  await proxy?.close()
  if (redis) {
    await dropPrefix(redis, prefix)
    redis.disconnect()
  }
  await rm(dataDir, { recursive: true, force: true })
})

async function deploy(name: string, bytes: Uint8Array, grant: object) {
  const query = new URLSearchParams({ name, owner: 'ops', purpose: 'fault test' })
  const uploaded = await call(server.url, 'POST', `/v1/apps?${query}`, { auth: admin, wasm: bytes })
  const granted = await call(server.url, 'POST', '/v1/tokens', {
    auth: admin,
    json: { app: uploaded.body.id, ...grant },
  })
  expect(granted.status).toBe(201)
  return { id: uploaded.body.id as string, token: granted.body.token as string }
}

const invoke = (id: string, token: string) =>
  call(server.url, 'POST', `/v1/apps/${id}/invoke`, { auth: token, json: { input: 'hi' } })

async function until(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error('gave up waiting')
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('Redis lost while running', () => {
  it('fails closed, spools the audit records, replays them in order and recovers alone', async () => {
    const echo = await deploy('echo', await guestFile('echo'), { grants: { log: true } })
    const loop = await deploy('loop', await compileWat(infiniteLoop), {
      limits: { fuel: 1e12, timeoutMs: 1500 },
    })
    expect((await invoke(echo.id, echo.token)).status).toBe(200)
    const audit = server.warden.audit as RedisAuditLog
    const headBefore = audit.head.seq

    // A run in flight when Redis goes away: it still ends, and its records are kept.
    const inFlight = invoke(loop.id, loop.token)
    await new Promise((resolve) => setTimeout(resolve, 300))
    proxy.cut()
    const ended = await inFlight
    expect(ended.body.error?.code ?? ended.body.report?.outcome).toBe('timeout')

    // Fail closed: a valid token is refused, an API key too.
    const refused = await invoke(echo.id, echo.token)
    expect({ status: refused.status, code: refused.body.error?.code }).toEqual({
      status: 503,
      code: 'store_unavailable',
    })
    const adminRefused = await call(server.url, 'GET', '/v1/apps', { auth: admin })
    expect(adminRefused.status).toBe(503)
    // Acknowledged while Redis was away: in the spool, on disk.
    expect(audit.spooled()).toBeGreaterThan(0)
    const spool = await readFile(join(dataDir, 'audit', 'redis-spool.jsonl'), 'utf8')
    expect(spool).toContain('"reason":"timeout"')
    expect(spool).toContain('"reason":"store_unavailable"')
    expect(spool).not.toContain(echo.token)

    // Redis back: the host recovers by itself and replays the spool.
    proxy.restore()
    await until(async () => (await invoke(echo.id, echo.token)).status === 200)
    await until(async () => audit.spooled() === 0)
    expect((await readFile(join(dataDir, 'audit', 'redis-spool.jsonl'), 'utf8')).length).toBe(0)
    const verified = await call(server.url, 'GET', '/v1/audit/verify', { auth: admin })
    expect(verified.body.ok).toBe(true)
    const records = (
      await call(server.url, 'GET', `/v1/audit?cursor=${headBefore}&limit=1000`, { auth: admin })
    ).body.records as { reason: string | null; appId: string | null }[]
    const reasons = records.map((r) => r.reason)
    // In order: the run that timed out, then the refusal, then the run after recovery.
    const timeoutAt = reasons.indexOf('timeout')
    const refusalAt = reasons.indexOf('store_unavailable')
    expect(timeoutAt).toBeGreaterThanOrEqual(0)
    expect(refusalAt).toBeGreaterThan(timeoutAt)
    expect(reasons.lastIndexOf('ok')).toBeGreaterThan(refusalAt)
  }, 60_000)
})

describe('Redis unreachable at start', () => {
  it('refuses to start, with store_unavailable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-redis-nostart-'))
    try {
      const config = resolveHostConfig({
        WARDEN_DATA_DIR: dir,
        WARDEN_REDIS_URL: 'redis://127.0.0.1:1',
        WARDEN_MASTER_KEY: masterKey(),
      })
      await expect(startServer({ config, port: 0 })).rejects.toMatchObject({
        code: 'store_unavailable',
      })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('`warden serve` exits non-zero with a clear message', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-redis-nostart-'))
    try {
      const result = await runCli(['serve', '--port', '0'], {
        WARDEN_DATA_DIR: dir,
        WARDEN_REDIS_URL: 'redis://127.0.0.1:1',
        WARDEN_MASTER_KEY: masterKey(),
      })
      expect(result.code).not.toBe(0)
      expect(result.stderr).toContain('store_unavailable')
      expect(result.stderr).toContain('Redis at 127.0.0.1:1 is unreachable')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 30_000)
})
