/**
 * Agent runs (`POST /v1/runs`, issue 10): JS source in the built-in `js` app, through a real
 * server and the typed client. What the token grants works (a loopback upstream, a secret
 * injected at egress, hmac, data); what it does not is a catchable error; limits end runs with
 * Warden's codes; ambient authority is absent; no state survives a run; the host stays up.
 */
import { createHmac } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GrantsInput, LimitsRequest } from '../runtime/index.js'
import { WardenApiError, WardenClient } from '../sdk/client/index.js'
import type { RunResult } from '../sdk/client/index.js'
import { startTestServer } from './support/server.js'
import type { TestServer } from './support/server.js'
import { compileWat } from './support/wat.js'

const SECRET = 'agent-secret-value-9f8e7d'

let host: TestServer
let admin: WardenClient
let upstream: Server
let port: number
const received: { url: string; authorization: string | undefined }[] = []

async function tokenFor(grants: GrantsInput = {}, limits?: LimitsRequest): Promise<string> {
  const minted = await admin.grantToken({
    app: 'js',
    grants,
    ...(limits ? { limits } : {}),
    ttlSeconds: 600,
  })
  return minted.token
}

async function helloBytes(): Promise<Uint8Array> {
  const wat = await readFile(new URL('../examples/hello/hello.wat', import.meta.url), 'utf8')
  return compileWat(wat)
}

/** The WardenApiError a run rejects with. */
async function refused(run: Promise<unknown>): Promise<WardenApiError> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(WardenApiError)
  return error as WardenApiError
}

function loopback(pathPrefix = '/ok/') {
  return {
    scheme: 'http' as const,
    host: '127.0.0.1',
    port,
    methods: ['GET' as const, 'POST' as const],
    pathPrefix,
    allowPrivate: true,
  }
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    received.push({ url: req.url ?? '', authorization: req.headers.authorization })
    res.setHeader('content-type', 'application/json')
    // Echoes the authorization header: a secret sent upstream must not come back to the script.
    res.end(JSON.stringify({ path: req.url, auth: req.headers.authorization ?? null }))
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  port = (upstream.address() as AddressInfo).port
  host = await startTestServer('warden-agent-', { agent: true })
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
  await admin.secrets.set('api_key', SECRET)
  await admin.data.put('crm', 'contacts/alice', { name: 'Alice' })
  await admin.data.put('crm', 'contacts/bob', { name: 'Bob' })
})

afterAll(async () => {
  await host?.close()
  await new Promise((resolve) => upstream?.close(resolve))
})

