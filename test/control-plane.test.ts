/**
 * The control plane through a real server on a random port, driven with `fetch`: error shape
 * and codes, API keys and roles, upload and the registry, approval by risk tier, tokens,
 * invoke, the kill switch, decommissioning, secrets and data, the audit routes.
 */
import { createPublicKey } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminKeyPath, startServer } from '../control-plane/index.js'
import type { RunningServer } from '../control-plane/index.js'
import { readTokenEntries } from '../control-plane/token-index.js'
import { auditKeyId } from '../runtime/audit/index.js'
import { lineReads } from '../runtime/audit/lines.js'
import { resolveHostConfig, verifyAuditFile } from '../runtime/index.js'
import { infiniteLoop } from './support/guests.js'
import { tieredGuest } from './support/tiered-guest.js'
import { actionWat, compileWat } from './support/wat.js'

let dataDir: string
let server: RunningServer
let adminKey: string
let publisherKey: string
let auditorKey: string
let secondAdminKey: string

interface Answer {
  status: number
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field
  body: any
  headers: Headers
}

async function api(
  method: string,
  path: string,
  options: { auth?: string; json?: unknown; body?: BodyInit; type?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (options.auth !== undefined) {
    headers.authorization = `Bearer ${options.auth}`
  }
  let body = options.body
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(options.json)
  }
  if (options.type) {
    headers['content-type'] = options.type
  }
  const response = await fetch(`${server.url}${path}`, { method, headers, body: body ?? null })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: response.status, body: parsed, headers: response.headers }
}

/** Upload `bytes` as `name` with `auth`. */
function upload(bytes: Uint8Array, name: string, auth = publisherKey, owner = 'it-team') {
  const query = new URLSearchParams({ name, owner, purpose: `testing ${name}` })
  return api('POST', `/v1/apps?${query}`, {
    auth,
    body: Buffer.from(bytes) as unknown as BodyInit,
    type: 'application/wasm',
  })
}

function expectError(answer: Answer, status: number, code: string) {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code })
  expect(typeof answer.body.error.message).toBe('string')
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-cp-'))
  const config = { ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir }), poolSize: 2 }
  server = await startServer({ config, port: 0, host: '127.0.0.1' })
  adminKey = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
  const make = async (role: string) =>
    (await api('POST', '/v1/keys', { auth: adminKey, json: { role, label: role } })).body.key
  publisherKey = await make('publisher')
  auditorKey = await make('auditor')
  secondAdminKey = await make('admin')
})

afterAll(async () => {
  await server?.close()
  await rm(dataDir, { recursive: true, force: true })
})

