/**
 * Every route, table-driven: a bad body or query answers `invalid_request`, an unknown id
 * `not_found` (for invoke, the token is checked first: `token_invalid`), always in the one
 * error shape, never `internal`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { adminKeyPath, startServer } from '../control-plane/index.js'
import type { RunningServer } from '../control-plane/index.js'
import { resolveHostConfig } from '../runtime/index.js'

let dataDir: string
let server: RunningServer
let admin: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-table-'))
  const config = { ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir }), poolSize: 1 }
  server = await startServer({ config, port: 0, host: '127.0.0.1' })
  admin = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
})

afterAll(async () => {
  await server?.close()
  await rm(dataDir, { recursive: true, force: true })
})

async function call(method: string, path: string, body?: string, auth = admin) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
    body: body ?? null,
  })
  const answer = (await response.json()) as { error?: { code: string; message: string } }
  return { status: response.status, code: answer.error?.code, message: answer.error?.message }
}

const BAD_BODIES: [string, string, string][] = [
  ['POST', '/v1/keys', '{"role":"root","label":"x"}'],
  ['POST', '/v1/keys', '{"role":"admin","label":"x","extra":1}'],
  ['POST', '/v1/tokens', '{"app":"x","grants":{"http":[{"host":"*.com"}]}}'],
  ['POST', '/v1/tokens', '{"app":"x","ttlSeconds":-1}'],
  ['POST', '/v1/tokens', '{"app":"x","limits":{"fuel":0}}'],
  ['PUT', '/v1/secrets/gh', '{"value":""}'],
  ['PUT', '/v1/secrets/gh', '{"valu":"x"}'],
  ['PUT', '/v1/data/crm/schema', '{"piiFields":"email"}'],
  ['PUT', '/v1/data/crm/a', '{"value":1,"more":2}'],
  ['PUT', '/v1/data/crm/deep', `{"value":${'['.repeat(100)}1${']'.repeat(100)}}`],
  ['PUT', '/v1/data/CRM/a', '{"value":1}'],
  ['PUT', '/v1/data/crm/..%2Fx', '{"value":1}'],
  ['PUT', '/v1/secrets/Bad-Name', '{"value":"x"}'],
  ['GET', '/v1/audit?limit=0', ''],
  ['GET', '/v1/audit?decision=maybe', ''],
  ['GET', '/v1/audit?since=yesterday', ''],
  ['GET', '/v1/apps?status=unknown', ''],
  ['DELETE', '/v1/tokens/no', ''],
  ['DELETE', '/v1/keys/zz', ''],
  ['POST', '/v1/apps/x/route', '{"jti":"0"}'],
  ['POST', '/v1/apps/x/route', '{"token":""}'],
  ['POST', '/v1/apps/x/route', '{"grants":{},"ttlSeconds":0}'],
]

it('answers every malformed body, query or parameter with invalid_request', async () => {
  for (const [method, path, body] of BAD_BODIES) {
    const answer = await call(method, path, body || undefined)
    expect({ method, path, body, status: answer.status, code: answer.code }).toEqual({
      method,
      path,
      body,
      status: 400,
      code: 'invalid_request',
    })
  }
  for (const [method, path] of [
    ['POST', '/v1/keys'],
    ['POST', '/v1/tokens'],
    ['PUT', '/v1/secrets/gh'],
    ['PUT', '/v1/data/crm/a'],
  ] as const) {
    expect((await call(method, path, '{not json')).code).toBe('invalid_request')
  }
})

it('answers every unknown id with not_found, and invoke with token_invalid', async () => {
  const unknown: [string, string, string?][] = [
    ['GET', '/v1/apps/no-such-app'],
    ['POST', '/v1/apps/no-such-app/approve'],
    ['POST', '/v1/apps/no-such-app/disable'],
    ['POST', '/v1/apps/no-such-app/enable'],
    ['DELETE', '/v1/apps/no-such-app'],
    ['DELETE', '/v1/keys/0123456789abcdef'],
    ['GET', '/v1/data/crm/nothing'],
    ['GET', '/v1/invocations/no-such-run'],
    ['GET', '/v1/tokens?app=no-such-app'],
    ['POST', '/v1/tokens', '{"app":"no-such-app"}'],
    ['POST', '/v1/apps/no-such-app/route', '{}'],
    ['GET', '/v1/apps/no-such-app/route'],
    ['DELETE', '/v1/apps/no-such-app/route'],
    ['GET', '/apps/no-such-app/'],
    ['PATCH', '/apps/no-such-app/x'],
  ]
  for (const [method, path, body] of unknown) {
    const answer = await call(method, path, body)
    expect({ method, path, status: answer.status, code: answer.code }).toEqual({
      method,
      path,
      status: 404,
      code: 'not_found',
    })
  }
  const invoke = await call('POST', '/v1/apps/no-such-app/invoke', '{"input":1}', 'a.b.c')
  expect(invoke).toMatchObject({ status: 401, code: 'token_invalid' })
})
