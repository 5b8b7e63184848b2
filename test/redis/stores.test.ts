/**
 * The Redis stores one by one, each on its own key prefix, with two connections standing for
 * two hosts: revocations (shared, cached, fail closed), the audit stream (one chain under
 * concurrent writers; the spool survives a restart and is replayed once), quotas, secrets
 * (ciphertext only), data (the file store's listing rules), the key ring, the kill switch, the
 * control plane's documents (compare and set, unique names) and the master key check.
 */
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { openAppRegistry } from '../../control-plane/registry.js'
import { openRedisRouteStore } from '../../control-plane/route-store.js'
import { openTokenIndex } from '../../control-plane/token-index.js'
import { createFileDataStore } from '../../host-capabilities/data/index.js'
import { createMemoryQuotaStore } from '../../runtime/quotas.js'
import {
  BoundedSet,
  checkMasterKey,
  createRedisDataStore,
  createRedisKeyStore,
  createRedisKillSwitch,
  createRedisQuotaStore,
  createRedisRevocationList,
  createRedisSecretStore,
  openRedisAuditLog,
  openRedisConnection,
  verifyAuditStream,
} from '../../runtime/redis/index.js'
import { perTestPrefix, REDIS_URL, startProxy } from './support.js'

const t = perTestPrefix('stores')
const host = (url?: string) => t.host(url)

const jti = () => randomBytes(16).toString('base64url')