describe('the built-in app js', () => {
  it('is registered, approved by Warden, and its name cannot be taken by an upload', async () => {
    const app = await admin.getApp('js')
    expect(app).toMatchObject({ name: 'js', publisher: 'builtin', status: 'approved' })
    expect(app.imports).toEqual(
      expect.arrayContaining(['warden:platform/http', 'warden:platform/log']),
    )
    const upload = await refused(
      admin.upload(await helloBytes(), { name: 'js', owner: 'me', purpose: 'squat' }),
    )
    expect(upload.code).toBe('conflict')
  })

  it('answers `return 1+1` with 2 over plain HTTP (the curl of the README)', async () => {
    const token = await tokenFor()
    const response = await fetch(`${host.server.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'return 1+1' }),
    })
    expect(response.status).toBe(200)
    const body = (await response.json()) as RunResult
    expect(body.output).toBe(2)
    expect(body.invocationId).toMatch(/^[0-9a-f-]{36}$/)
    expect(body.report).toMatchObject({ outcome: 'ok', invocationId: body.invocationId })
    expect(body.logs).toEqual([])
  })

  it('is in the OpenAPI document, from the same schemas', async () => {
    const doc = (await (await fetch(`${host.server.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>
      components: { schemas: Record<string, unknown> }
    }
    expect(Object.keys(doc.paths['/v1/runs'] ?? {})).toEqual(['post'])
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['RunRequest', 'RunAnswer']),
    )
  })

  it('refuses a token of another app, and a body with both or neither of source and app', async () => {
    const other = new WardenClient({ server: host.server.url })
    expect((await refused(other.runJs('return 1', undefined, 'not-a-token'))).code).toBe(
      'token_invalid',
    )
    const token = await tokenFor()
    const bad = await fetch(`${host.server.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'return 1', app: 'js' }),
    })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('invalid_request')
  })

  it('hands the script its input and keeps its logs', async () => {
    const token = await tokenFor({ log: true })
    const run = await admin.runJs(
      'warden.log("n is", input.n); console.warn("careful"); return input.n * 2',
      { n: 21 },
      token,
    )
    expect(run.output).toBe(42)
    expect(run.logs).toEqual([
      { level: 'info', message: 'n is 21' },
      { level: 'warn', message: 'careful' },
    ])
  })

  it('answers a thrown error as guest_error with its message and the lines of the source', async () => {
    const token = await tokenFor()
    const source = 'const a = 1\nfunction f() {\n  throw new Error("boom " + a)\n}\nf()'
    const error = await refused(admin.runJs(source, undefined, token))
    expect({ code: error.code, status: error.status, message: error.message }).toEqual({
      code: 'guest_error',
      status: 422,
      message: 'Error: boom 1',
    })
    expect(error.scriptStack?.split('\n')).toEqual([
      expect.stringMatching(/^f@script:3:\d+$/),
      expect.stringMatching(/^<script>@script:5:\d+$/),
    ])
    const syntax = await refused(admin.runJs('let x = 1\nlet = = 2', undefined, token))
    expect(syntax.code).toBe('guest_error')
    expect(syntax.message).toMatch(/^SyntaxError: /)
    expect(syntax.scriptStack).toMatch(/^<script>@script:2:\d+$/)
    const thrown = await refused(admin.runJs('throw { not: "an error" }', undefined, token))
    expect(thrown.message).toBe('Uncaught {"not":"an error"}')
  })

  it('shows the script only its own frames: no host path, no frame of the bindings', async () => {
    const token = await tokenFor()
    const run = await admin.runJs(
      `function f() { return new Error('x') }
       const e = f()
       let bindings = ''
       let bindingsFile = ''
       try { warden.data.get(1, 2) } catch (caught) {
         bindings = String(caught.stack); bindingsFile = String(caught.fileName) }
       const captured = {}
       Error.captureStackTrace(captured)
       return { own: e.stack, bindings, bindingsFile, captured: captured.stack,
         keys: Object.getOwnPropertyNames(e),
         redefined: Reflect.defineProperty(Error.prototype, 'stack', { get() { return 'x' } }),
         recaptured: Reflect.defineProperty(Error, 'captureStackTrace', { value: () => {} }) }`,
      undefined,
      token,
    )
    const out = run.output as {
      own: string
      bindings: string
      bindingsFile: string
      captured: string
      redefined: boolean
      recaptured: boolean
    }
    expect(out.own.split('\n')).toEqual([
      expect.stringMatching(/^f@script:1:\d+$/),
      expect.stringMatching(/^<script>@script:2:\d+$/),
    ])
    expect(out.captured).toMatch(/^<script>@script:8:\d+$/)
    expect(`${out.own}\n${out.bindings}\n${out.bindingsFile}\n${out.captured}`).not.toMatch(
      /\/tmp|initializer|sources|agent\.js/,
    )
    // Neither the getter nor captureStackTrace can be replaced to reach the engine's raw stack.
    expect(out.redefined).toBe(false)
    expect(out.recaptured).toBe(false)
  })
})

describe('capabilities: exactly the token grants', () => {
  it('fetches from a loopback upstream the token allows', async () => {
    const token = await tokenFor({ http: [loopback()] })
    const run = await admin.runJs(
      `const r = await warden.fetch(input.url, { method: 'POST', body: { q: 1 } })
       return { status: r.status, ok: r.ok, body: await r.json() }`,
      { url: `http://127.0.0.1:${port}/ok/agent` },
      token,
    )
    expect(run.output).toEqual({ status: 200, ok: true, body: { path: '/ok/agent', auth: null } })
  })

  it('reports a denied fetch to the script as an error it can catch; nothing is sent', async () => {
    const token = await tokenFor({ http: [loopback()] })
    const before = received.length
    const run = await admin.runJs(
      `const out = []
       for (const url of input.urls) {
         try { await warden.fetch(url); out.push('sent') }
         catch (e) { out.push([e.name, e.kind, e instanceof warden.HostError]) }
       }
       return out`,
      {
        urls: [
          `http://127.0.0.1:${port}/admin`,
          'http://169.254.169.254/latest/meta-data/',
          'https://example.com/',
        ],
      },
      token,
    )
    expect(run.output).toEqual([
      ['WardenHostError', 'denied', true],
      ['WardenHostError', 'denied', true],
      ['WardenHostError', 'denied', true],
    ])
    expect(received.length).toBe(before)
    const ungranted = await tokenFor({})
    const denied = await admin.runJs(
      'try { await warden.fetch(input) } catch (e) { return e.kind }',
      `http://127.0.0.1:${port}/ok/x`,
      ungranted,
    )
    expect(denied.output).toBe('denied')
  })

  it('injects a secret at egress that the script can never read', async () => {
    const token = await tokenFor({
      http: [loopback()],
      secrets: [{ name: 'api_key', hosts: [`http://127.0.0.1:${port}`] }],
    })
    const run = await admin.runJs(
      `const r = await warden.fetch(input.url, { headers: { authorization: 'Bearer {{secret:api_key}}' } })
       const seen = []
       seen.push((await r.json()).auth)
       seen.push(await warden.secrets.hmac('api_key', 'payload'))
       try {
         const m = await import('warden:platform/secrets@0.1.0')
         seen.push(m.reveal('api_key'))
       } catch (e) { seen.push('reveal: ' + (e.payload?.tag ?? e.name)) }
       try {
         await warden.fetch(input.url, { headers: { 'x-leak': '{{secret:api_key}}' } })
         seen.push('sent in another header')
       } catch (e) { seen.push(e.kind) }
       return seen`,
      { url: `http://127.0.0.1:${port}/ok/secret` },
      token,
    )
    const hmac = createHmac('sha256', SECRET).update('payload').digest('hex')
    expect(run.output).toEqual([
      'Bearer [redacted:api_key]',
      hmac,
      expect.not.stringContaining(SECRET),
      'denied',
    ])
    expect(received.at(-1)).toEqual({ url: '/ok/secret', authorization: `Bearer ${SECRET}` })
    expect(JSON.stringify(run)).not.toContain(SECRET)
  })

  it('reads data under the granted prefix only', async () => {
    const token = await tokenFor({ data: [{ collection: 'crm', prefix: 'contacts' }] })
    const run = await admin.runJs(
      `const alice = await warden.data.get('crm', 'contacts/alice')
       const page = await warden.data.list('crm', 'contacts')
       let outside
       try { await warden.data.get('crm', 'deals/big') } catch (e) { outside = e.kind }
       return { alice, keys: page.entries.map((e) => e.key), outside }`,
      undefined,
      token,
    )
    expect(run.output).toEqual({
      alice: { name: 'Alice' },
      keys: ['contacts/alice', 'contacts/bob'],
      outside: 'denied',
    })
  })

  it('gives the script no ambient authority: environment, files, process, require, fetch', async () => {
    const token = await tokenFor()
    const run = await admin.runJs(
      `const probe = async (f) => { try { const v = await f(); return v === undefined ? 'undefined' : typeof v } catch (e) { return 'threw ' + e.name } }
       return {
         process: typeof process,
         require: typeof require,
         env: await probe(() => process.env.HOME),
         fetch: await probe(() => fetch('http://127.0.0.1:${port}/ok/ambient')),
         Deno: typeof Deno,
         Bun: typeof Bun,
       }`,
      undefined,
      token,
    )
    expect(run.output).toEqual({
      process: 'undefined',
      require: 'undefined',
      env: 'threw ReferenceError',
      fetch: 'threw TypeError',
      Deno: 'undefined',
      Bun: 'undefined',
    })
    expect(received.some((r) => r.url === '/ok/ambient')).toBe(false)
  })

  it('lets import() reach no module: it throws, or the engine ends the run', async () => {
    const token = await tokenFor()
    for (const specifier of ['node:fs', 'node:process', 'wasi:filesystem/types@0.2.0', './x.js']) {
      const outcome = await admin
        .runJs(
          'try { await import(input); return "imported" } catch (e) { return "threw " + e.name }',
          specifier,
          token,
        )
        .then(
          (run) => run.output,
          (error: WardenApiError) => error.code,
        )
      expect([specifier, outcome]).toEqual([
        specifier,
        expect.stringMatching(/^(threw \w+|guest_trap)$/),
      ])
    }
  })
})

