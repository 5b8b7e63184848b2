/**
 * Operating the server: rate limits per credential, Prometheus metrics, and `warden serve` as
 * a process that stops cleanly on SIGTERM (runs finished, audit log closed with a checkpoint).
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminKeyPath, startServer } from '../control-plane/index.js'
import type { RunningServer } from '../control-plane/index.js'
import { resolveHostConfig, verifyAuditFile } from '../runtime/index.js'
import { tieredGuest } from './support/tiered-guest.js'

let dataDir: string
let server: RunningServer
let adminKey: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-ops-'))
  const config = {
    ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir }),
    poolSize: 1,
    rateLimits: { keyRps: 5, tokenRps: 5 },
  }
  server = await startServer({ config, port: 0, host: '127.0.0.1' })
  adminKey = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
})

afterAll(async () => {
  await server?.close()
  await rm(dataDir, { recursive: true, force: true })
})

function get(path: string, auth?: string) {
  return fetch(`${server.url}${path}`, auth ? { headers: { authorization: `Bearer ${auth}` } } : {})
}

/** Upload an action granted `log` as the admin, and grant it a token. */
async function appWithToken(name: string, purpose: string) {
  const query = new URLSearchParams({ name, owner: 'ops', purpose })
  const app = await (
    await fetch(`${server.url}/v1/apps?${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/wasm' },
      body: Buffer.from(await tieredGuest(['log'], name)) as unknown as BodyInit,
    })
  ).json()
  const { token } = await (
    await fetch(`${server.url}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ app: app.id, grants: { log: true } }),
    })
  ).json()
  return { app, token: token as string }
}

describe('files', () => {
  it('keeps the audit log private, like every other file of the data dir', async () => {
    expect((await stat(join(dataDir, 'audit', 'audit.jsonl'))).mode & 0o777).toBe(0o600)
  })
})

describe('rate limits', () => {
  it('never lets a wrong key use up the real key’s budget (second outside attack)', async () => {
    await new Promise((r) => setTimeout(r, 1100))
    const id = adminKey.split('_')[1]
    const forged = `wdn_${id}_${'A'.repeat(43)}`
    await Promise.all(Array.from({ length: 30 }, () => get('/v1/keys', forged)))
    expect((await get('/v1/keys', adminKey)).status).toBe(200)
  })

  it('answers 429 rate_limited with Retry-After past a credential’s rate, per credential', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, () => get('/v1/keys', adminKey)))
    const limited = answers.filter((a) => a.status === 429)
    expect(limited.length).toBeGreaterThan(0)
    expect(Number(limited[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect((await limited[0]!.json()).error.code).toBe('rate_limited')
    // A forged token is limited too, before any signature is checked.
    const forged = await Promise.all(
      Array.from({ length: 12 }, () =>
        fetch(`${server.url}/v1/apps/x/invoke`, {
          method: 'POST',
          headers: {
            authorization: 'Bearer forged.token.value',
            'content-type': 'application/json',
          },
          body: '{"input":1}',
        }),
      ),
    )
    expect(forged.some((a) => a.status === 429)).toBe(true)
    await new Promise((r) => setTimeout(r, 1100))
    expect((await get('/healthz')).status).toBe(200)
  })
})

