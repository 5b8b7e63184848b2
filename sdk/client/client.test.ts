/**
 * WardenClient against a real server on a random port: every method's happy path, and a typed
 * error for each area (code and status, never a credential in the message).
 */
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'
import type { RunningServer } from '../../control-plane/index.js'
import { startTestServer } from '../../test/support/server.js'
import type { TestServer } from '../../test/support/server.js'
import { tieredGuest } from '../../test/support/tiered-guest.js'
import { compileWat } from '../../test/support/wat.js'
import { WardenApiError, WardenClient } from './index.js'
import type { App, InvokeResult, MintedToken } from './index.js'

let host: TestServer
let server: RunningServer
let adminKey: string
let admin: WardenClient
let helloBytes: Uint8Array

beforeAll(async () => {
  host = await startTestServer('warden-client-')
  ;({ server, adminKey } = host)
  admin = new WardenClient({ server: server.url, key: adminKey })
  const wat = await readFile(new URL('../../examples/hello/hello.wat', import.meta.url), 'utf8')
  helloBytes = await compileWat(wat)
})

afterAll(async () => {
  await host?.close()
})

/** The WardenApiError `task` rejects with; fails the test if it resolves or throws another. */
async function refusal(task: Promise<unknown>): Promise<WardenApiError> {
  const error = await task.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(WardenApiError)
  return error as WardenApiError
}

function expectCode(error: WardenApiError, code: string, status: number): void {
  expect({ code: error.code, status: error.status }).toEqual({ code, status })
  expect(error.message).not.toContain(adminKey)
}