async function until(check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error('gave up waiting')
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('the connection', () => {
  it('refuses an unreachable Redis with store_unavailable, naming the host only', async () => {
    await expect(
      openRedisConnection({ url: 'redis://user:hunter2@127.0.0.1:1', connectTimeoutMs: 500 }),
    ).rejects.toMatchObject({
      code: 'store_unavailable',
      message: expect.not.stringContaining('hunter2'),
    })
  })

  it('refuses a URL that is not redis and a prefix that is not printable', async () => {
    await expect(openRedisConnection({ url: 'http://127.0.0.1:6379' })).rejects.toThrow(TypeError)
    await expect(openRedisConnection({ url: REDIS_URL, prefix: 'a b' })).rejects.toThrow(TypeError)
  })
})

describe('revocations', () => {
  it('a revocation on one host is seen on the other, even after a cached "not revoked"', async () => {
    const a = createRedisRevocationList(await host())
    const b = createRedisRevocationList(await host())
    const id = jti()
    expect(await b.isRevoked(id)).toBe(false) // now cached on B
    await a.revoke(id)
    await until(() => b.isRevoked(id))
    expect(await b.isRevoked(id)).toBe(true)
  })

  it('fails closed when Redis is lost, cached answers included, and recovers', async () => {
    const proxy = await startProxy()
    try {
      const connection = await host(proxy.url)
      const b = createRedisRevocationList(connection)
      const id = jti()
      expect(await b.isRevoked(id)).toBe(false)
      proxy.cut()
      // From the moment the host sees the loss (a closed socket, or a failed barrier PING).
      await until(() => !connection.healthy())
      await expect(b.isRevoked(id)).rejects.toMatchObject({ code: 'store_unavailable' })
      await expect(b.revoke(jti())).rejects.toMatchObject({ code: 'store_unavailable' })
      proxy.restore()
      await until(() =>
        b.isRevoked(id).then(
          (r) => r === false,
          () => false,
        ),
      )
    } finally {
      await proxy.close()
    }
  })

  it('refuses an id that is not a token id', async () => {
    const a = createRedisRevocationList(await host())
    await expect(a.revoke('not a jti!')).rejects.toMatchObject({ code: 'invalid_request' })
  })

  it('keeps its caches bounded', () => {
    const set = new BoundedSet(3)
    for (const item of ['a', 'b', 'c', 'd', 'e']) {
      set.add(item)
    }
    expect(set.size).toBe(3)
    expect(set.has('a')).toBe(false)
    expect(set.has('e')).toBe(true)
  })
})

describe('the audit stream', () => {
  it('keeps one chain under concurrent writers on two hosts', async () => {
    const a = await openRedisAuditLog({ redis: await host(), spoolFile: join(t.dir, 'a.jsonl') })
    const b = await openRedisAuditLog({ redis: await host(), spoolFile: join(t.dir, 'b.jsonl') })
    const entry = (actor: string, i: number) => ({
      kind: 'admin' as const,
      actor,
      op: `op.${i}`,
      decision: 'allow' as const,
    })
    const records = await Promise.all(
      Array.from({ length: 150 }, (_, i) => [
        a.append(entry('a', i)),
        b.append(entry('b', i)),
      ]).flat(),
    )
    expect(new Set(records.map((r) => r.seq)).size).toBe(300)
    const result = await verifyAuditStream(await host())
    expect(result).toMatchObject({ ok: true, count: 300, lastSeq: 300 })
    // Each host's records keep its order.
    const mine = (await a.read({ actor: 'a', limit: 10_000 })).map((r) => r.op)
    expect(mine).toEqual(Array.from({ length: 150 }, (_, i) => `op.${i}`))
    await Promise.all([a.close(), b.close()])
  })

  it('spools while Redis is away, survives a restart and replays once', async () => {
    const proxy = await startProxy()
    const spoolFile = join(t.dir, 'spool.jsonl')
    try {
      const first = await openRedisAuditLog({ redis: await host(proxy.url), spoolFile })
      await first.append({ kind: 'admin', actor: 'x', op: 'before', decision: 'allow' })
      proxy.cut()
      for (let i = 0; i < 5; i++) {
        await first.append({ kind: 'admin', actor: 'x', op: `away.${i}`, decision: 'allow' })
      }
      expect(first.spooled()).toBe(5)
      await first.close() // a host stopped before Redis came back
      const spooled = await readFile(spoolFile, 'utf8')
      expect(spooled.trim().split('\n')).toHaveLength(5)

      const second = await openRedisAuditLog({ redis: await host(), spoolFile })
      await until(() => second.spooled() === 0)
      await second.append({ kind: 'admin', actor: 'x', op: 'after', decision: 'allow' })
      const ops = (await second.read({ actor: 'x' })).map((r) => r.op)
      expect(ops).toEqual(['before', 'away.0', 'away.1', 'away.2', 'away.3', 'away.4', 'after'])
      await second.close()

      // A replay a crash cut short (the spool not yet emptied): nothing is appended twice.
      await writeFile(spoolFile, spooled)
      const third = await openRedisAuditLog({ redis: await host(), spoolFile })
      await until(() => third.spooled() === 0)
      expect((await third.read({ actor: 'x' })).map((r) => r.op)).toEqual(ops)
      expect(await third.verify()).toMatchObject({ ok: true, count: 7 })
      await third.close()
    } finally {
      await proxy.close()
    }
  })

  it('redacts before it spools: no secret reaches the disk or the stream', async () => {
    const proxy = await startProxy()
    const spoolFile = join(t.dir, 'spool.jsonl')
    try {
      const redact = (text: string) => text.replaceAll('s3cret-value', '[redacted:k]')
      const log = await openRedisAuditLog({ redis: await host(proxy.url), spoolFile, redact })
      proxy.cut()
      await log.append({
        kind: 'admin',
        actor: 'x',
        op: 'op',
        target: 's3cret-value',
        decision: 'allow',
      })
      expect(await readFile(spoolFile, 'utf8')).not.toContain('s3cret-value')
      proxy.restore()
      await until(() => log.spooled() === 0)
      expect(JSON.stringify(await log.read())).not.toContain('s3cret-value')
      await log.close()
    } finally {
      await proxy.close()
    }
  })
})

describe('quotas', () => {
  it('count runs per minute across hosts and name the quota', async () => {
    const quotas = { appRunsPerMinute: 3 }
    const a = createRedisQuotaStore(await host(), quotas)
    const b = createRedisQuotaStore(await host(), quotas)
    const [seconds] = await t.redis.time()
    if (Number(seconds) % 60 > 55) {
      await new Promise((resolve) => setTimeout(resolve, 6000))
    }
    await a.admit('app-0000000000000001', jti())
    await b.admit('app-0000000000000001', jti())
    await a.admit('app-0000000000000001', jti())
    await expect(b.admit('app-0000000000000001', jti())).rejects.toMatchObject({
      code: 'limit_exceeded',
      message: expect.stringContaining('app-runs-per-minute'),
    })
    // Another app has its own count.
    await b.admit('app-0000000000000002', jti())
  })

  it('refuse a run once the fuel of the day is used, per token', async () => {
    const id = jti()
    const store = createRedisQuotaStore(await host(), { tokenFuelPerDay: 1000 })
    await store.admit('app-0000000000000001', id)
    await store.addFuel('app-0000000000000001', id, 1000)
    await expect(store.admit('app-0000000000000001', id)).rejects.toMatchObject({
      code: 'limit_exceeded',
      message: expect.stringContaining('token-fuel-per-day'),
    })
    await store.admit('app-0000000000000001', jti())
  })

  it('in memory: windows roll over with the clock', async () => {
    let now = 0
    const store = createMemoryQuotaStore({ tokenRunsPerMinute: 1, appFuelPerDay: 10 }, () => now)
    await store.admit('a', 't')
    await expect(store.admit('a', 't')).rejects.toMatchObject({ code: 'limit_exceeded' })
    now += 60_000
    await store.admit('a', 't')
    await store.addFuel('a', 't', 10)
    now += 60_000
    await expect(store.admit('a', 't')).rejects.toMatchObject({
      message: expect.stringContaining('app-fuel-per-day'),
    })
    now += 86_400_000
    await store.admit('a', 't')
  })
})

describe('secrets', () => {
  it('keep ciphertext only in Redis, read on another host, and announce changes', async () => {
    const key = randomBytes(32)
    const a = createRedisSecretStore(await host(), key)
    const b = createRedisSecretStore(await host(), key)
    let changes = 0
    b.onChange(() => {
      changes++
    })
    await a.put('api_token', 'plaintext-value-123')
    expect(await b.read('api_token')).toBe('plaintext-value-123')
    expect(JSON.stringify(await t.redis.hgetall(`${t.prefix}secrets`))).not.toContain('plaintext')
    await until(() => changes > 0)
    expect((await b.list()).map((s) => s.name)).toEqual(['api_token'])
    // Another master key reads nothing; tampering fails closed.
    const other = createRedisSecretStore(await host(), randomBytes(32))
    await expect(other.read('api_token')).rejects.toMatchObject({ code: 'internal' })
    expect(await a.delete('api_token')).toBe(true)
    expect(await b.read('api_token')).toBeUndefined()
  })
})

describe('data', () => {
  it('lists as the file store does', async () => {
    const shared = createRedisDataStore(await host())
    const files = createFileDataStore(join(t.dir, 'data'))
    const segment = fc.constantFrom('a', 'b', 'a-b', 'a.b', 'é', 'z')
    const key = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'))
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(key, { maxLength: 12 }),
        fc.constantFrom('', 'a', 'a/', 'a-b', 'b/a'),
        fc.option(key, { nil: undefined }),
        fc.integer({ min: 1, max: 5 }),
        async (keys, prefix, after, limit) => {
          const collection = `c${randomBytes(4).toString('hex')}`
          for (const k of keys) {
            await shared.put(collection, k, { k })
            await files.put(collection, k, { k })
          }
          expect(await shared.list(collection, prefix, after, limit)).toEqual(
            await files.list(collection, prefix, after, limit),
          )
        },
      ),
      { numRuns: 15 },
    )
  })

  it('sees another host’s writes and schema', async () => {
    const a = createRedisDataStore(await host())
    const b = createRedisDataStore(await host())
    await a.put('crm', 'contacts/ada', { email: 'ada@example.com' })
    expect(await b.get('crm', 'contacts/ada')).toEqual({ email: 'ada@example.com' })
    await a.setSchema('crm', { piiFields: ['email'] })
    expect(await b.getSchema('crm')).toEqual({ piiFields: ['email'] })
    await a.put('crm', 'contacts/bob', { email: 'b@example.com' })
    expect((await b.list('crm', 'contacts', undefined, 10)).map((e) => e.key)).toEqual([
      'contacts/ada',
      'contacts/bob',
    ])
    expect(await b.delete('crm', 'contacts/ada')).toBe(true)
    expect(await a.get('crm', 'contacts/ada')).toBeUndefined()
    expect(await a.listCollections()).toEqual(['crm'])
    await expect(a.put('Bad Name', 'k', 1)).rejects.toThrow(TypeError)
  })
})