describe('metrics', () => {
  it('serves Prometheus text to admins and auditors only, with runs and requests counted', async () => {
    await new Promise((r) => setTimeout(r, 1100))
    const { app, token } = await appWithToken('metered', 'metrics')
    const run = await fetch(`${server.url}/v1/apps/${app.id}/invoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{"input":"hi"}',
    })
    expect(run.status).toBe(200)
    expect((await get('/metrics')).status).toBe(401)
    await new Promise((r) => setTimeout(r, 1100))
    const metrics = await get('/metrics', adminKey)
    expect(metrics.status).toBe(200)
    const text = await metrics.text()
    expect(text).toContain('warden_runs_total{outcome="ok",code=""} 1')
    expect(text).toMatch(
      /warden_http_requests_total\{route="\/v1\/apps\/:id\/invoke",method="POST",status="200"\} 1/,
    )
    expect(text).toContain('warden_pool_size 1')
    expect(text).not.toContain(app.id)
    expect(text).not.toContain(token)
  })
})

describe('rate limits of a token family (third outside attack)', () => {
  it('counts every descendant of a token against its root, so children bring no fresh budget', async () => {
    await new Promise((r) => setTimeout(r, 1100))
    const { app, token: parent } = await appWithToken('family', 'family budget')
    // Eight children, minted within the family's budget (5/s here).
    const children: string[] = []
    for (let i = 0; i < 8; i++) {
      if (i % 4 === 3) {
        await new Promise((r) => setTimeout(r, 1100))
      }
      const child = await fetch(`${server.url}/v1/tokens/attenuate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${parent}`, 'content-type': 'application/json' },
        body: '{}',
      })
      expect(child.status).toBe(201)
      children.push((await child.json()).token)
    }
    await new Promise((r) => setTimeout(r, 1100))
    // One request per child at once: each string is fresh, the family is not.
    const answers = await Promise.all(
      children.map((token) =>
        fetch(`${server.url}/v1/apps/${app.id}/invoke`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: '{"input":"hi"}',
        }),
      ),
    )
    const statuses = answers.map((a) => a.status)
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(3)
    const limited = answers.find((a) => a.status === 429)!
    expect((await limited.json()).error.code).toBe('rate_limited')
    await new Promise((r) => setTimeout(r, 1100))
  })
})

describe('forged tokens (fifth outside attack)', () => {
  it('counts distinct forged tokens against their sender, never a valid token’s budget', async () => {
    await new Promise((r) => setTimeout(r, 1100))
    const { app, token } = await appWithToken('forged', 'forgeries')
    await new Promise((r) => setTimeout(r, 1100))
    // The real token's header and claims, each with its own made-up signature.
    const [header, payload] = (token as string).split('.')
    const forge = () => `${header}.${payload}.${randomBytes(64).toString('base64url')}`
    const post = (path: string, bearer: string, body = '{"input":"hi"}') =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
        body,
      })
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => post(`/v1/apps/${app.id}/invoke`, forge())),
    )
    const statuses = answers.map((a) => a.status)
    // The client address's budget (5/s here), then 429, whatever the string.
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(5)
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(7)
    const limited = answers.find((a) => a.status === 429)!
    expect((await limited.json()).error.code).toBe('rate_limited')
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    // Every route that verifies a presented token counts its failures the same way.
    expect((await post('/v1/tokens/attenuate', forge(), '{}')).status).toBe(429)
    expect((await get('/v1/invocations/inv-none', forge())).status).toBe(429)
    // The valid token's family was never charged: it runs its whole budget in the same second.
    const valid = await Promise.all(
      Array.from({ length: 4 }, () => post(`/v1/apps/${app.id}/invoke`, token)),
    )
    expect(valid.map((a) => a.status)).toEqual([200, 200, 200, 200])
    await new Promise((r) => setTimeout(r, 1100))
    // Once the window passed, a forged token is refused as forged again (nothing is remembered).
    const again = await post(`/v1/apps/${app.id}/invoke`, forge())
    expect(again.status).toBe(401)
    expect((await again.json()).error.code).toBe('token_invalid')
    await new Promise((r) => setTimeout(r, 1100))
  })
})

describe('dot segments in the raw path (third outside attack)', () => {
  /** A GET with the target exactly as written: fetch() would resolve the dots first. */
  function rawGet(target: string): Promise<{ status: number; body: string }> {
    const { hostname, port } = new URL(server.url)
    return new Promise((resolve, reject) => {
      const req = request(
        { host: hostname, port, path: target, headers: { authorization: `Bearer ${adminKey}` } },
        (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            body += chunk
          })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
        },
      )
      req.on('error', reject)
      req.end()
    })
  }

  it('refuses a target that would leave an app mount through `%2e%2e`, before any route', async () => {
    await new Promise((r) => setTimeout(r, 1100))
    for (const target of [
      '/apps/reflect/%2e%2e/%2e%2e/v1/keys',
      '/apps/x/.%2E/.%2e/openapi.json',
      '/v1/apps/../keys',
    ]) {
      const answer = await rawGet(target)
      expect(answer.status, target).toBe(400)
      expect(JSON.parse(answer.body).error.code).toBe('invalid_request')
      expect(answer.body).not.toContain('"keys"')
    }
    expect((await rawGet('/v1/keys')).status).toBe(200)
  })
})

describe('warden serve as a process', () => {
  it('stops on SIGTERM with exit 0, after closing the audit log with a signed checkpoint', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-serve-'))
    const main = fileURLToPath(new URL('../dist/sdk/cli/main.js', import.meta.url))
    const child = spawn(process.execPath, [main, 'serve', '--port', '0'], {
      env: { ...process.env, WARDEN_DATA_DIR: dir, WARDEN_POOL_SIZE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    try {
      let stdout = ''
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString()
          const match = /listening on (http:\/\/\S+)/.exec(stdout)
          if (match) {
            resolve(match[1]!)
          }
        })
        child.once('exit', (code) => reject(new Error(`exited early with ${code}`)))
      })
      expect((await fetch(`${url}/healthz`)).status).toBe(200)
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      const key = await readFile(join(dir, 'admin.key'), 'utf8')
      expect(stdout).not.toContain(key.trim())
      const { readAuditVerificationKey } = await import('../runtime/audit/index.js')
      const verified = await verifyAuditFile(join(dir, 'audit', 'audit.jsonl'), {
        checkpointKey: await readAuditVerificationKey(join(dir, 'audit-signing.key')),
      })
      expect(verified.ok).toBe(true)
      if (verified.ok) {
        expect(verified.unsigned).toBe(0)
      }
    } finally {
      child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })
})
