/**
 * Attack 13: in Redis mode, one token holder makes the host re-serialise every tenant's token
 * index entry, per attenuation.
 *
 * The Redis token index (`control-plane/redis-doc.ts`) keeps a mirror of the `tokens` hash in
 * memory, and each `save()` finds what changed by serialising every item
 * (`JSON.stringify(item, replacer)`, a replacer call per key) and comparing it with the text it
 * last saw: the cost of one attenuation is again the size of the whole deployment's index, on
 * the main thread of the host that serves it (no file write this time). Same root cause as
 * `token-index-rewrite.test.ts`, other backend, and worse for everyone else: measured with
 * 20,000 other tokens in the hash, one attenuation made `JSON.stringify` produce 10.7 M
 * characters (~100 ms of main thread); a separate process with 8 connections (~10 attenuations
 * a second, 2 % of the family's 500/s budget) took another tenant's invoke of a tiny action from
 * 4–9 ms to 430–1,055 ms (×100).
 *
 * Fixed: a save of the Redis doc serialises only the items it is told changed
 * (`control-plane/redis-doc.ts`).
 *
 * What this checks, deterministically: the characters `JSON.stringify` produced while serving
 * one attenuation, against 1 MiB. The effect on a benign tenant while a separate process
 * attenuates is printed.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminKeyPath, startServer } from '../../control-plane/index.js'
import type { RunningServer } from '../../control-plane/index.js'
import { resolveHostConfig } from '../../runtime/index.js'
import { WardenClient } from '../../sdk/client/index.js'
import { attenuate, attenuationFlood } from '../support/attenuation-flood.js'
import { compileWat } from '../support/wat.js'
import { dropPrefix, freshPrefix, masterKey, testRedis } from '../redis/support.js'

const OTHER_TOKENS = 20_000

let dataDir: string
let redis: Redis
let prefix: string
let server: RunningServer
let admin: WardenClient

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-a13-tokens-'))
  // Other tenants' tokens, as a busy deployment's index holds them (granted by an admin).
  const now = Math.floor(Date.now() / 1000)
  const tokens = Array.from({ length: OTHER_TOKENS }, (_, i) => {
    const jti = randomUUID()
    return {
      jti,
      appId: `app-${(i % 50).toString(16).padStart(16, '0')}`,
      digest: `sha256:${'ab'.repeat(32)}`,
      root: jti,
      grants: {
        log: true,
        data: [{ collection: 'crm', prefix: `tenant-${i}/` }],
        http: [
          {
            scheme: 'https',
            host: 'api.example.com',
            port: 443,
            methods: ['GET'],
            pathPrefix: `/t/${i}/`,
          },
        ],
      },
      limits: { fuel: 1e9, memoryMb: 64, timeoutMs: 5000, hostCalls: 1000 },
      iat: now,
      exp: now + 30 * 86_400,
      grantedBy: 'key:0123456789abcdef',
    }
  })
  redis = await testRedis()
  prefix = freshPrefix()
  for (let i = 0; i < tokens.length; i += 1000) {
    await redis.hset(
      `${prefix}tokens`,
      ...tokens.slice(i, i + 1000).flatMap((t) => [t.jti, JSON.stringify(t)]),
    )
  }
  const config = {
    ...resolveHostConfig({
      WARDEN_DATA_DIR: dataDir,
      WARDEN_REDIS_URL: 'redis://127.0.0.1:6379',
      WARDEN_REDIS_PREFIX: prefix,
      WARDEN_MASTER_KEY: masterKey(),
    }),
    poolSize: 2,
  }
  server = await startServer({ config, port: 0, host: '127.0.0.1', log: () => {} })
  admin = new WardenClient({
    server: server.url,
    key: (await readFile(adminKeyPath(dataDir), 'utf8')).trim(),
  })
}, 120_000)

afterAll(async () => {
  await server?.close()
  if (redis) {
    await dropPrefix(redis, prefix)
    redis.disconnect()
  }
  await rm(dataDir, { recursive: true, force: true })
})

describe('the token index under attenuation', () => {
  it("one attenuation does not serialise every tenant's tokens", async () => {
    const wat = await readFile(new URL('../../examples/hello/hello.wat', import.meta.url), 'utf8')
    const { app } = await admin.upload(await compileWat(wat), {
      name: 'hello',
      owner: 'qa',
      purpose: 'a13',
    })
    const attacker = (
      await admin.grantToken({ app: app.id, grants: { log: true }, ttlSeconds: 600 })
    ).token
    const victim = (await admin.grantToken({ app: app.id, grants: { log: true }, ttlSeconds: 600 }))
      .token
    console.log(`tokens hash: ${await redis.hlen(`${prefix}tokens`)} entries`)

    let produced = 0
    const original = JSON.stringify
    JSON.stringify = ((...args: Parameters<typeof original>) => {
      const out = original(...args)
      produced += typeof out === 'string' ? out.length : 0
      return out
    }) as typeof original
    let status: number
    try {
      status = await attenuate(server.url, attacker)
    } finally {
      JSON.stringify = original
    }
    console.log(
      `one attenuation: ${status}, JSON.stringify produced ${(produced / 1e6).toFixed(2)} M characters`,
    )
    expect(status).toBe(201)

    console.log(await attenuationFlood(server.url, app.id, attacker, victim))
    expect(produced).toBeLessThan(1024 * 1024)
  }, 300_000)
})