describe('limits end runs with Warden codes; the host stays up', () => {
  it('shares the sandbox per token family: one tenant flooding it leaves another a place (fourth outside attack)', async () => {
    const flooder = await tokenFor({}, { fuel: 1e12, timeoutMs: 300 })
    const other = await tokenFor()
    const flood = Array.from({ length: 10 }, () =>
      admin.runJs('for (;;) {}', undefined, flooder).then(
        () => 'ok',
        (e: WardenApiError) => e.code,
      ),
    )
    await new Promise((r) => setTimeout(r, 100))
    const run = await admin.runJs('return 1', undefined, other)
    expect(run.output).toBe(1)
    const codes = await Promise.all(flood)
    // The flooder's own family is capped: a place running, the rest waiting, then refused.
    expect(codes).toContain('limit_exceeded')
    expect(codes.filter((c) => c === 'timeout').length).toBeGreaterThan(0)
  })

  it('takes scripts only as `source`: the sandbox by app is refused, so the source caps hold', async () => {
    const token = await tokenFor()
    const byApp = await fetch(`${host.server.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ app: 'js', input: { source: 'return 7' } }),
    })
    expect(byApp.status).toBe(400)
    expect(((await byApp.json()) as { error: { code: string } }).error.code).toBe('invalid_request')
    // Nor through invoke, which has neither the source cap nor the per-tenant share.
    const byInvoke = await fetch(`${host.server.url}/v1/apps/js/invoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: { source: 'return 7' } }),
    })
    expect(byInvoke.status).toBe(400)
    expect(((await byInvoke.json()) as { error: { message: string } }).error.message).toMatch(
      /as `source` on POST \/v1\/runs/,
    )
    await expect(admin.invoke('js', { source: 'return 7' }, token)).rejects.toMatchObject({
      code: 'invalid_request',
    })
  })

  it('ends an infinite loop at the deadline', async () => {
    const token = await tokenFor({}, { fuel: 1e12, timeoutMs: 300 })
    const error = await refused(admin.runJs('for (;;) {}', undefined, token))
    expect(error.code).toBe('timeout')
    expect(error.report?.outcome).toBe('timeout')
  })

  it('ends `while (true) {}` inside try/finally: the finally never answers', async () => {
    const token = await tokenFor({}, { fuel: 1e8 })
    const error = await refused(
      admin.runJs('try { while (true) {} } finally { return "escaped" }', undefined, token),
    )
    expect(error.code).toBe('fuel_exhausted')
  })

  it('ends a memory bomb at the cap', async () => {
    const token = await tokenFor({}, { memoryMb: 32, fuel: 1e11 })
    const error = await refused(
      admin.runJs(
        'const hog = []; for (;;) hog.push(new Array(1 << 20).fill(hog.length))',
        undefined,
        token,
      ),
    )
    expect(error.code).toBe('memory_limit')
    expect(error.report?.memoryPeakBytes).toBeLessThanOrEqual(32 * 1024 * 1024)
  })

  it('refuses a huge return value with limit_exceeded', async () => {
    const token = await tokenFor({}, { fuel: 1e11, memoryMb: 256 })
    const error = await refused(admin.runJs(`return 'x'.repeat(2 * 1024 * 1024)`, undefined, token))
    expect(error.code).toBe('limit_exceeded')
    expect(error.report?.outcome).toBe('ok')
  })

  it("sends a script's value as the sandbox wrote it, and cannot be made to forge the answer around it", async () => {
    const token = await tokenFor()
    expect(
      (await admin.runJs('return { a: [1.5, "é"], b: null }', undefined, token)).output,
    ).toEqual({
      a: [1.5, 'é'],
      b: null,
    })
    // The answer's text comes from the sandbox: a script that replaces JSON.stringify writes
    // what it likes there, but only one JSON value of the expected shape goes out as it is.
    const forged = `JSON.stringify = () => '{"ok":1},"report":{"forged":true},"x":{"y":2}'; return 1`
    const error = await refused(admin.runJs(forged, undefined, token))
    expect(error.code).toBe('guest_trap')
    expect(JSON.stringify(error.report)).not.toContain('forged')
  })

  it('carries no state from one run to the next, 200 runs in a row', async () => {
    const token = await tokenFor()
    const source = `
      const seen = [globalThis.mark ?? null, [].leak ?? null, typeof warden.extra, Math.leaked ?? null]
      globalThis.mark = input
      Array.prototype.leak = input
      Math.leaked = input
      try { warden.extra = () => input } catch {}
      return seen`
    for (let i = 0; i < 200; i++) {
      const run = await admin.runJs(source, i, token)
      expect(run.output).toEqual([null, null, 'undefined', null])
    }
  })

  it('stays up: health answers and a plain run still works', async () => {
    expect(await admin.health()).toEqual({ ok: true })
    expect((await admin.runJs('return 1+1', undefined, await tokenFor())).output).toBe(2)
  })
})

describe('a run leaves nothing behind', () => {
  it('writes no file holding the source', async () => {
    const marker = `marker-${Date.now()}-${Math.random().toString(36).slice(2)}`
    await admin.runJs(`return ${JSON.stringify(marker)}.length`, undefined, await tokenFor())
    const files = await readdir(host.dataDir, { recursive: true, withFileTypes: true })
    for (const file of files.filter((f) => f.isFile())) {
      const text = await readFile(join(file.parentPath, file.name), 'latin1')
      expect({ file: file.name, found: text.includes(marker) }).toEqual({
        file: file.name,
        found: false,
      })
    }
  })
})

describe('a deployed action by app', () => {
  it('runs with { app, input } like invoke, with its logs', async () => {
    await admin.upload(await helloBytes(), { name: 'hello', owner: 'it', purpose: 'demo' })
    const { token } = await admin.grantToken({ app: 'hello', grants: { log: true } })
    const run = await admin.run({ app: 'hello', input: { name: 'Ada' } }, token)
    expect(run.report.outcome).toBe('ok')
    expect(run.invocationId).toBe(run.report.invocationId)
    const wrong = await refused(admin.run({ source: 'return 1' }, token))
    expect(wrong.code).toBe('token_invalid')
  })
})