describe('the key ring', () => {
  it('signs on one host, verifies on the other; a retirement reaches both', async () => {
    const master = randomBytes(32)
    const a = createRedisKeyStore(await host(), master)
    const b = createRedisKeyStore(await host(), master)
    const token = await a.sign({ sub: 'x' }, 'test+jwt')
    const kid = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid
    expect(await b.verificationKey(kid)).toBeDefined()
    expect(JSON.stringify(await t.redis.hgetall(`${t.prefix}signing-keys`))).not.toMatch(/"d"/)
    await b.retire(kid)
    await until(async () => (await a.verificationKey(kid)) === undefined)
    expect((await a.list()).find((k) => k.kid === kid)?.retired).toBeDefined()
  })
})

describe('the kill switch and the master key', () => {
  it('announces a disable to every host', async () => {
    const a = createRedisKillSwitch(await host())
    const b = createRedisKillSwitch(await host())
    const seen: [string, boolean][] = []
    b.onChange((appId, disabled) => seen.push([appId, disabled]))
    await a.set('app-0000000000000001', true)
    await until(() => seen.length === 1)
    expect(seen).toEqual([['app-0000000000000001', true]])
    expect(await b.list()).toEqual(['app-0000000000000001'])
  })

  it('refuses a host whose master key is not the deployment’s', async () => {
    const connection = await host()
    await checkMasterKey(connection, randomBytes(32).fill(1))
    await checkMasterKey(connection, randomBytes(32).fill(1))
    await expect(checkMasterKey(connection, randomBytes(32).fill(2))).rejects.toMatchObject({
      code: 'invalid_request',
    })
  })
})

