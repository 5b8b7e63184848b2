/**
 * The three platform capabilities end to end, through tokens, the sandbox and the audit log:
 * each is exercised allowed, denied, and imported-but-not-granted, by a WAT guest and by a
 * componentize-js app. Egress goes to real HTTP servers on loopback, granted explicitly.
 */
import { createHmac } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenError } from '../runtime/errors.js'
import type { LoadedComponent } from '../runtime/index.js'
import type { GrantsInput } from '../runtime/tokens/index.js'
import type { Warden } from '../runtime/warden.js'
import { buildJsGuest, PLATFORM_GUEST_WORLD } from './support/js-guest.js'
import { platformCaller } from './support/platform-guest.js'
import { openTestWarden } from './support/warden.js'
import type { TestWarden } from './support/warden.js'

const SECRET = 'sk-live-0123456789abcdef'
const HTTP = 'warden:platform/http'
const SECRETS = 'warden:platform/secrets'
const DATA = 'warden:platform/data'

let dataDir: string
let warden: Warden
let host: TestWarden
let server: Server
let port: number
/** What the upstream received, per request. */
const received: { url: string; authorization: string | undefined }[] = []
let caller: LoadedComponent

async function token(app: LoadedComponent, grants: GrantsInput): Promise<string> {
  const { token } = await warden.grantToken({
    appId: 'caller',
    digest: app.digest,
    grants,
    lifetimeSeconds: 600,
  })
  return token
}

function httpEntry(pathPrefix = '/ok/') {
  return {
    scheme: 'http' as const,
    host: '127.0.0.1',
    port,
    methods: ['GET' as const],
    pathPrefix,
    allowPrivate: true,
  }
}

async function call(input: string, grants: GrantsInput) {
  const run = await warden.run(caller, input, { token: await token(caller, grants) })
  expect(run.error).toBeUndefined()
  return { run, out: String(run.output) }
}

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push({ url: req.url ?? '', authorization: req.headers.authorization })
    res.setHeader('content-type', 'text/plain')
    // Echo the authorization header: a secret sent upstream must not come back to the guest.
    res.end(`hello from ${req.url} auth=${req.headers.authorization ?? 'none'}`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
  host = await openTestWarden({ poolSize: 2 })
  ;({ warden, dataDir } = host)
  await warden.putSecret('api_key', SECRET)
  await warden.putSecret('other_key', 'another-secret-value')
  await warden.putData('crm', 'contacts/alice', { name: 'Alice', email: 'alice@example.com' })
  await warden.putData('crm', 'contacts/bob', { name: 'Bob', email: 'bob@example.com' })
  await warden.putData('crm', 'deals/big', { amount: 1e6 })
  await warden.setDataSchema('crm', { piiFields: ['email'] })
  caller = await warden.load(await platformCaller())
})

afterAll(async () => {
  await host?.close()
  await new Promise((resolve) => server?.close(resolve))
})

describe('http', () => {
  it('allowed: fetches from a granted origin and path', async () => {
    const { out } = await call(`fetch|GET|http://127.0.0.1:${port}/ok/hello`, {
      http: [httpEntry()],
    })
    expect(out).toBe('ok 200 hello from /ok/hello auth=none')
  })

  it('denied: a path outside the prefix never reaches the server', async () => {
    const before = received.length
    const { out, run } = await call(`fetch|GET|http://127.0.0.1:${port}/admin`, {
      http: [httpEntry()],
    })
    expect(out).toMatch(/^err 0 /)
    expect(received.length).toBe(before)
    expect(run.decisions).toEqual([expect.objectContaining({ capability: HTTP, decision: 'deny' })])
  })

  it('imported but not granted: denied without a round trip', async () => {
    const { out, run } = await call(`fetch|GET|http://127.0.0.1:${port}/ok/x`, { log: true })
    expect(out).toMatch(/^err 0 /)
    expect(run.decisions).toEqual([
      expect.objectContaining({ capability: HTTP, decision: 'deny', reason: 'not granted' }),
    ])
  })
})

describe('secrets', () => {
  const grant = { secrets: [{ name: 'api_key', hosts: [] }] }

  it('allowed: hmac-sha256 signs with the secret without revealing it', async () => {
    const { out } = await call('hmac|api_key|payload', grant)
    expect(out).toBe(`ok ${createHmac('sha256', SECRET).update('payload').digest('hex')}`)
  })

  it('denied: a secret not in the grant, and reveal without the reveal flag', async () => {
    expect((await call('hmac|other_key|payload', grant)).out).toMatch(/^err 0 /)
    expect((await call('reveal|api_key', grant)).out).toMatch(/^err 0 /)
  })

  it('reveal with the flag: the guest sees it, the response is redacted', async () => {
    const { out } = await call('reveal|api_key', {
      secrets: [{ name: 'api_key', hosts: [], reveal: true }],
    })
    expect(out).toBe('ok [redacted:api_key]')
  })

  it('imported but not granted', async () => {
    const { out } = await call('hmac|api_key|payload', { log: true })
    expect(out).toMatch(/^err 0 /)
  })
})

