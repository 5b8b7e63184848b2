/**
 * Several hosts on one Redis (issue 12): three `warden serve` processes with the same
 * WARDEN_REDIS_URL, prefix and master key are one deployment. Upload on A, approve and grant on
 * B, invoke on C; a revocation on A is refused on B within 100 ms; disabling on B ends a run in
 * flight on C; quotas count runs on every host; the audit stream's one chain verifies after
 * concurrent runs on all hosts, through the API and `warden audit verify`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { infiniteLoop } from '../support/guests.js'
import { tieredGuest } from '../support/tiered-guest.js'
import { compileWat, guestFile } from '../support/wat.js'
import {
  adminKeyOf,
  call,
  dropPrefix,
  freshPrefix,
  masterKey,
  REDIS_URL,
  runCli,
  startHost,
  testRedis,
} from './support.js'
import type { Host } from './support.js'

const TOKEN_RUNS_PER_MINUTE = 5
let redis: Redis
let prefix: string
let env: Record<string, string>
let a: Host
let b: Host
let c: Host
let admin: string

beforeAll(async () => {
  redis = await testRedis()
  prefix = freshPrefix()
  env = {
    WARDEN_REDIS_URL: REDIS_URL,
    WARDEN_REDIS_PREFIX: prefix,
    WARDEN_MASTER_KEY: masterKey(),
    WARDEN_QUOTA_TOKEN_RUNS_PER_MINUTE: String(TOKEN_RUNS_PER_MINUTE),
  }
  a = await startHost(env)
  admin = await adminKeyOf(a)
  ;[b, c] = await Promise.all([startHost(env), startHost(env)])
}, 120_000)

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), c?.stop()])
  if (redis) {
    await dropPrefix(redis, prefix)
    redis.disconnect()
  }
})

/** Upload `bytes` as `name` on `host`; approve and grant on `other`: the app id and a token. */
async function deploy(host: Host, other: Host, name: string, bytes: Uint8Array, grant: object) {
  const query = new URLSearchParams({ name, owner: 'ops', purpose: 'multi-host test' })
  const uploaded = await call(host.url, 'POST', `/v1/apps?${query}`, { auth: admin, wasm: bytes })
  expect(uploaded.status).toBeLessThan(300)
  const { id, digest } = uploaded.body
  const approved = await call(other.url, 'POST', `/v1/apps/${id}/approve?digest=${digest}`, {
    auth: admin,
  })
  expect(approved.body.status).toBe('approved')
  const granted = await call(other.url, 'POST', '/v1/tokens', {
    auth: admin,
    json: { app: id, ...grant },
  })
  expect(granted.status).toBe(201)
  return { id: id as string, token: granted.body.token as string, jti: granted.body.jti as string }
}

const invoke = (host: Host, id: string, token: string, input: unknown = 'hi') =>
  call(host.url, 'POST', `/v1/apps/${id}/invoke`, { auth: token, json: { input } })