describe('the control plane documents', () => {
  it('give an app name to one host only, and refuse a change that raced another', async () => {
    const a = await openAppRegistry(join(t.dir, 'a'), { redis: await host() })
    const b = await openAppRegistry(join(t.dir, 'b'), { redis: await host() })
    const registration = (actor: string) => ({
      name: 'same-name',
      owner: 'ops',
      purpose: 'test',
      actor,
      actorIsAdmin: true,
      digest: `sha256:${randomBytes(32).toString('hex')}`,
      sizeBytes: 10,
      kind: 'action' as const,
      imports: [],
      exports: ['run'],
      risk: { tier: 'medium' as const, reasons: [] },
    })
    const results = await Promise.allSettled([
      a.register(registration('key:a')),
      b.register(registration('key:b')),
    ])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({
      reason: { code: 'conflict' },
    })
    await until(() => a.list().length === 1 && b.list().length === 1)
    expect(a.get('same-name')?.id).toBe(b.get('same-name')?.id)
  })

  it('drop token entries expired for more than a day from Redis, and skip what does not parse', async () => {
    const now = Math.floor(Date.now() / 1000)
    const entry = (id: string, exp: number) =>
      JSON.stringify({
        jti: id,
        appId: 'a',
        digest: 'd',
        grants: {},
        limits: {},
        iat: exp - 60,
        exp,
        grantedBy: 'key:x',
      })
    await t.redis.hset(
      `${t.prefix}tokens`,
      'old',
      entry('old', now - 90_000),
      'live',
      entry('live', now + 600),
      'junk',
      '{"jti":"junk"',
    )
    const index = await openTokenIndex(t.dir, { redis: await host() })
    expect(index.list().map((t) => t.jti)).toEqual(['live'])
    expect((await t.redis.hkeys(`${t.prefix}tokens`)).sort()).toEqual(['junk', 'live'])
  })

  it('delete a family’s expired children past the bound from Redis, on every host (fifth outside attack)', async () => {
    const limits = { maxExpiredPerFamily: 2 }
    const a = await openTokenIndex(t.dir, { redis: await host(), limits })
    const b = await openTokenIndex(t.dir, { redis: await host(), limits })
    const now = Math.floor(Date.now() / 1000)
    const child = (id: string, exp: number) => ({
      jti: id,
      appId: 'a',
      digest: 'd',
      parent: 'root',
      root: 'root',
      grants: {},
      limits: {},
      iat: now - 60,
      exp,
      grantedBy: 'holder:root',
    })
    await a.add({ ...child('root', now + 600), parent: undefined })
    for (let i = 0; i < 5; i++) {
      await a.add(child(`gone-${i}`, now - 30 + i))
    }
    await until(() => b.get('gone-4') !== undefined)
    // Host B's write prunes what A wrote, and A's copy follows.
    await b.add(child('live', now + 600))
    const kept = ['gone-3', 'gone-4', 'live', 'root']
    expect((await t.redis.hkeys(`${t.prefix}tokens`)).sort()).toEqual(kept)
    await until(() => a.list().length === kept.length)
    expect(
      a
        .list()
        .map((e) => e.jti)
        .sort(),
    ).toEqual(kept)
    expect(
      b
        .list()
        .map((e) => e.jti)
        .sort(),
    ).toEqual(kept)
    // Both hosts pruning the same entries at once is no conflict.
    await Promise.all([a.add(child('x', now - 1)), b.add(child('y', now - 2))])
  })

  it('share micro-app route bindings, their tokens sealed', async () => {
    const master = randomBytes(32)
    const a = openRedisRouteStore(await host(), master)
    const b = openRedisRouteStore(await host(), master)
    const binding = {
      name: 'hello',
      appId: 'app-0000000000000001',
      token: 'eyJhbGciOiJFZERTQSJ9.route-token.sig',
      jti: jti(),
      exp: Math.floor(Date.now() / 1000) + 600,
      boundAt: new Date().toISOString(),
      boundBy: 'key:x',
    }
    await a.put(binding)
    expect(await b.get('hello')).toEqual(binding)
    expect(JSON.stringify(await t.redis.hgetall(`${t.prefix}routes`))).not.toContain('route-token')
    await expect(
      openRedisRouteStore(await host(), randomBytes(32)).get('hello'),
    ).rejects.toMatchObject({
      code: 'internal',
    })
    expect(await b.delete('hello')).toEqual(binding)
    expect(await a.get('hello')).toBeUndefined()
    expect(await a.delete('hello')).toBeUndefined()
  })
})