describe('the HTTP contract', () => {
  it('answers health, readiness, the JWKS and an OpenAPI 3.1 document', async () => {
    expect((await api('GET', '/healthz')).body).toEqual({ ok: true })
    expect((await api('GET', '/readyz')).body.ready).toBe(true)
    expect((await api('GET', '/.well-known/jwks.json')).body.keys).toBeInstanceOf(Array)
    const doc = (await api('GET', '/openapi.json')).body
    expect(doc.openapi).toBe('3.1.0')
    // Made once and served from memory (anyone may ask): the same bytes every time.
    const [a, b] = await Promise.all(
      [0, 1].map(() => fetch(`${server.url}/openapi.json`).then((r) => r.text())),
    )
    expect(a).toBe(b)
    expect(JSON.parse(a)).toEqual(doc)
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/apps', '/v1/apps/{id}/invoke', '/v1/tokens', '/v1/audit']),
    )
    // The grants schema comes from the capabilities' own schemas.
    const grant = doc.paths['/v1/tokens'].post.requestBody.content['application/json'].schema
    expect(JSON.stringify(grant)).toContain('pathPrefix')
  })

  it('answers unknown routes, wrong methods and bad bodies with stable codes', async () => {
    expectError(await api('GET', '/v1/nope', { auth: adminKey }), 404, 'not_found')
    const wrong = await api('PATCH', '/v1/apps', { auth: adminKey })
    expectError(wrong, 405, 'method_not_allowed')
    expect(wrong.headers.get('allow')).toContain('POST')
    const notJson = await api('POST', '/v1/keys', {
      auth: adminKey,
      body: '{nope',
      type: 'application/json',
    })
    expectError(notJson, 400, 'invalid_request')
    const badField = await api('POST', '/v1/keys', {
      auth: adminKey,
      json: { role: 'root', label: 'x' },
    })
    expectError(badField, 400, 'invalid_request')
    expect(badField.body.error.message).toContain('role')
    const tooBig = await api('POST', '/v1/keys', {
      auth: adminKey,
      json: { role: 'admin', label: 'x'.repeat(2 * 1024 * 1024) },
    })
    expectError(tooBig, 413, 'payload_too_large')
  })

  it('caps a chunked JSON body (no Content-Length) as it streams, and reads one under the cap', async () => {
    // Chunks of `{"role":"root","label":"xxx…"}` (a role that does not exist, so nothing is
    // created); the server sees no declared length.
    const chunked = (bytes: number) => {
      const parts = [`{"role":"root","label":"`, 'x'.repeat(bytes), '"}']
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          const part = parts.shift()
          if (part === undefined) {
            controller.close()
            return
          }
          controller.enqueue(new TextEncoder().encode(part))
        },
      })
      return fetch(`${server.url}/v1/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
        body,
        duplex: 'half',
      } as RequestInit)
    }
    const refused = await chunked(2 * 1024 * 1024)
    expect(refused.status).toBe(413)
    expect((await refused.json()).error.code).toBe('payload_too_large')
    // Under the cap the body is read and parsed: the schema's refusal names the field.
    const under = await chunked(10)
    expect(under.status).toBe(400)
    const refusal = await under.json()
    expect(refusal.error.code).toBe('invalid_request')
    expect(refusal.error.message).toContain('role')
  })
})

describe('API keys and roles', () => {
  it('lists keys without their secrets or hashes, and refuses revoking the last admin', async () => {
    const list = await api('GET', '/v1/keys', { auth: adminKey })
    expect(list.status).toBe(200)
    const text = JSON.stringify(list.body)
    expect(text).not.toContain(publisherKey)
    expect(text).not.toContain('hash')
    expect(list.body.keys.map((k: { role: string }) => k.role).sort()).toEqual([
      'admin',
      'admin',
      'auditor',
      'publisher',
    ])
    const file = await readFile(join(dataDir, 'api-keys.json'), 'utf8')
    expect(file).not.toContain(publisherKey)
  })

  const routes: [string, string, string[]][] = [
    ['GET', '/v1/keys', ['admin']],
    ['POST', '/v1/keys', ['admin']],
    ['DELETE', '/v1/keys/0123456789abcdef', ['admin']],
    ['POST', '/v1/apps?name=x&owner=o&purpose=p', ['admin', 'publisher']],
    ['GET', '/v1/apps', ['admin', 'publisher', 'auditor']],
    ['GET', '/v1/apps/app-0000000000000000', ['admin', 'publisher', 'auditor']],
    ['POST', '/v1/apps/app-0000000000000000/approve', ['admin']],
    ['POST', '/v1/apps/app-0000000000000000/disable', ['admin']],
    ['POST', '/v1/apps/app-0000000000000000/enable', ['admin']],
    ['DELETE', '/v1/apps/app-0000000000000000', ['admin']],
    ['POST', '/v1/tokens', ['admin']],
    ['GET', '/v1/tokens', ['admin']],
    ['DELETE', '/v1/tokens/0123456789abcdef', ['admin']],
    ['PUT', '/v1/secrets/gh', ['admin']],
    ['GET', '/v1/secrets', ['admin']],
    ['DELETE', '/v1/secrets/gh', ['admin']],
    ['PUT', '/v1/data/crm/schema', ['admin']],
    ['PUT', '/v1/data/crm/a', ['admin']],
    ['GET', '/v1/data/crm/a', ['admin']],
    ['DELETE', '/v1/data/crm/a', ['admin']],
    ['GET', '/v1/audit', ['admin', 'auditor']],
    ['GET', '/v1/audit/verify', ['admin', 'auditor']],
    ['GET', '/v1/audit/head', ['admin', 'auditor']],
    ['GET', '/v1/audit/key', ['admin', 'auditor']],
  ]

  it('refuses every route to every wrong role and every bad credential', async () => {
    const revoked = (
      await api('POST', '/v1/keys', { auth: adminKey, json: { role: 'admin', label: 'gone' } })
    ).body
    await api('DELETE', `/v1/keys/${revoked.id}`, { auth: adminKey })
    const byRole: Record<string, string> = {
      admin: adminKey,
      publisher: publisherKey,
      auditor: auditorKey,
    }
    const bad = [
      undefined,
      'not-a-key',
      `wdn_0123456789abcdef_${'A'.repeat(43)}`,
      `${adminKey.slice(0, -1)}${adminKey.endsWith('A') ? 'B' : 'A'}`,
      revoked.key,
    ]
    for (const [method, path, allowed] of routes) {
      for (const credential of bad) {
        const answer = await api(method, path, credential === undefined ? {} : { auth: credential })
        expect({ method, path, status: answer.status, code: answer.body?.error?.code }).toEqual({
          method,
          path,
          status: 401,
          code: 'unauthorized',
        })
      }
      for (const role of ['admin', 'publisher', 'auditor'].filter((r) => !allowed.includes(r))) {
        const answer = await api(method, path, { auth: byRole[role]! })
        expect({ method, path, role, code: answer.body?.error?.code }).toEqual({
          method,
          path,
          role,
          code: 'forbidden',
        })
      }
    }
  })
})

describe('upload and the registry', () => {
  it('refuses what is not a component, with a code and an audit record', async () => {
    expectError(
      await upload(new TextEncoder().encode('garbage'), 'garbage'),
      422,
      'invalid_component',
    )
    const core = await compileWat('(module (func (export "run")))').catch(() => undefined)
    if (core) {
      expectError(await upload(core, 'core'), 422, 'invalid_component')
    }
    const wrongType = await api('POST', '/v1/apps?name=x&owner=o&purpose=p', {
      auth: publisherKey,
      body: 'x',
      type: 'text/plain',
    })
    expectError(wrongType, 415, 'unsupported_media_type')
    expectError(
      await api('POST', '/v1/apps?name=Bad_Name&owner=o&purpose=p', {
        auth: publisherKey,
        body: 'x',
        type: 'application/wasm',
      }),
      400,
      'invalid_request',
    )
    const audit = await api('GET', '/v1/audit?decision=deny&limit=1000', { auth: auditorKey })
    expect(
      audit.body.records.some(
        (r: { op: string; reason: string }) =>
          r.op === 'app.upload' && r.reason === 'invalid_component',
      ),
    ).toBe(true)
  })

  it('refuses an oversized upload without reading the rest of it', async () => {
    const declared = await fetch(`${server.url}/v1/apps?name=big&owner=o&purpose=p`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${publisherKey}`,
        'content-type': 'application/wasm',
        'content-length': String(1024 ** 3),
      },
      body: new Uint8Array(16),
    }).catch(() => undefined)
    // A lying content-length either gets a 413 or a closed connection; never a registration.
    if (declared) {
      expect(declared.status).toBe(413)
    }
    let sent = 0
    const total = 256 * 1024 * 1024
    const chunk = new Uint8Array(1024 * 1024)
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) {
          controller.close()
          return
        }
        sent += chunk.byteLength
        controller.enqueue(chunk)
      },
    })
    const answer = await fetch(`${server.url}/v1/apps?name=big&owner=o&purpose=p`, {
      method: 'POST',
      headers: { authorization: `Bearer ${publisherKey}`, 'content-type': 'application/wasm' },
      body,
      duplex: 'half',
    } as RequestInit)
    expect(answer.status).toBe(413)
    expect((await answer.json()).error.code).toBe('payload_too_large')
    expect(sent).toBeLessThan(total)
  })

  it('registers a low-risk app approved, is idempotent, and adds versions', async () => {
    const bytes = await tieredGuest(['log'])
    const first = await upload(bytes, 'logger')
    expect(first.status).toBe(201)
    expect(first.body).toMatchObject({
      name: 'logger',
      owner: 'it-team',
      riskTier: 'low',
      status: 'approved',
      world: 'warden:platform/action',
      imports: ['warden:platform/log'],
      exports: ['run'],
    })
    expect(first.body.digest).toMatch(/^sha256:[0-9a-f]{64}$/)
    const again = await upload(bytes, 'logger')
    expect(again.status).toBe(200)
    expect(again.body.versions).toHaveLength(1)
    const v2 = await upload(await tieredGuest(['log'], 'v2'), 'logger')
    expect(v2.status).toBe(201)
    expect(v2.body.versions).toHaveLength(2)
    expect(v2.body.digest).not.toBe(first.body.digest)
    // Only its publisher (or an admin) adds versions; the name is taken for anyone else.
    const other = (
      await api('POST', '/v1/keys', { auth: adminKey, json: { role: 'publisher', label: 'other' } })
    ).body.key
    expectError(await upload(await tieredGuest(['log'], 'v3'), 'logger', other), 409, 'conflict')
    const listed = await api('GET', '/v1/apps?tier=low', { auth: auditorKey })
    expect(listed.body.apps.map((a: { name: string }) => a.name)).toContain('logger')
  })

  it('keeps medium and high apps pending until an admin approves the build reviewed', async () => {
    const medium = await upload(await tieredGuest(['http']), 'fetcher')
    expect(medium.body).toMatchObject({ riskTier: 'medium', status: 'pending' })
    expect(medium.body.riskReasons.join(' ')).toContain('http')
    const refused = await api('POST', '/v1/tokens', {
      auth: adminKey,
      json: { app: 'fetcher', grants: {} },
    })
    expectError(refused, 403, 'app_not_approved')
    // Approval names the build reviewed; a build swapped in since is not approved with it.
    expectError(
      await api('POST', '/v1/apps/fetcher/approve', { auth: adminKey }),
      400,
      'invalid_request',
    )
    const swapped = await upload(await tieredGuest(['http'], 'swapped'), 'fetcher')
    expect(swapped.body.status).toBe('pending')
    expectError(
      await api('POST', `/v1/apps/fetcher/approve?digest=${medium.body.digest}`, {
        auth: adminKey,
      }),
      409,
      'conflict',
    )
    const approved = await api('POST', `/v1/apps/fetcher/approve?digest=${swapped.body.digest}`, {
      auth: adminKey,
    })
    expect(approved.body.status).toBe('approved')
    // Every medium or high build is reviewed: a new one is pending again.
    const next = await upload(await tieredGuest(['http'], 'next'), 'fetcher')
    expect(next.body.status).toBe('pending')
  })

  it('approves a high-risk build only by an admin other than its publisher, or a key it made', async () => {
    const high = await upload(await tieredGuest(['secrets']), 'signer', secondAdminKey)
    expect(high.body).toMatchObject({ riskTier: 'high', status: 'pending' })
    const approve = (key: string) =>
      api('POST', `/v1/apps/signer/approve?digest=${high.body.digest}`, { auth: key })
    expectError(await approve(secondAdminKey), 403, 'forbidden')
    // Another admin key made by the publisher is still the publisher (outside attack).
    const sock = (
      await api('POST', '/v1/keys', {
        auth: secondAdminKey,
        json: { role: 'admin', label: 'sock' },
      })
    ).body.key
    expectError(await approve(sock), 403, 'forbidden')
    await api('DELETE', `/v1/keys/${sock.split('_')[1]}`, { auth: adminKey })
    expect((await approve(adminKey)).body.status).toBe('approved')

    // And the other way round: an admin who made the publisher key that uploaded.
    const puppet = (
      await api('POST', '/v1/keys', {
        auth: secondAdminKey,
        json: { role: 'publisher', label: 'puppet' },
      })
    ).body.key
    const next = await upload(await tieredGuest(['secrets'], 'puppet'), 'puppeted', puppet)
    const approveNext = (key: string) =>
      api('POST', `/v1/apps/puppeted/approve?digest=${next.body.digest}`, { auth: key })
    expectError(await approveNext(secondAdminKey), 403, 'forbidden')
    // A sibling of the publisher's key, made by the same admin, is the same person (second attack).
    const sibling = (
      await api('POST', '/v1/keys', { auth: secondAdminKey, json: { role: 'admin', label: 'sib' } })
    ).body.key
    expectError(await approveNext(sibling), 403, 'forbidden')
    await api('DELETE', `/v1/keys/${sibling.split('_')[1]}`, { auth: adminKey })
    // The bootstrap (root) key made every key: keys it hands out are other people.
    expect((await approveNext(adminKey)).body.status).toBe('approved')
  })

  it('refuses a name that looks like an app id, and keeps a big upload intact', async () => {
    expectError(
      await upload(await tieredGuest(['log']), 'app-0123456789abcdef'),
      400,
      'invalid_request',
    )
    // Past Node's 4 KiB Buffer pool: the bytes must reach the registry as uploaded (outside attack).
    const big = await tieredGuest(['log'], 'x'.repeat(20_000))
    expect(big.byteLength).toBeGreaterThan(16 * 1024)
    const answer = await upload(big, 'big')
    expect(answer.status).toBe(201)
    const stored = await readFile(
      join(dataDir, 'blobs', 'sha256', `${answer.body.digest.slice('sha256:'.length)}.wasm`),
    )
    expect(Buffer.compare(stored, Buffer.from(big))).toBe(0)
  })
})