describe('WardenClient', () => {
  it('checks its options and has typed answers', async () => {
    expect(() => new WardenClient({ server: 'not a url' })).toThrow(TypeError)
    expect(() => new WardenClient({ server: 'ftp://x' })).toThrow(TypeError)
    expect(() => new WardenClient({ server: 'http://u:p@127.0.0.1' })).toThrow(TypeError)
    expect(new WardenClient({ server: `${server.url}/` }).server).toBe(server.url)
    expectTypeOf(admin.invoke).returns.resolves.toEqualTypeOf<InvokeResult>()
    expectTypeOf(admin.grantToken).returns.resolves.toEqualTypeOf<MintedToken>()
    expect(await admin.health()).toEqual({ ok: true })
  })

  it('answers a server it cannot reach, and a missing or wrong key, with codes', async () => {
    const closed = new WardenClient({ server: 'http://127.0.0.1:1', key: adminKey })
    expectCode(await refusal(closed.health()), 'upstream_error', 0)
    const keyless = new WardenClient({ server: server.url })
    expectCode(await refusal(keyless.listApps()), 'unauthorized', 401)
    const wrong = new WardenClient({ server: server.url, key: `${adminKey.slice(0, -1)}x` })
    expectCode(await refusal(wrong.keys.list()), 'unauthorized', 401)
  })

  it('creates, lists and revokes API keys; roles are enforced', async () => {
    const made = await admin.keys.create('auditor', 'client-test')
    expect(made).toMatchObject({ role: 'auditor', label: 'client-test', key: expect.any(String) })
    expect((await admin.keys.list()).map((k) => k.id)).toContain(made.id)
    const auditor = new WardenClient({ server: server.url, key: made.key })
    expectCode(await refusal(auditor.keys.list()), 'forbidden', 403)
    expect(await auditor.audit.head()).toMatchObject({ seq: expect.any(Number) })
    expect((await admin.keys.revoke(made.id)).revokedAt).toEqual(expect.any(String))
    expectCode(await refusal(auditor.audit.head()), 'unauthorized', 401)
    expectCode(await refusal(admin.keys.revoke('0123456789abcdef')), 'not_found', 404)
  })

  it('uploads, lists, shows, approves, and refuses what is not a component', async () => {
    const meta = { name: 'hello', owner: 'it', purpose: 'says hello', reviewBy: '2030-01-01' }
    const first = await admin.upload(helloBytes, meta)
    expect(first.changed).toBe(true)
    expect(first.app).toMatchObject({ name: 'hello', status: 'approved', riskTier: 'low' })
    expect((await admin.upload(helloBytes, meta)).changed).toBe(false)
    const bad = await refusal(
      admin.upload(new TextEncoder().encode('nope'), { ...meta, name: 'x' }),
    )
    expectCode(bad, 'invalid_component', 422)

    const listed = await admin.listApps({ tier: 'low', owner: 'it', limit: 1 })
    expect(listed.apps.map((a: App) => a.name)).toEqual(['hello'])
    expect(listed.nextCursor).toBeNull()
    expect((await admin.getApp('hello')).tokens).toEqual([])
    expectCode(await refusal(admin.getApp('nope')), 'not_found', 404)

    const medium = await admin.upload(await tieredGuest(['http']), { ...meta, name: 'fetcher' })
    expect(medium.app.status).toBe('pending')
    expectCode(
      await refusal(admin.grantToken({ app: 'fetcher', grants: {} })),
      'app_not_approved',
      403,
    )
    expectCode(await refusal(admin.approve('fetcher')), 'invalid_request', 400)
    expectCode(await refusal(admin.approve('fetcher', `sha256:${'0'.repeat(64)}`)), 'conflict', 409)
    expect((await admin.approve('fetcher', medium.app.digest)).status).toBe('approved')
  })

  it('grants, invokes, attenuates, lists and revokes tokens', async () => {
    const minted = await admin.grantToken({ app: 'hello', grants: { log: true }, ttlSeconds: 600 })
    expect(minted.grants).toMatchObject({ log: true })
    const run = await admin.invoke('hello', { a: 1 }, minted.token)
    expect(run.output).toEqual({ a: 1 })
    expect(run.report.fuelUsed).toBeGreaterThan(0)

    const byToken = new WardenClient({ server: server.url, token: minted.token })
    const seen = await byToken.invocation(run.invocationId)
    expect(seen.records.map((r) => r.kind)).toContain('run')
    expectCode(await refusal(admin.invocation('inv-nope')), 'not_found', 404)

    const child = await byToken.attenuateToken({ grants: {}, limits: { fuel: 5 } })
    expect(child.parent).toBe(minted.jti)
    const starved = await refusal(admin.invoke('hello', {}, child.token))
    expectCode(starved, 'fuel_exhausted', 422)
    expect(starved.report).toMatchObject({ outcome: 'fuel_exhausted' })
    expect(starved.invocationId).toBe(starved.report?.invocationId)
    expect(starved.message).not.toContain(child.token)
    const wider = await refusal(
      new WardenClient({ server: server.url, token: child.token }).attenuateToken({
        grants: { log: true },
      }),
    )
    expectCode(wider, 'forbidden', 403)

    expect((await admin.listTokens('hello')).map((t) => t.jti)).toEqual(
      expect.arrayContaining([minted.jti, child.jti]),
    )
    expect(await admin.revokeToken(minted.jti)).toEqual({ jti: minted.jti, revoked: true })
    expectCode(await refusal(byToken.invoke('hello', {})), 'token_revoked', 401)
    expectCode(await refusal(admin.invoke('hello', {})), 'unauthorized', 401)
  })

  it('binds, shows and unbinds the route of a micro-app', async () => {
    const wat = await readFile(
      new URL('../../examples/hello-http/hello-http.wat', import.meta.url),
      'utf8',
    )
    const { app } = await admin.upload(await compileWat(wat), {
      name: 'hello-http',
      owner: 'it',
      purpose: 'says hello over HTTP',
    })
    const route = await admin.bindRoute('hello-http', { grants: {}, ttlSeconds: 600 })
    expect(route).toMatchObject({ name: 'hello-http', path: '/apps/hello-http/', appId: app.id })
    expect(await admin.getRoute(app.id)).toEqual(route)
    const served = await fetch(`${server.url}${route.path}you`)
    expect(await served.text()).toBe('hello from Warden at /you')
    const { token } = await admin.grantToken({ app: 'hello-http' })
    expect((await admin.bindRoute('hello-http', { token })).jti).not.toBe(route.jti)
    expectCode(await refusal(admin.bindRoute('hello', {})), 'invalid_request', 400)
    expect((await admin.unbindRoute('hello-http')).name).toBe('hello-http')
    expectCode(await refusal(admin.getRoute('hello-http')), 'not_found', 404)
    expect((await fetch(`${server.url}${route.path}`)).status).toBe(404)
  })

  it('disables, enables and decommissions an app', async () => {
    const { token } = await admin.grantToken({ app: 'hello', grants: {} })
    expect((await admin.disable('hello')).status).toBe('disabled')
    expectCode(await refusal(admin.invoke('hello', {}, token)), 'app_disabled', 403)
    expect((await admin.enable('hello')).status).toBe('approved')
    expect((await admin.invoke('hello', 'hi', token)).output).toBe('hi')
    expect((await admin.decommission('hello')).status).toBe('decommissioned')
    expectCode(await refusal(admin.invoke('hello', {}, token)), 'token_revoked', 401)
    expectCode(await refusal(admin.decommission('hello')), 'not_found', 404)
  })

  it('writes, lists and deletes secrets, never reading a value back', async () => {
    await admin.secrets.set('github_token', 'ghp_secret_value')
    const list = await admin.secrets.list()
    expect(list.map((s) => s.name)).toEqual(['github_token'])
    expect(JSON.stringify(list)).not.toContain('ghp_secret_value')
    expect(await admin.secrets.delete('github_token')).toBe(true)
    expect(await admin.secrets.delete('github_token')).toBe(false)
    expectCode(await refusal(admin.secrets.set('Bad-Name', 'v')), 'invalid_request', 400)
  })

  it('puts, gets, deletes data (keys with /) and sets a schema', async () => {
    await admin.data.put('crm', 'contacts/alice', { name: 'Alice', email: 'a@example.com' })
    expect(await admin.data.get('crm', 'contacts/alice')).toEqual({
      name: 'Alice',
      email: 'a@example.com',
    })
    await admin.data.schema('crm', ['email'])
    expect(await admin.data.delete('crm', 'contacts/alice')).toBe(true)
    expectCode(await refusal(admin.data.get('crm', 'contacts/alice')), 'not_found', 404)
    expectCode(await refusal(admin.data.put('crm', 'a//b', 1)), 'invalid_request', 400)
  })

  it('queries the audit log with filters and a cursor, verifies it and reads its head', async () => {
    const page = await admin.audit.query({ limit: 2 })
    expect(page.records).toHaveLength(2)
    expect(page.nextCursor).toBe(page.records[1]!.seq + 1)
    const next = await admin.audit.query({ limit: 2, cursor: page.nextCursor! })
    expect(next.records[0]!.seq).toBe(page.nextCursor)
    const denied = await admin.audit.query({ decision: 'deny', limit: 1000 })
    expect(denied.records.every((r) => r.decision === 'deny')).toBe(true)
    expect(denied.records.some((r) => r.op === 'app.upload')).toBe(true)
    const since = await admin.audit.query({ since: '2000-01-01T00:00:00Z', actor: 'bootstrap' })
    expect(since.records[0]).toMatchObject({ op: 'key.create', actor: 'bootstrap' })
    const verified = await admin.audit.verify()
    expect(verified).toMatchObject({ ok: true })
    const head = await admin.audit.head()
    expect(head.seq).toBeGreaterThanOrEqual(verified.lastSeq)
    expectCode(await refusal(admin.audit.query({ since: 'yesterday' })), 'invalid_request', 400)
  })
})