describe('data', () => {
  const grant = { data: [{ collection: 'crm', prefix: 'contacts/' }] }

  it('allowed: reads a granted key, with PII masked', async () => {
    const { out } = await call('get|crm|contacts/alice', grant)
    expect(out.startsWith('ok some ')).toBe(true)
    expect(JSON.parse(out.slice('ok some '.length))).toEqual({ name: 'Alice', email: '[pii]' })
  })

  it('allowed with pii: true shows the field; a missing key is none', async () => {
    const { out } = await call('get|crm|contacts/alice', {
      data: [{ collection: 'crm', prefix: 'contacts/', pii: true }],
    })
    expect(JSON.parse(out.slice('ok some '.length)).email).toBe('alice@example.com')
    expect((await call('get|crm|contacts/zed', grant)).out).toBe('ok none')
  })

  it('denied: outside the prefix, and path tricks', async () => {
    expect((await call('get|crm|deals/big', grant)).out).toMatch(/^err 0 /)
    expect((await call('get|crm|contacts/../deals/big', grant)).out).toMatch(/^err [02] /)
  })

  it('imported but not granted', async () => {
    expect((await call('get|crm|contacts/alice', { log: true })).out).toMatch(/^err 0 /)
  })
})

describe('tokens at run time', () => {
  it('refuses a token for another build, and a revoked one, and audits both', async () => {
    const echo = await warden.load(
      await readFile(new URL('./guests/echo.wat', import.meta.url)).then(async (b) =>
        (await import('./support/wat.js')).compileWat(b.toString()),
      ),
    )
    const forEcho = await token(echo, { log: true })
    await expect(warden.run(caller, 'get|crm|x', { token: forEcho })).rejects.toMatchObject({
      code: 'token_invalid',
    })
    const t = await token(caller, { log: true })
    const jti = JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()).jti as string
    await warden.revokeToken(jti)
    const refused = await warden.run(caller, 'get|crm|x', { token: t }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(WardenError)
    expect((refused as WardenError).code).toBe('token_revoked')
    expect((refused as WardenError).message).not.toContain(t)
    const records = await warden.audit.read({ limit: 10000 })
    expect(
      records.filter((r) => r.kind === 'run' && r.decision === 'deny').map((r) => r.reason),
    ).toEqual(expect.arrayContaining(['token_invalid', 'token_revoked']))
  })
})

describe('componentize-js app', () => {
  it('uses http with a secret placeholder, hmac, and data, and never sees the secret', async () => {
    const app = await warden.load(await buildJsGuest('platform', PLATFORM_GUEST_WORLD))
    const grants: GrantsInput = {
      http: [httpEntry()],
      secrets: [{ name: 'api_key', hosts: [`http://127.0.0.1:${port}`] }],
      data: [{ collection: 'crm', prefix: 'contacts/' }],
      log: true,
    }
    const { token: t } = await warden.grantToken({
      appId: 'platform',
      digest: app.digest,
      grants,
      lifetimeSeconds: 600,
    })
    const run = await warden.run(app, JSON.stringify({ url: `http://127.0.0.1:${port}/ok/js` }), {
      token: t,
    })
    expect(run.error).toBeUndefined()
    const out = JSON.parse(String(run.output)) as Record<string, { ok?: unknown; err?: unknown }>
    expect(out.http).toEqual({ ok: expect.anything() })
    // The upstream got the real secret; the guest got it redacted back.
    expect(received.at(-1)).toEqual({ url: '/ok/js', authorization: `Bearer ${SECRET}` })
    expect(out.http!.ok).toEqual({
      status: 200,
      body: 'hello from /ok/js auth=Bearer [redacted:api_key]',
    })
    expect(out.hmac!.ok).toBe(createHmac('sha256', SECRET).update('msg').digest('hex'))
    expect(out.data!.ok).toBe(JSON.stringify({ name: 'Alice', email: '[pii]' }))
    expect(out.keys!.ok).toEqual(['contacts/alice', 'contacts/bob'])
    expect(run.logs).toEqual([{ level: 'info', message: 'platform app done' }])
    // Without the http grant, the same app is denied and the upstream sees nothing.
    const before = received.length
    const { token: narrow } = await warden.grantToken({
      appId: 'platform',
      digest: app.digest,
      grants: { log: true },
      lifetimeSeconds: 600,
    })
    const denied = JSON.parse(
      String(
        (
          await warden.run(app, JSON.stringify({ url: `http://127.0.0.1:${port}/ok/js` }), {
            token: narrow,
          })
        ).output,
      ),
    )
    expect(denied.http.err).toEqual({ tag: 'denied', val: expect.any(String) })
    expect(denied.hmac.err.tag).toBe('denied')
    expect(denied.data.err.tag).toBe('denied')
    expect(received.length).toBe(before)
  }, 300_000)
})

describe('audit', () => {
  it('records every decision, verifies, and holds no secret value', async () => {
    const records = await warden.audit.read({ limit: 10000 })
    expect(
      records.some(
        (r) => r.kind === 'host-call' && r.capability === HTTP && r.decision === 'allow',
      ),
    ).toBe(true)
    expect(
      records.some(
        (r) => r.kind === 'host-call' && r.capability === SECRETS && r.decision === 'deny',
      ),
    ).toBe(true)
    expect(
      records.some(
        (r) => r.kind === 'host-call' && r.capability === DATA && r.decision === 'allow',
      ),
    ).toBe(true)
    expect(
      records.some((r) => r.kind === 'admin' && r.op === 'secret.put' && r.target === 'api_key'),
    ).toBe(true)
    expect((await warden.audit.verify()).ok).toBe(true)
    const file = await readFile(join(dataDir, 'audit', 'audit.jsonl'), 'utf8')
    expect(file).not.toContain(SECRET)
  })
})