describe('tokens, invoke and the audit trail', () => {
  let hello: { id: string; digest: string }

  beforeAll(async () => {
    const wat = await readFile(new URL('../examples/hello/hello.wat', import.meta.url), 'utf8')
    hello = (await upload(await compileWat(wat), 'hello')).body
  })

  it('grants, invokes, and shows the run to its token and to auditors', async () => {
    const minted = await api('POST', '/v1/tokens', {
      auth: adminKey,
      json: { app: 'hello', grants: { log: true }, ttlSeconds: 600 },
    })
    expect(minted.status).toBe(201)
    expect(minted.body).toMatchObject({ jti: expect.any(String), app: { id: hello.id } })
    const run = await api('POST', `/v1/apps/${hello.id}/invoke`, {
      auth: minted.body.token,
      json: { input: { greeting: 'hi' } },
    })
    expect(run.status).toBe(200)
    expect(run.body.output).toEqual({ greeting: 'hi' })
    expect(run.headers.get('x-warden-invocation')).toBe(run.body.invocationId)
    expect(Number(run.headers.get('x-warden-fuel'))).toBeGreaterThan(0)

    const byToken = await api('GET', `/v1/invocations/${run.body.invocationId}`, {
      auth: minted.body.token,
    })
    expect(byToken.status).toBe(200)
    expect(byToken.body.records.map((r: { kind: string }) => r.kind)).toContain('run')
    const byAuditor = await api('GET', `/v1/invocations/${run.body.invocationId}`, {
      auth: auditorKey,
    })
    expect(byAuditor.status).toBe(200)
    const other = await api('POST', '/v1/tokens', {
      auth: adminKey,
      json: { app: 'hello', grants: {} },
    })
    expectError(
      await api('GET', `/v1/invocations/${run.body.invocationId}`, { auth: other.body.token }),
      404,
      'not_found',
    )
    // Never the token string in the registry or the token list.
    const listed = JSON.stringify((await api('GET', '/v1/tokens', { auth: adminKey })).body)
    expect(listed).toContain(minted.body.jti)
    expect(listed).not.toContain(minted.body.token)
    expect(
      JSON.stringify((await api('GET', `/v1/apps/${hello.id}`, { auth: adminKey })).body),
    ).not.toContain(minted.body.token)
  })

  it('answers floods of lookups and verifies without a pass over the log each (attack 3)', async () => {
    const bare = await api('POST', '/v1/tokens', {
      auth: adminKey,
      json: { app: 'hello', grants: {} },
    })
    const lookups = () =>
      Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          api('GET', `/v1/invocations/unknown-${i}`, { auth: bare.body.token }),
        ),
      )
    const before = lineReads.count
    // At most the index's first scan, shared by all of them; then none at all.
    for (const answer of await lookups()) {
      expectError(answer, 404, 'not_found')
    }
    expect(lineReads.count - before).toBeLessThanOrEqual(1)
    const afterFirst = lineReads.count
    for (const answer of await lookups()) {
      expectError(answer, 404, 'not_found')
    }
    expect(lineReads.count).toBe(afterFirst)
    const verifies = await Promise.all(
      Array.from({ length: 20 }, () => api('GET', '/v1/audit/verify', { auth: auditorKey })),
    )
    expect(lineReads.count - afterFirst).toBeLessThanOrEqual(1)
    for (const answer of verifies) {
      expect(answer.body).toEqual(verifies[0]!.body)
      expect(answer.body.ok).toBe(true)
    }
  })

  it('attenuates, revokes, and refuses tokens for another app', async () => {
    const parent = (
      await api('POST', '/v1/tokens', {
        auth: adminKey,
        json: { app: 'hello', grants: { log: true } },
      })
    ).body
    const child = await api('POST', '/v1/tokens/attenuate', {
      auth: parent.token,
      json: { grants: {}, limits: { fuel: 1_000_000 } },
    })
    expect(child.status).toBe(201)
    expect(child.body.parent).toBe(parent.jti)
    const wider = await api('POST', '/v1/tokens/attenuate', {
      auth: child.body.token,
      json: { grants: { log: true } },
    })
    expectError(wider, 403, 'forbidden')
    const logger = (await api('GET', '/v1/apps/logger', { auth: adminKey })).body
    expectError(
      await api('POST', `/v1/apps/${logger.id}/invoke`, { auth: parent.token, json: { input: 1 } }),
      401,
      'token_invalid',
    )
    expect((await api('DELETE', `/v1/tokens/${parent.jti}`, { auth: adminKey })).status).toBe(200)
    for (const token of [parent.token, child.body.token]) {
      expectError(
        await api('POST', `/v1/apps/${hello.id}/invoke`, { auth: token, json: { input: 1 } }),
        401,
        'token_revoked',
      )
    }
    expectError(
      await api('POST', `/v1/apps/${hello.id}/invoke`, { json: { input: 1 } }),
      401,
      'unauthorized',
    )
  })

  it('tells a caller without a valid token for the app nothing about it', async () => {
    const pending = await upload(await tieredGuest(['http'], 'quiet'), 'quiet')
    const forged = 'e30.e30.AAAA'
    const answers = await Promise.all(
      ['quiet', 'hello', 'no-such-app', pending.body.id].map((id) =>
        api('POST', `/v1/apps/${id}/invoke`, { auth: forged, json: { input: 1 } }),
      ),
    )
    for (const answer of answers) {
      expectError(answer, 401, 'token_invalid')
    }
    const other = (
      await api('POST', '/v1/tokens', { auth: adminKey, json: { app: 'hello', grants: {} } })
    ).body.token
    for (const id of ['quiet', 'no-such-app']) {
      expectError(
        await api('POST', `/v1/apps/${id}/invoke`, { auth: other, json: { input: 1 } }),
        401,
        'token_invalid',
      )
    }
    const text = `{"input":${'['.repeat(20_000)}1${']'.repeat(20_000)}}`
    const nested = await api('POST', `/v1/apps/${hello.id}/invoke`, {
      auth: other,
      body: text,
      type: 'application/json',
    })
    expect(nested.status).toBeLessThan(500)
  })

  it('bounds the audit records of refused credentials per client', async () => {
    // Requests without a credential are refusals too: let the earlier tests' second of the
    // per-client budget run out first.
    await new Promise((r) => setTimeout(r, 1100))
    const before = (await api('GET', '/v1/audit/head', { auth: auditorKey })).body.seq
    await Promise.all(
      Array.from({ length: 60 }, () =>
        api('POST', `/v1/apps/${hello.id}/invoke`, { auth: 'x.y.z', json: { input: 1 } }),
      ),
    )
    const after = (await api('GET', '/v1/audit/head', { auth: auditorKey })).body.seq
    expect(after - before).toBeLessThanOrEqual(20)
    expect(after - before).toBeGreaterThan(0)
    // The rest are counted, and the count is on the record within a second (second attack).
    await new Promise((r) => setTimeout(r, 1500))
    const records = (
      await api('GET', `/v1/audit?cursor=${before + 1}&limit=1000`, { auth: auditorKey })
    ).body.records
    const counted = records.find((r: { target: string | null }) => r.target?.startsWith('+'))
    expect(counted?.target).toMatch(/^\+\d+ refusals from 1 client address, counted$/)
  })

  it('caps the live children of one token', async () => {
    const parent = (
      await api('POST', '/v1/tokens', { auth: adminKey, json: { app: 'hello', grants: {} } })
    ).body.token
    const children = []
    for (let i = 0; i < 100; i++) {
      children.push(api('POST', '/v1/tokens/attenuate', { auth: parent, json: {} }))
    }
    expect((await Promise.all(children)).every((a) => a.status === 201)).toBe(true)
    expectError(
      await api('POST', '/v1/tokens/attenuate', { auth: parent, json: {} }),
      429,
      'limit_exceeded',
    )
    const listed = (await api('GET', '/v1/apps/hello', { auth: adminKey })).body
    expect(listed.tokens.length).toBeLessThanOrEqual(100)
    expect(listed.tokenCount).toBeGreaterThan(100)
    // Pages, and the tokens an admin granted apart from their children.
    const first = (await api('GET', '/v1/tokens?app=hello&limit=50', { auth: adminKey })).body
    expect(first.tokens).toHaveLength(50)
    const second = (
      await api('GET', `/v1/tokens?app=hello&limit=50&cursor=${first.nextCursor}`, {
        auth: adminKey,
      })
    ).body
    expect(second.tokens[0].jti).not.toBe(first.tokens[49].jti)
    expect(
      new Set([...first.tokens, ...second.tokens].map((t: { jti: string }) => t.jti)).size,
    ).toBe(100)
    const granted = (
      await api('GET', '/v1/tokens?app=hello&granted=true&limit=1000', { auth: adminKey })
    ).body
    expect(granted.tokens.every((t: { parent?: string }) => t.parent === undefined)).toBe(true)
    expect(granted.tokens.length).toBeLessThan(20)
  })

  it('keeps a family’s newest 100 expired children only: ttlSeconds 1 over and over does not grow the index (fifth outside attack)', async () => {
    const granted = (
      await api('POST', '/v1/tokens', { auth: adminKey, json: { app: 'hello', grants: {} } })
    ).body
    const batch = async () => {
      const answers = await Promise.all(
        Array.from({ length: 100 }, () =>
          api('POST', '/v1/tokens/attenuate', { auth: granted.token, json: { ttlSeconds: 1 } }),
        ),
      )
      expect(answers.map((a) => a.status).every((s) => s === 201)).toBe(true)
      // Expired (exp is in whole seconds): each frees its slot under the live-children cap.
      await new Promise((r) => setTimeout(r, 2100))
      return answers.map((a) => a.body.jti as string)
    }
    const first = await batch()
    const second = await batch()
    const live = await api('POST', '/v1/tokens/attenuate', { auth: granted.token, json: {} })
    expect(live.status).toBe(201)
    const children = (
      await api('GET', '/v1/tokens?app=hello&limit=1000', { auth: adminKey })
    ).body.tokens.filter((t: { parent?: string }) => t.parent === granted.jti)
    const listed = new Set(children.map((t: { jti: string }) => t.jti))
    // The live child and the newest 100 expired ones; the older expired ones are gone.
    expect(listed.size).toBe(101)
    expect(listed.has(live.body.jti)).toBe(true)
    expect(second.every((jti) => listed.has(jti))).toBe(true)
    expect(first.some((jti) => listed.has(jti))).toBe(false)
    // From the file too, not just from the listing.
    const stored = (await readTokenEntries(dataDir)).filter((t) => t.parent === granted.jti)
    expect(stored).toHaveLength(101)
  }, 30_000)

  it('holds the live-children cap against a burst of concurrent attenuations (sixth outside attack)', async () => {
    const granted = (
      await api('POST', '/v1/tokens', { auth: adminKey, json: { app: 'hello', grants: {} } })
    ).body
    const answers = await Promise.all(
      Array.from({ length: 130 }, () =>
        api('POST', '/v1/tokens/attenuate', { auth: granted.token, json: {} }),
      ),
    )
    const made = answers.filter((a) => a.status === 201).length
    expect(made).toBe(100)
    expect(
      answers.filter((a) => a.status === 429).every((a) => a.body.error.code === 'limit_exceeded'),
    ).toBe(true)
    const children = (
      await api('GET', '/v1/tokens?app=hello&limit=1000', { auth: adminKey })
    ).body.tokens.filter((t: { parent?: string }) => t.parent === granted.jti)
    expect(children).toHaveLength(100)
  }, 30_000)

  it('reports a guest failure with its code and the report', async () => {
    const loop = (await upload(await compileWat(infiniteLoop), 'looper')).body
    const token = (
      await api('POST', '/v1/tokens', {
        auth: adminKey,
        json: { app: loop.id, limits: { fuel: 100_000 } },
      })
    ).body.token
    const run = await api('POST', `/v1/apps/${loop.id}/invoke`, {
      auth: token,
      json: { input: {} },
    })
    expectError(run, 422, 'fuel_exhausted')
    expect(run.body.report.outcome).toBe('fuel_exhausted')
    expect((await api('GET', '/healthz')).status).toBe(200)
  })

  it('the kill switch ends a running run, refuses new ones, and lifts', async () => {
    const spinner = actionWat(`
      (func (export "run") (param i32 i32) (result i32)
        (loop $l (br $l))
        (i32.const 1))`)
    const loop = (await upload(await compileWat(spinner), 'spinner')).body
    const token = (
      await api('POST', '/v1/tokens', {
        auth: adminKey,
        json: { app: loop.id, limits: { fuel: 1e15, timeoutMs: 30_000 } },
      })
    ).body.token
    const running = api('POST', `/v1/apps/${loop.id}/invoke`, { auth: token, json: { input: {} } })
    await new Promise((r) => setTimeout(r, 300))
    const disabled = await api('POST', `/v1/apps/${loop.id}/disable`, { auth: adminKey })
    expect(disabled.body.status).toBe('disabled')
    expectError(await running, 403, 'app_disabled')
    expectError(
      await api('POST', `/v1/apps/${loop.id}/invoke`, { auth: token, json: { input: {} } }),
      403,
      'app_disabled',
    )
    expect((await api('POST', `/v1/apps/${loop.id}/enable`, { auth: adminKey })).body.status).toBe(
      'approved',
    )
    const audit = (await api('GET', `/v1/audit?app=${loop.id}&limit=1000`, { auth: auditorKey }))
      .body.records
    expect(
      audit.some(
        (r: { op: string; actor: string }) => r.op === 'app.disable' && r.actor.startsWith('key:'),
      ),
    ).toBe(true)
  })

  it('decommissioning revokes tokens and keeps the audit verifiable', async () => {
    const app = (await upload(await tieredGuest(['log'], 'short-lived'), 'short-lived')).body
    const token = (
      await api('POST', '/v1/tokens', {
        auth: adminKey,
        json: { app: app.id, grants: { log: true } },
      })
    ).body.token
    expect(
      (await api('POST', `/v1/apps/${app.id}/invoke`, { auth: token, json: { input: 'x' } }))
        .status,
    ).toBe(200)
    const gone = await api('DELETE', `/v1/apps/${app.id}`, { auth: adminKey })
    expect(gone.body.status).toBe('decommissioned')
    // Its tokens are revoked: they are refused before anything else is looked at.
    expectError(
      await api('POST', `/v1/apps/${app.id}/invoke`, { auth: token, json: { input: 'x' } }),
      401,
      'token_revoked',
    )
    const tokens = (await api('GET', `/v1/tokens?app=${app.id}`, { auth: adminKey })).body.tokens
    expect(tokens.every((t: { revokedAt?: string }) => t.revokedAt)).toBe(true)
    const verify = await api('GET', '/v1/audit/verify', { auth: auditorKey })
    expect(verify.body).toMatchObject({ ok: true })
    expect(verify.body.lastSeq).toBeGreaterThan(10)
    const head = await api('GET', '/v1/audit/head', { auth: auditorKey })
    expect(head.body.seq).toBeGreaterThanOrEqual(verify.body.lastSeq)
    // The key the checkpoints are signed with, public half only: what a copy is verified with.
    const key = await api('GET', '/v1/audit/key', { auth: auditorKey })
    expect(key.status).toBe(200)
    const publicKey = createPublicKey(key.body.publicKey)
    expect(publicKey.asymmetricKeyType).toBe('ed25519')
    expect(key.body.keyId).toBe(auditKeyId(publicKey))
    expect(key.body.publicKey).not.toContain('PRIVATE')
    expect(
      await verifyAuditFile(join(dataDir, 'audit', 'audit.jsonl'), { checkpointKey: publicKey }),
    ).toMatchObject({ ok: true })
    const ndjson = await fetch(`${server.url}/v1/audit?limit=5`, {
      headers: { authorization: `Bearer ${auditorKey}`, accept: 'application/x-ndjson' },
    })
    const lines = (await ndjson.text()).trim().split('\n')
    expect(lines).toHaveLength(5)
    expect(ndjson.headers.get('x-next-cursor')).toBe('6')
  })
})

