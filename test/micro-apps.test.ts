/**
 * HTTP micro-apps through a real server (issue 10): binding a route (`POST /v1/apps/:id/route`)
 * and `ANY /apps/<name>/…` with the WAT example (`examples/hello-http`) and a JS probe
 * (`test/guests/js/http-probe.js`, componentize-js) whose path picks a behaviour, honest or
 * hostile. Raw requests go through `node:http`, which sends paths and headers as written.
 */
import { Agent, request as httpRequest } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { adminKeyPath, startServer } from '../control-plane/index.js'
import type { RunningServer } from '../control-plane/index.js'
import { MICRO_APP_CSP } from '../control-plane/micro-app-http.js'
import { resolveHostConfig } from '../runtime/index.js'
import { buildJsGuest, JS_MICRO_APP_WORLD } from './support/js-guest.js'
import { tieredGuest } from './support/tiered-guest.js'
import { compileWat } from './support/wat.js'

const TOKEN_RPS = 40
const MIB = 1024 * 1024

let dataDir: string
let server: RunningServer
let adminKey: string
let host: string
let port: number

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field
  json: any
}

/** One request, path and headers sent exactly as written. */
function raw(
  method: string,
  path: string,
  options: {
    headers?: Record<string, string | string[]>
    body?: Uint8Array | string
    agent?: Agent
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host, port, method, path, headers: options.headers ?? {}, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', reject)
        res.on('end', () => {
          const body = Buffer.concat(chunks)
          let json: unknown
          try {
            json = JSON.parse(body.toString('utf8'))
          } catch {}
          resolve({ status: res.statusCode!, headers: res.headers, body, json })
        })
      },
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

/** A JSON call of the admin API. */
function admin(method: string, path: string, json?: unknown, key = adminKey): Promise<Answer> {
  return raw(method, path, {
    headers: {
      authorization: `Bearer ${key}`,
      ...(json === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(json === undefined ? {} : { body: JSON.stringify(json) }),
  })
}

async function upload(bytes: Uint8Array, name: string): Promise<string> {
  const query = new URLSearchParams({ name, owner: 'it-team', purpose: `testing ${name}` })
  const answer = await raw('POST', `/v1/apps?${query}`, {
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/wasm' },
    body: bytes,
  })
  expect(answer.status).toBe(201)
  return answer.json.id
}

function expectError(answer: Answer, status: number, code: string) {
  expect({ status: answer.status, code: answer.json?.error?.code }).toEqual({ status, code })
  expect(typeof answer.json.error.message).toBe('string')
}

/** A micro-app that imports `http` (medium risk: pending until approved). */
async function pendingMicroApp(): Promise<Uint8Array> {
  const platform = await readFile(new URL('../wit/platform.wit', import.meta.url), 'utf8')
  const core = await parse(`(module
    (import "warden:platform/http@0.1.0" "fetch" (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "warden:platform/handler@0.1.0#handle")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32) (i32.const 64)))`)
  const embedded = await componentEmbed({
    binary: core,
    witSource: `${platform}\nworld pending-app { import http; export handler; }\n`,
    world: 'pending-app',
    stringEncoding: 'utf8',
  })
  return componentNew(embedded, [])
}

const helloWat = () =>
  readFile(new URL('../examples/hello-http/hello-http.wat', import.meta.url), 'utf8')

let helloId: string
let probeId: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-micro-'))
  const config = {
    ...resolveHostConfig({
      WARDEN_DATA_DIR: dataDir,
      WARDEN_RATE_LIMIT_TOKEN_RPS: String(TOKEN_RPS),
      // The 12 MB JS engine is transpiled on upload; a loaded shared machine needs longer.
      WARDEN_TRANSPILE_TIMEOUT_MS: '240000',
    }),
    poolSize: 2,
  }
  server = await startServer({ config, port: 0, host: '127.0.0.1' })
  const url = new URL(server.url)
  host = url.hostname
  port = Number(url.port)
  adminKey = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
  helloId = await upload(await compileWat(await helloWat()), 'hello-http')
  probeId = await upload(await buildJsGuest('http-probe', JS_MICRO_APP_WORLD), 'probe')
  expect((await admin('POST', `/v1/apps/${helloId}/route`, { grants: {} })).status).toBe(201)
  const probe = await admin('POST', '/v1/apps/probe/route', {
    grants: { log: true },
    limits: { fuel: 1e12, timeoutMs: 4000, memoryMb: 256 },
  })
  expect(probe.status).toBe(201)
}, 400_000)

afterAll(async () => {
  vi.useRealTimers()
  await server?.close()
  await rm(dataDir, { recursive: true, force: true })
})

describe('binding a route (admin)', () => {
  it('answers the binding without the token string, and keeps it in a 0600 file', async () => {
    const shown = await admin('GET', '/v1/apps/hello-http/route')
    expect(shown.status).toBe(200)
    expect(shown.json).toMatchObject({
      name: 'hello-http',
      path: '/apps/hello-http/',
      appId: helloId,
    })
    expect(shown.json.token).toBeUndefined()
    expect(JSON.stringify(shown.json)).not.toMatch(/eyJ/)
    expect((await stat(join(dataDir, 'routes.json'))).mode & 0o777).toBe(0o600)
  })

  it('binds with a token the admin holds, for this app and build only', async () => {
    const minted = await admin('POST', '/v1/tokens', { app: 'probe', grants: { log: true } })
    const other = await admin('POST', '/v1/apps/hello-http/route', { token: minted.json.token })
    expectError(other, 401, 'token_invalid')
    const forged = await admin('POST', '/v1/apps/probe/route', { token: 'eyJ.not.a-token' })
    expect(forged.json.error.code).toBe('token_invalid')
    const bound = await admin('POST', '/v1/apps/probe/route', { token: minted.json.token })
    expect(bound.status).toBe(201)
    expect(bound.json.jti).toBe(minted.json.jti)
    // Back to the route's own grant (a longer deadline) for the other tests.
    await admin('POST', '/v1/apps/probe/route', {
      grants: { log: true },
      limits: { fuel: 1e12, timeoutMs: 4000, memoryMb: 256 },
    })
  })

  it('refuses an action, a pending or disabled app, an unknown app and a malformed body', async () => {
    await upload(await tieredGuest([]), 'an-action')
    expectError(await admin('POST', '/v1/apps/an-action/route', {}), 400, 'invalid_request')
    await upload(await pendingMicroApp(), 'pending-app')
    expectError(await admin('POST', '/v1/apps/pending-app/route', {}), 403, 'app_not_approved')
    expectError(await admin('POST', '/v1/apps/nope/route', {}), 404, 'not_found')
    for (const body of [{ jti: 'x' }, { token: 't', grants: {} }, { grants: { nope: true } }]) {
      expectError(await admin('POST', '/v1/apps/hello-http/route', body), 400, 'invalid_request')
    }
    await admin('POST', '/v1/apps/pending-app/disable')
    expectError(await admin('POST', '/v1/apps/pending-app/route', {}), 403, 'app_disabled')
  })

  it('is for admins only', async () => {
    const key = (await admin('POST', '/v1/keys', { role: 'publisher', label: 'p' })).json.key
    expectError(await admin('POST', '/v1/apps/hello-http/route', {}, key), 403, 'forbidden')
    expectError(
      await admin('DELETE', '/v1/apps/hello-http/route', undefined, key),
      403,
      'forbidden',
    )
    expectError(await raw('POST', '/v1/apps/hello-http/route'), 401, 'unauthorized')
  })

  it('unbinds: the route answers not_found, and a second unbind is not_found', async () => {
    // The example again, under another name.
    await upload(await compileWat(`${await helloWat()} `), 'gone-soon')
    expect((await admin('POST', '/v1/apps/gone-soon/route', {})).status).toBe(201)
    expect((await raw('GET', '/apps/gone-soon/')).status).toBe(200)
    expect((await admin('DELETE', '/v1/apps/gone-soon/route')).status).toBe(200)
    expectError(await raw('GET', '/apps/gone-soon/'), 404, 'not_found')
    expectError(await admin('DELETE', '/v1/apps/gone-soon/route'), 404, 'not_found')
    expectError(await admin('GET', '/v1/apps/gone-soon/route'), 404, 'not_found')
  })

  it('is in the OpenAPI document, with the passthrough described generically', async () => {
    const doc = (await raw('GET', '/openapi.json')).json
    expect(Object.keys(doc.paths['/v1/apps/{id}/route']).sort()).toEqual(['delete', 'get', 'post'])
    expect(doc.paths['/apps/{name}/{path}']).toBeDefined()
  })
})

describe('ANY /apps/<name>/… (WAT example)', () => {
  it('round-trips a GET: status, headers, body, and the host headers', async () => {
    const answer = await raw('GET', '/apps/hello-http/greet/you?x=1')
    expect(answer.status).toBe(200)
    expect(answer.body.toString()).toBe('hello from Warden at /greet/you')
    expect(answer.headers['content-type']).toBe('text/plain; charset=utf-8')
    expect(answer.headers['x-method']).toBe('GET')
    expect(answer.headers['content-security-policy']).toBe(MICRO_APP_CSP)
    expect(answer.headers['x-content-type-options']).toBe('nosniff')
    expect(answer.headers['x-warden-invocation']).toMatch(/^[0-9a-f-]{36}$/)
    expect(Number(answer.headers['content-length'])).toBe(answer.body.byteLength)
  })

  it('round-trips a POST body, and moves the bare mount to its folder, where / is served', async () => {
    const posted = await raw('POST', '/apps/hello-http/echo', { body: 'ping ✓' })
    expect(posted.status).toBe(200)
    expect(posted.headers['x-method']).toBe('POST')
    expect(posted.body.toString()).toBe('ping ✓')
    // Without the slash a page's relative links would resolve outside the mount.
    const bare = await raw('GET', '/apps/hello-http?x=1')
    expect(bare.status).toBe(308)
    expect(bare.headers.location).toBe('/apps/hello-http/?x=1')
    expect((await raw('GET', '/apps/hello-http/')).body.toString()).toBe('hello from Warden at /')
    const head = await raw('HEAD', '/apps/hello-http/')
    expect(head.status).toBe(200)
    expect(head.body.byteLength).toBe(0)
  })

  it('answers not_found for unknown, malformed and encoded names', async () => {
    for (const path of [
      '/apps/nope/',
      '/apps/',
      '/apps',
      '/apps/HELLO-HTTP/',
      '/apps/hello%2Dhttp/',
      '/apps/hello-http%2F..%2Fprobe/',
      `/apps/${helloId}/`,
      '/apps/an-action/',
      '/apps/-x/',
      '/apps/hello-http%00/',
    ]) {
      expectError(await raw('GET', path), 404, 'not_found')
    }
  })

  it('never lets a path climb out of the mount', async () => {
    // A dot segment, plain or percent-encoded, is refused before routing (URL parsing would
    // resolve it and reach the API; a front proxy allowing only /apps/<name>/* would be fooled).
    for (const path of [
      '/apps/hello-http/../../v1/keys',
      '/apps/hello-http/%2e%2e/%2E%2E/v1/keys',
      '/apps/probe/echo/a/../b',
      '/apps/probe/echo/.%2E/b',
    ]) {
      expectError(await raw('GET', path), 400, 'invalid_request')
    }
    // An encoded slash is not a segment boundary: it stays in the app's path, encoded.
    const inside = await raw('GET', '/apps/probe/echo/a/b/%2F..%2Fc')
    expect(inside.status).toBe(200)
    expect(inside.json.path.startsWith('/echo/')).toBe(true)
    expect(inside.json.path).not.toMatch(/(^|\/)\.\.?(\/|$)/)
  })

  it('rate-limits a route on its token, like invoke', async () => {
    const answers = await Promise.all(
      Array.from({ length: TOKEN_RPS * 2 }, () => raw('GET', '/apps/hello-http/')),
    )
    // Some may be refused by the app's share of the pool first (limit_exceeded, also 429).
    const limited = answers.filter((a) => a.json?.error?.code === 'rate_limited')
    expect(limited.length).toBeGreaterThan(0)
    expect(limited[0]!.status).toBe(429)
    expect(Number(limited[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    await new Promise((resolve) => setTimeout(resolve, 1100))
  })
})

describe('headers, both ways (JS probe)', () => {
  it('never shows the app credentials or hop-by-hop headers', async () => {
    const answer = await raw('POST', '/apps/probe/echo?q=1&r=%20', {
      headers: {
        authorization: `Bearer ${adminKey}`,
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        cookie: 'session=secret',
        'x-api-key': 'k',
        connection: 'keep-alive, x-hop',
        'x-hop': 'dropped because Connection names it',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        upgrade: 'websocket',
        'x-kept': 'yes',
        'content-type': 'text/plain',
      },
      body: 'hello body',
    })
    expect(answer.status).toBe(200)
    const seen = Object.fromEntries(
      (answer.json.headers as { name: string; value: string }[]).map((h) => [h.name, h.value]),
    )
    for (const name of [
      'authorization',
      'proxy-authorization',
      'cookie',
      'x-api-key',
      'connection',
      'x-hop',
      'keep-alive',
      'te',
      'upgrade',
    ]) {
      expect(seen[name]).toBeUndefined()
    }
    expect(seen['x-kept']).toBe('yes')
    expect(JSON.stringify(answer.json)).not.toContain(adminKey)
    expect(answer.json).toMatchObject({
      method: 'POST',
      path: '/echo',
      query: 'q=1&r=%20',
      body: 'hello body',
    })
  })

  it('drops framing, hop-by-hop and origin-wide headers from the app, and keeps the rest', async () => {
    const agent = new Agent({ keepAlive: true })
    const answer = await raw('GET', '/apps/probe/framing', { agent })
    agent.destroy()
    expect(answer.status).toBe(200)
    expect(answer.body.toString()).toBe('framed by the host')
    expect(Number(answer.headers['content-length'])).toBe(answer.body.byteLength)
    expect(answer.headers['transfer-encoding']).toBeUndefined()
    expect(answer.headers.connection).toBe('keep-alive')
    expect(answer.headers['keep-alive']).not.toBe('timeout=1')
    for (const name of [
      'set-cookie',
      'strict-transport-security',
      'clear-site-data',
      'service-worker-allowed',
    ]) {
      expect(answer.headers[name]).toBeUndefined()
    }
    expect(answer.headers['x-warden-invocation']).not.toBe('forged')
    expect(answer.headers['x-content-type-options']).toBe('nosniff')
    expect(answer.headers['content-security-policy']).toBe(`default-src 'self', ${MICRO_APP_CSP}`)
    expect(answer.headers['cache-control']).toBe('max-age=60')
    expect(answer.headers['x-app']).toBe('one, two')
  })

  it('answers invalid_response (502) for header values and names HTTP cannot carry', async () => {
    for (const mode of ['crlf', 'nul', 'unicode', 'bad-name', 'many/101', 'many/2000']) {
      const answer = await raw('GET', `/apps/probe/${mode}`)
      expectError(answer, 502, 'invalid_response')
      expect(answer.headers['x-injected']).toBeUndefined()
    }
    // 99 of its own and its content-type: 100, the cap.
    expect((await raw('GET', '/apps/probe/many/99')).status).toBe(200)
  })

  it('passes statuses 200–599 and refuses the rest', async () => {
    expect((await raw('GET', '/apps/probe/status/404')).status).toBe(404)
    expect((await raw('GET', '/apps/probe/status/599')).status).toBe(599)
    for (const status of [0, 99, 101, 199, 600, 65535]) {
      expectError(await raw('GET', `/apps/probe/status/${status}`), 502, 'invalid_response')
    }
    expectError(await raw('GET', '/apps/probe/no-content'), 502, 'invalid_response')
  })
})

describe('body caps, both ways', () => {
  it('takes a body up to 1 MiB, and refuses one over it with payload_too_large', async () => {
    const full = await raw('POST', '/apps/probe/echo', { body: new Uint8Array(MIB).fill(98) })
    expect(full.status).toBe(200)
    expect(full.json.bodyBytes).toBe(MIB)
    const over = await raw('POST', '/apps/probe/echo', { body: new Uint8Array(MIB + 1) })
    expectError(over, 413, 'payload_too_large')
    expect(over.headers.connection).toBe('close')
  })

  it('answers 413 to a chunked body while it is still being sent, never reading the rest', async () => {
    const answer = await new Promise<{ status: number; sent: number; code: string }>(
      (resolve, reject) => {
        let sent = 0
        let stop = false
        const req = httpRequest(
          { host, port, method: 'POST', path: '/apps/probe/echo', agent: false },
          (res) => {
            stop = true
            const chunks: Buffer[] = []
            res.on('data', (c: Buffer) => chunks.push(c))
            res.on('end', () =>
              resolve({
                status: res.statusCode!,
                sent,
                code: JSON.parse(Buffer.concat(chunks).toString()).error.code,
              }),
            )
          },
        )
        req.on('error', (error) => (stop ? undefined : reject(error)))
        const chunk = new Uint8Array(64 * 1024)
        const pump = () => {
          while (!stop && sent < 64 * MIB) {
            sent += chunk.byteLength
            if (!req.write(chunk)) {
              req.once('drain', pump)
              return
            }
          }
          req.end()
        }
        pump()
      },
    )
    expect(answer.status).toBe(413)
    expect(answer.code).toBe('payload_too_large')
    expect(answer.sent).toBeLessThan(64 * MIB)
  })

  it('answers invalid_response for an app body over 5 MiB, and passes one at the cap', async () => {
    expect((await raw('GET', `/apps/probe/big/${5 * MIB}`)).body.byteLength).toBe(5 * MIB)
    expectError(await raw('GET', `/apps/probe/big/${5 * MIB + 1}`), 502, 'invalid_response')
  })
})

describe('limits and the kill switch', () => {
  it('ends a looping handler at its deadline with timeout, and the host stays up', async () => {
    const answer = await raw('GET', '/apps/probe/loop')
    expectError(answer, 504, 'timeout')
    const id = answer.headers['x-warden-invocation'] as string
    const report = await admin('GET', `/v1/invocations/${id}`)
    expect(report.json.report?.outcome ?? report.json.outcome).toBe('timeout')
    expect((await raw('GET', '/apps/probe/echo')).status).toBe(200)
  })

  it("answers fuel_exhausted and memory_limit under the route token's limits", async () => {
    await admin('POST', '/v1/apps/hello-http/route', { limits: { fuel: 50 } })
    expectError(await raw('GET', '/apps/hello-http/'), 422, 'fuel_exhausted')
    await admin('POST', '/v1/apps/hello-http/route', { limits: { memoryMb: 1 } })
    expect((await raw('GET', '/apps/hello-http/')).status).toBe(200)
    const big = await raw('POST', '/apps/hello-http/', { body: new Uint8Array(MIB) })
    expectError(big, 422, 'memory_limit')
    expect((await admin('POST', '/v1/apps/hello-http/route', {})).status).toBe(201)
    expect((await raw('GET', '/apps/hello-http/')).status).toBe(200)
  })

  it('answers app_disabled while the app is disabled, and serves again once enabled', async () => {
    await admin('POST', '/v1/apps/hello-http/disable')
    expectError(await raw('GET', '/apps/hello-http/'), 403, 'app_disabled')
    await admin('POST', '/v1/apps/hello-http/enable')
    expect((await raw('GET', '/apps/hello-http/')).status).toBe(200)
  })

  it('answers token_revoked once the bound token is revoked, until the route is rebound', async () => {
    const { jti } = (await admin('GET', '/v1/apps/hello-http/route')).json
    expect((await admin('DELETE', `/v1/tokens/${jti}`)).status).toBe(200)
    expectError(await raw('GET', '/apps/hello-http/'), 401, 'token_revoked')
    expect((await admin('POST', '/v1/apps/hello-http/route', {})).status).toBe(201)
    expect((await raw('GET', '/apps/hello-http/')).status).toBe(200)
  })

  it('answers token_expired once the bound token has expired', async () => {
    const exp = (await admin('GET', '/v1/apps/hello-http/route')).json.exp as number
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      vi.setSystemTime((exp + 120) * 1000)
      expectError(await raw('GET', '/apps/hello-http/'), 401, 'token_expired')
    } finally {
      vi.useRealTimers()
    }
    expect((await raw('GET', '/apps/hello-http/')).status).toBe(200)
  })

  it('audits every run and refusal like invoke', async () => {
    const page = await admin('GET', `/v1/audit?app=${helloId}&limit=1000`)
    const records = page.json.records as { op: string; decision: string; reason?: string }[]
    expect(records.some((r) => r.op === 'run' && r.decision === 'allow')).toBe(true)
    expect(records.some((r) => r.op === 'run' && r.reason === 'app_disabled')).toBe(true)
    expect(records.some((r) => r.op === 'app.route.bind' && r.decision === 'allow')).toBe(true)
  })

  it('answers not_found once the app is decommissioned, and drops the binding', async () => {
    expect((await admin('DELETE', `/v1/apps/${probeId}`)).status).toBe(200)
    expectError(await raw('GET', '/apps/probe/echo'), 404, 'not_found')
    expect(JSON.parse(await readFile(join(dataDir, 'routes.json'), 'utf8')).routes).toHaveLength(1)
  })
})