describe('three hosts on one Redis', () => {
  it('shares API keys: a key made on A works on B and C at once', async () => {
    const made = await call(a.url, 'POST', '/v1/keys', {
      auth: admin,
      json: { role: 'auditor', label: 'shared' },
    })
    expect(made.status).toBe(201)
    for (const host of [b, c]) {
      expect((await call(host.url, 'GET', '/v1/audit/head', { auth: made.body.key })).status).toBe(
        200,
      )
    }
    // Revoked on C: refused on A.
    await call(c.url, 'DELETE', `/v1/keys/${made.body.info?.id ?? made.body.id}`, { auth: admin })
    expect((await call(a.url, 'GET', '/v1/audit/head', { auth: made.body.key })).status).toBe(401)
  })

  it('uploads on A, approves and grants on B, invokes on C', async () => {
    const publisher = await call(a.url, 'POST', '/v1/keys', {
      auth: admin,
      json: { role: 'publisher', label: 'ci' },
    })
    const bytes = await tieredGuest(['secrets'], 'multi-host')
    const query = new URLSearchParams({ name: 'pending-one', owner: 'ops', purpose: 'test' })
    const uploaded = await call(a.url, 'POST', `/v1/apps?${query}`, {
      auth: publisher.body.key,
      wasm: bytes,
    })
    expect(uploaded.body.status).toBe('pending')
    const { id, digest } = uploaded.body
    // Pending everywhere: C refuses to run it.
    expect((await call(c.url, 'GET', `/v1/apps/${id}`, { auth: admin })).body.status).toBe(
      'pending',
    )
    const approved = await call(b.url, 'POST', `/v1/apps/${id}/approve?digest=${digest}`, {
      auth: admin,
    })
    expect(approved.body.status).toBe('approved')
    const granted = await call(b.url, 'POST', '/v1/tokens', { auth: admin, json: { app: id } })
    expect(granted.status).toBe(201)
    const run = await invoke(c, id, granted.body.token)
    expect(run.status).toBe(200)
    // The token is listed on every host.
    const listed = await call(a.url, 'GET', `/v1/tokens?app=${id}`, { auth: admin })
    expect(listed.body.tokens.map((t: { jti: string }) => t.jti)).toContain(granted.body.jti)
  })

  it('refuses on B, within 100 ms, a token revoked on A', async () => {
    const echo = await guestFile('echo')
    const app = await deploy(a, b, 'echo-revoke', echo, { grants: { log: true } })
    expect((await invoke(b, app.id, app.token)).status).toBe(200)
    const revoked = await call(a.url, 'DELETE', `/v1/tokens/${app.jti}`, { auth: admin })
    expect(revoked.status).toBe(200)
    const deadline = Date.now() + 100
    let answer = await invoke(b, app.id, app.token)
    while (answer.status === 200 && Date.now() < deadline) {
      answer = await invoke(b, app.id, app.token)
    }
    expect({ status: answer.status, code: answer.body.error?.code }).toEqual({
      status: 401,
      code: 'token_revoked',
    })
  })

  it('ends on C a run in flight when the app is disabled on B', async () => {
    const loop = await compileWat(infiniteLoop)
    const app = await deploy(a, b, 'loop-kill', loop, { limits: { fuel: 1e12, timeoutMs: 20_000 } })
    const running = invoke(c, app.id, app.token)
    // Let the run start on C.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const disabled = await call(b.url, 'POST', `/v1/apps/${app.id}/disable`, { auth: admin })
    expect(disabled.body.status).toBe('disabled')
    const answer = await running
    expect(answer.body.error?.code ?? answer.body.report?.error?.code ?? answer.body).toBe(
      'app_disabled',
    )
    // And no host runs it now.
    expect((await invoke(a, app.id, app.token)).body.error.code).toBe('app_disabled')
  }, 30_000)

  it('counts the token quota across hosts: limit_exceeded names it', async () => {
    // Not across a minute boundary (the window is Redis's clock minute).
    const [seconds] = await redis.time()
    if (Number(seconds) % 60 > 45) {
      await new Promise((resolve) => setTimeout(resolve, (61 - (Number(seconds) % 60)) * 1000))
    }
    const echo = await guestFile('echo')
    const app = await deploy(b, c, 'echo-quota', echo, { grants: { log: true } })
    const hosts = [a, b, c, a, b]
    for (const host of hosts.slice(0, TOKEN_RUNS_PER_MINUTE)) {
      expect((await invoke(host, app.id, app.token)).status).toBe(200)
    }
    const refused = await invoke(c, app.id, app.token)
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({
      status: 429,
      code: 'limit_exceeded',
    })
    expect(refused.body.error.message).toContain('token-runs-per-minute')
  }, 90_000)

  it('keeps one valid hash chain under concurrent runs on every host', async () => {
    const echo = await guestFile('echo')
    const apps = await Promise.all(
      ['x', 'y', 'z'].map((n) => deploy(a, b, `echo-chain-${n}`, echo, { grants: { log: true } })),
    )
    const before = (await call(a.url, 'GET', '/v1/audit/head', { auth: admin })).body.seq
    const answers = await Promise.all(
      [a, b, c].flatMap((host, i) =>
        Array.from({ length: 4 }, () => invoke(host, apps[i]!.id, apps[i]!.token)),
      ),
    )
    expect(answers.map((x) => x.status)).toEqual(Array(12).fill(200))
    const verified = await call(c.url, 'GET', '/v1/audit/verify', { auth: admin })
    expect(verified.body.ok).toBe(true)
    expect(verified.body.lastSeq).toBeGreaterThanOrEqual(before + 12)
    // Signed with the deployment's one key: a checkpoint was checked.
    expect(verified.body.lastCheckpoint).toMatchObject({ seq: expect.any(Number) })
    // One global head: the same answer on every host, and the one verify reached.
    const heads = await Promise.all(
      [a, b, c].map(
        async (host) => (await call(host.url, 'GET', '/v1/audit/head', { auth: admin })).body,
      ),
    )
    expect(heads[1]).toEqual(heads[0])
    expect(heads[2]).toEqual(heads[0])
    expect(heads[0]).toEqual({ seq: verified.body.lastSeq, hash: verified.body.lastHash })
    // The CLI checks the whole stream too, checkpoints with the key sealed by the master key.
    const cli = await runCli(['audit', 'verify'], env)
    expect(cli.stderr).toBe('')
    expect(cli.code).toBe(0)
    expect(cli.stdout).toMatch(/ok|verified/i)
    expect(cli.stdout).toMatch(/last signed checkpoint: seq \d+/)
    // Without the master key, the CLI says it cannot check the signatures.
    const { WARDEN_MASTER_KEY: _, ...withoutKey } = env
    const blind = await runCli(['audit', 'verify'], withoutKey)
    expect(blind.code).not.toBe(0)
    expect(blind.stderr).toMatch(/WARDEN_MASTER_KEY|--public-key/)
    // An auditor without the master key: the deployment's one public key, from any host.
    const keys = await Promise.all(
      [a, b, c].map(
        async (host) => (await call(host.url, 'GET', '/v1/audit/key', { auth: admin })).body,
      ),
    )
    expect(keys[1]).toEqual(keys[0])
    expect(keys[2]).toEqual(keys[0])
    const keyFile = join(await mkdtemp(join(tmpdir(), 'warden-audit-key-')), 'audit.pub.pem')
    await writeFile(keyFile, keys[0].publicKey)
    const audited = await runCli(['audit', 'verify', '--public-key', keyFile], withoutKey)
    expect(audited.stderr).toBe('')
    expect(audited.code).toBe(0)
    expect(audited.stdout).toMatch(/last signed checkpoint: seq \d+/)
    await rm(dirname(keyFile), { recursive: true, force: true })
    // A run's records are read from the index, on any host.
    const run = answers[0]!.body.report?.invocationId ?? answers[0]!.body.invocationId
    const records = await call(b.url, 'GET', `/v1/invocations/${run}`, { auth: admin })
    expect(records.status).toBe(200)
    expect(records.body.records.length).toBeGreaterThan(0)
    expect(
      records.body.records.every((r: { invocationId: string }) => r.invocationId === run),
    ).toBe(true)
  }, 60_000)

  it('shares when an app last ran: run on C, seen on A', async () => {
    const echo = await guestFile('echo')
    const app = await deploy(a, b, 'echo-last-run', echo, { grants: { log: true } })
    const before = Date.now()
    expect((await invoke(c, app.id, app.token)).status).toBe(200)
    const deadline = Date.now() + 2000
    let seen = await call(a.url, 'GET', `/v1/apps/${app.id}`, { auth: admin })
    while (seen.body.lastRunAt === undefined && Date.now() < deadline) {
      seen = await call(a.url, 'GET', `/v1/apps/${app.id}`, { auth: admin })
    }
    expect(Date.parse(seen.body.lastRunAt)).toBeGreaterThanOrEqual(before - 1000)
    const listed = await call(b.url, 'GET', '/v1/apps', { auth: admin })
    const mine = listed.body.apps.find((x: { id: string }) => x.id === app.id)
    expect(mine.lastRunAt).toBe(seen.body.lastRunAt)
  })
})