describe('secrets and data', () => {
  it('never shows a secret value, and reads, writes and deletes data', async () => {
    const value = 'sk-live-0123456789abcdef'
    expect(
      (await api('PUT', '/v1/secrets/gh_token', { auth: adminKey, json: { value } })).status,
    ).toBe(204)
    const list = await api('GET', '/v1/secrets', { auth: adminKey })
    expect(list.body.secrets.map((s: { name: string }) => s.name)).toContain('gh_token')
    expect(JSON.stringify(list.body)).not.toContain(value)
    expectError(
      await api('PUT', '/v1/secrets/Bad-Name', { auth: adminKey, json: { value } }),
      400,
      'invalid_request',
    )

    const key = encodeURIComponent('contacts/alice')
    expect(
      (
        await api('PUT', `/v1/data/crm/${key}`, {
          auth: adminKey,
          json: { value: { email: 'a@x' } },
        })
      ).status,
    ).toBe(204)
    expect((await api('GET', `/v1/data/crm/${key}`, { auth: adminKey })).body).toEqual({
      value: { email: 'a@x' },
    })
    expect(
      (await api('PUT', '/v1/data/crm/schema', { auth: adminKey, json: { piiFields: ['email'] } }))
        .status,
    ).toBe(204)
    // A data app is high risk while any collection has PII fields.
    const reader = await upload(await tieredGuest(['data']), 'reader')
    expect(reader.body.riskTier).toBe('high')
    expect((await api('DELETE', `/v1/data/crm/${key}`, { auth: adminKey })).body).toEqual({
      deleted: true,
    })
    expectError(await api('GET', `/v1/data/crm/${key}`, { auth: adminKey }), 404, 'not_found')
    const audit = JSON.stringify(
      (await api('GET', '/v1/audit?limit=1000', { auth: auditorKey })).body,
    )
    expect(audit).not.toContain(value)
    expect(audit).toContain('secret.put')
  })
})

describe('the last admin', () => {
  it('cannot be revoked: revoking every other admin works, then the last one is refused', async () => {
    const idOf = (key: string) => key.split('_')[1]!
    const keys = (await api('GET', '/v1/keys', { auth: adminKey })).body.keys
    for (const k of keys) {
      if (k.role === 'admin' && !k.revokedAt && k.id !== idOf(adminKey)) {
        expect((await api('DELETE', `/v1/keys/${k.id}`, { auth: adminKey })).status).toBe(200)
      }
    }
    expectError(
      await api('DELETE', `/v1/keys/${idOf(adminKey)}`, { auth: adminKey }),
      409,
      'conflict',
    )
    expect((await api('GET', '/v1/keys', { auth: adminKey })).status).toBe(200)
  })
})
