import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestWarden } from '../../test/support/warden.js'
import type { TestWarden } from '../../test/support/warden.js'
import type { Warden } from '../../runtime/index.js'
import { auditLogFile, formatVerifyResult, tailAudit, verifyAudit } from './audit.js'
import { parsePiiFields, putData, setDataSchema } from './data.js'
import { listKeys, publicJwks, rotateKey } from './keys.js'
import { packageRoot } from './paths.js'
import { runWithToken } from './run.js'
import { deleteSecret, listSecrets, readSecretValue, setSecret } from './secret.js'
import { attenuateToken, defaultAppId, grantToken, inspectToken, revokeToken } from './token.js'

const root = packageRoot()
const hello = join(root, 'examples/hello/hello.wat')
const runaway = join(root, 'examples/runaway/runaway.wat')

let dataDir: string
let warden: Warden
let host: TestWarden

beforeAll(async () => {
  host = await openTestWarden()
  ;({ warden, dataDir } = host)
})

afterAll(async () => {
  await host?.close()
})

/** The stable code of what `promise` rejects with. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'resolved',
    (error: { code?: string }) => error.code ?? String(error),
  )
}

describe('token grant and run with a token', () => {
  it('grants a token for hello that runs it, log granted', async () => {
    const { token, claims } = await grantToken(warden, { file: hello, grants: { log: true } })
    expect(claims.app.id).toBe('hello')
    expect(claims.exp - claims.iat).toBe(3600)
    expect(claims.grants.log).toBe(true)

    const { invocation, exitCode } = await runWithToken(warden, {
      file: hello,
      input: '{"name":"Ada"}',
      token: `${token}\n`,
    })
    expect(invocation.error).toBeUndefined()
    expect(exitCode).toBe(0)
    expect(invocation.output).toBe('{"name":"Ada"}')
    expect(invocation.logs.map((l) => l.message)).toEqual(['{"name":"Ada"}'])
    expect(invocation.report.tokenJti).toBe(claims.jti)
  })

  it('takes the app id, ttl and limits asked for', async () => {
    const { claims } = await grantToken(warden, {
      file: hello,
      grants: {},
      limits: { fuel: 1_000_000 },
      ttlSeconds: 60,
      appId: 'greeter',
    })
    expect(claims.app.id).toBe('greeter')
    expect(claims.exp - claims.iat).toBe(60)
    expect(claims.limits.fuel).toBe(1_000_000)
    expect(claims.grants).toEqual({ http: [], secrets: [], data: [], log: false })
  })

  it('refuses a token for another build with token_invalid', async () => {
    const { token } = await grantToken(warden, { file: hello, grants: { log: true } })
    expect(await codeOf(runWithToken(warden, { file: runaway, input: '{}', token }))).toBe(
      'token_invalid',
    )
  })

  it('refuses a revoked token, and the tokens derived from it', async () => {
    const { token, claims } = await grantToken(warden, { file: hello, grants: { log: true } })
    const child = await attenuateToken(warden, { parent: token, grants: { log: true } })
    await revokeToken(warden, claims.jti)
    const run = (t: string) => codeOf(runWithToken(warden, { file: hello, input: '{}', token: t }))
    expect(await run(token)).toBe('token_revoked')
    expect(await run(child.token)).toBe('token_revoked')
  })

  it('refuses a grant with an unknown field, bad limits or ttl as invalid_request', async () => {
    for (const options of [
      { grants: { log: true, nope: 1 } },
      { grants: { http: [{ host: 'api.example.com', port: 'x' }] } },
      { grants: {}, limits: { fuel: -1 } },
      { grants: {}, limits: { gas: 1 } },
      { grants: {}, ttlSeconds: 0 },
      { grants: {}, ttlSeconds: 3601 },
      { grants: {}, appId: '-nope' },
    ]) {
      expect(await codeOf(grantToken(warden, { file: hello, ...options }))).toBe('invalid_request')
    }
  })

  it('defaults the app id to the file name, sanitised', () => {
    expect(defaultAppId('examples/hello/hello.wat')).toBe('hello')
    expect(defaultAppId('/tmp/My App (v2).wasm')).toBe('My-App-v2')
    expect(defaultAppId('dir/_hidden.component.wasm')).toBe('hidden.component')
    expect(defaultAppId('dir/---.wasm')).toBe('app')
    expect(defaultAppId(`${'a'.repeat(300)}.wasm`)).toHaveLength(128)
  })
})

describe('token attenuate, inspect', () => {
  it('derives a narrower child that runs with less', async () => {
    const parent = await grantToken(warden, { file: hello, grants: { log: true } })
    const child = await attenuateToken(warden, {
      parent: parent.token,
      grants: { log: false },
      limits: { fuel: 10_000_000 },
      ttlSeconds: 60,
    })
    expect(child.claims.parent).toBe(parent.claims.jti)
    expect(child.claims.limits.fuel).toBe(10_000_000)
    const { invocation } = await runWithToken(warden, {
      file: hello,
      input: '{}',
      token: child.token,
    })
    expect(invocation.ok).toBe(true)
    expect(invocation.logs).toEqual([])
  })

  it('refuses a child wider than its parent with forbidden', async () => {
    const parent = await grantToken(warden, { file: hello, grants: { log: true }, ttlSeconds: 60 })
    for (const wider of [
      { grants: { log: true, http: [{ host: 'api.example.com' }] } },
      { grants: { log: true }, limits: { fuel: 2_000_000_000 } },
      { grants: { log: true }, ttlSeconds: 120 },
    ]) {
      const refused = attenuateToken(warden, { parent: parent.token, ...wider })
      expect(await codeOf(refused)).toBe('forbidden')
    }
  })

  it('refuses a garbage parent with token_invalid', async () => {
    const refused = attenuateToken(warden, { parent: 'a.b.c', grants: {} })
    expect(await codeOf(refused)).toBe('token_invalid')
  })

  it('decodes a token without verifying it, and never shows the signature', async () => {
    const { token, claims } = await grantToken(warden, { file: hello, grants: { log: true } })
    const inspected = inspectToken(token)
    expect(inspected.verified).toBe(false)
    expect(inspected.header).toMatchObject({ alg: 'EdDSA', typ: 'warden-cap+jwt' })
    expect(inspected.claims).toEqual(JSON.parse(JSON.stringify(claims)))
    const signature = token.split('.')[2]!
    expect(JSON.stringify(inspected)).not.toContain(signature)

    const invalid = expect.objectContaining({ code: 'invalid_request' })
    expect(() => inspectToken('not a token')).toThrow(invalid)
    expect(() => inspectToken('e30.bm9wZQ.c2ln')).toThrow(invalid)
  })
})

describe('keys', () => {
  it('lists, rotates and publishes the keys', async () => {
    const before = await listKeys(warden)
    expect(before.filter((k) => k.signing)).toHaveLength(1)
    const rotated = await rotateKey(warden)
    const after = await listKeys(warden)
    expect(after[0]).toMatchObject({ kid: rotated.kid, signing: true })
    expect(after).toHaveLength(before.length + 1)
    const jwks = await publicJwks(warden)
    expect(jwks.keys.map((k) => k.kid)).toContain(rotated.kid)
    expect(JSON.stringify(jwks)).not.toContain('"d"')
  })
})

describe('secrets', () => {
  it('sets a secret read from stdin; list shows its name, never its value', async () => {
    const value = await readSecretValue({ stdin: async () => 's3cr3t-value-42\n' })
    expect(value).toBe('s3cr3t-value-42')
    await setSecret(warden, 'api_key', value)
    const list = await listSecrets(warden)
    expect(list.map((s) => s.name)).toContain('api_key')
    expect(JSON.stringify(list)).not.toContain('s3cr3t')
    expect(await readFile(auditLogFile(dataDir), 'utf8')).not.toContain('s3cr3t')
  })

  it('reads a value from an environment variable, and cuts only one trailing newline', async () => {
    expect(await readSecretValue({ fromEnv: 'V', env: { V: 'abc' } })).toBe('abc')
    expect(await readSecretValue({ stdin: async () => 'abc\n\n' })).toBe('abc\n')
    expect(await readSecretValue({ stdin: async () => 'abc\r\n' })).toBe('abc')
    expect(await codeOf(readSecretValue({ fromEnv: 'V', env: {} }))).toBe('invalid_request')
    expect(await codeOf(readSecretValue({ stdin: async () => '\n' }))).toBe('invalid_request')
  })

  it('deletes a secret; again is not_found; a bad name is invalid_request', async () => {
    await setSecret(warden, 'temp_secret', 'value-to-delete')
    await deleteSecret(warden, 'temp_secret')
    expect((await listSecrets(warden)).map((s) => s.name)).not.toContain('temp_secret')
    expect(await codeOf(deleteSecret(warden, 'temp_secret'))).toBe('not_found')
    expect(await codeOf(setSecret(warden, '../etc', 'x'))).toBe('invalid_request')
  })
})

describe('data', () => {
  it('puts documents and sets a schema; refuses bad names, keys and schemas', async () => {
    await putData(warden, { collection: 'crm', key: 'contacts/alice', value: { name: 'Alice' } })
    await setDataSchema(warden, 'crm', parsePiiFields('email, address.street,'))
    expect(parsePiiFields('')).toEqual([])
    const put = (collection: string, key: string) =>
      codeOf(putData(warden, { collection, key, value: 1 }))
    expect(await put('CRM', 'a')).toBe('invalid_request')
    expect(await put('crm', 'a/../b')).toBe('invalid_request')
    expect(await codeOf(setDataSchema(warden, 'crm', ['a..b']))).toBe('invalid_request')
  })
})

describe('audit', () => {
  it('tails the last records, filtered', async () => {
    const all = await tailAudit(warden.audit, { limit: 10_000 })
    const last = await tailAudit(warden.audit, { limit: 2 })
    expect(last).toEqual(all.slice(-2))
    const hello = await tailAudit(warden.audit, { appId: 'hello' })
    expect(hello.length).toBeGreaterThan(0)
    expect(hello.every((r) => r.appId === 'hello')).toBe(true)
    const run = hello.find((r) => r.kind === 'run' && r.invocationId !== null)!
    const one = await tailAudit(warden.audit, { invocationId: run.invocationId! })
    expect(one.every((r) => r.invocationId === run.invocationId)).toBe(true)
    expect(await codeOf(tailAudit(warden.audit, { limit: 0 }))).toBe('invalid_request')
  })

  // Last: it corrupts the log.
  it('verifies the chain, and names the first bad seq once a byte is edited', async () => {
    const good = await verifyAudit(warden.audit)
    expect(good.ok).toBe(true)
    expect(formatVerifyResult(good)).toMatch(/^ok: \d+ records/)

    const file = auditLogFile(dataDir)
    const lines = (await readFile(file, 'utf8')).split('\n')
    const at = lines[2]!.indexOf('"op":"') + 6
    lines[2] = `${lines[2]!.slice(0, at)}X${lines[2]!.slice(at + 1)}`
    await writeFile(file, lines.join('\n'))

    const bad = await verifyAudit(warden.audit)
    expect(bad).toEqual({ ok: false, firstBadSeq: 3, reason: 'hash-mismatch' })
    expect(formatVerifyResult(bad)).toBe('first bad seq 3 (hash-mismatch)')
  })
})
