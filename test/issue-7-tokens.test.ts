/**
 * Issue 7, holes found from outside, the token half, through `openWarden`: a run verifies what
 * minting enforces even for a token our mint never made; an unreadable revocation store fails
 * closed with `store_unavailable`; a refused mint or attenuation is an audit record.
 */
import { randomUUID } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { AuditRecord } from '../runtime/audit/index.js'
import type { LoadedComponent } from '../runtime/index.js'
import { TOKEN_TYPE } from '../runtime/tokens/index.js'
import type { AttenuationRequest, MintRequest } from '../runtime/tokens/index.js'
import type { Warden } from '../runtime/warden.js'
import { auditLogPath } from '../runtime/warden.js'
import { attenuateToken, grantToken } from '../sdk/cli/token.js'
import { guestFile } from './support/wat.js'
import { openTestWarden } from './support/warden.js'
import type { TestWarden } from './support/warden.js'

const HELLO = new URL('../examples/hello/hello.wat', import.meta.url).pathname
// The test Warden's `maxTokenLifetimeSeconds`.
const MAX = 3600

/** The stable code of what `promise` rejects with. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'resolved',
    (error: { code?: string }) => error.code ?? String(error),
  )
}

/** The records appended by `action`, and the code it was refused with. */
async function audited(
  warden: Warden,
  action: () => Promise<unknown>,
): Promise<{ code: string; records: AuditRecord[] }> {
  const before = warden.audit.head.seq
  const code = await codeOf(action())
  const records = (await warden.audit.read({ limit: 10_000 })).filter((r) => r.seq > before)
  return { code, records }
}

function now(): number {
  return Math.floor(Date.now() / 1000)
}

describe('run-time verification enforces what minting enforces', () => {
  let host: TestWarden
  let warden: Warden
  let app: LoadedComponent

  beforeAll(async () => {
    host = await openTestWarden()
    warden = host.warden
    app = await warden.load(await guestFile('echo'))
  })

  afterAll(async () => {
    await host?.close()
  })

  it('refuses ring-signed tokens our mint would have refused, and audits each', async () => {
    const { token, claims } = await warden.grantToken({
      appId: 'echo',
      digest: app.digest,
      grants: { log: true },
      lifetimeSeconds: 600,
    })
    const run = await warden.run(app, '"hi"', { token })
    expect(run.error).toBeUndefined()

    const t = now()
    const windows = [
      { iat: t, nbf: t, exp: t + MAX + 1 },
      { iat: t - 30 * 86_400, nbf: t - 30 * 86_400, exp: t + 600 },
      { iat: t + 3600, nbf: t, exp: t + 3600 + 60 },
    ]
    const forged = await Promise.all(
      windows.map((w) => warden.keys.sign({ ...claims, jti: randomUUID(), ...w }, TOKEN_TYPE)),
    )
    // A child signed with the ring's key: its lifetime is capped as well.
    forged.push(
      await warden.keys.sign(
        { ...claims, jti: randomUUID(), parent: claims.jti, chain: [claims.jti], ...windows[0] },
        TOKEN_TYPE,
      ),
    )
    for (const bad of forged) {
      const { code, records } = await audited(warden, () => warden.run(app, '"hi"', { token: bad }))
      expect(code).toBe('token_invalid')
      expect(records).toMatchObject([{ kind: 'run', decision: 'deny', reason: 'token_invalid' }])
      // And no child may be derived from it.
      expect(await codeOf(warden.attenuateToken(bad, {}))).toBe('token_invalid')
    }
  })
})

describe('an unreadable revocation store fails closed with store_unavailable', () => {
  let host: TestWarden
  let warden: Warden
  let app: LoadedComponent
  let store: string

  beforeAll(async () => {
    host = await openTestWarden()
    warden = host.warden
    app = await warden.load(await guestFile('echo'))
    store = join(host.dataDir, 'revoked-tokens.txt')
  })

  afterEach(async () => {
    await rm(store, { recursive: true, force: true })
  })

  afterAll(async () => {
    await host?.close()
  })

  async function mint(): Promise<string> {
    const grant = { appId: 'echo', digest: app.digest, grants: { log: true }, lifetimeSeconds: 600 }
    return (await warden.grantToken(grant)).token
  }

  it.each([
    // Root reads through chmod: a directory is what no one can read as the file.
    ['a directory in place of the file', () => mkdir(store)],
    ['JSON instead of token ids', () => writeFile(store, `{"revoked":["${randomUUID()}"]}\n`)],
    ['binary garbage', () => writeFile(store, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0a]))],
  ])('refuses runs and attenuations over %s, and audits them', async (_, corrupt) => {
    const token = await mint()
    await corrupt()

    const run = await audited(warden, () => warden.run(app, '"hi"', { token }))
    expect(run.code).toBe('store_unavailable')
    expect(run.records).toMatchObject([
      { kind: 'run', decision: 'deny', reason: 'store_unavailable' },
    ])

    const child = await audited(warden, () => warden.attenuateToken(token, {}))
    expect(child.code).toBe('store_unavailable')
    expect(child.records).toMatchObject([
      { kind: 'admin', op: 'token.attenuate', decision: 'deny', reason: 'store_unavailable' },
    ])

    // Once the store is readable again, so is the token.
    await rm(store, { recursive: true, force: true })
    expect((await warden.run(app, '"hi"', { token })).error).toBeUndefined()
    expect((await warden.audit.verify()).ok).toBe(true)
  })

  it('refuses to revoke into an unwritable store, and audits it', async () => {
    await mkdir(store)
    const jti = randomUUID()
    const { code, records } = await audited(warden, () => warden.revokeToken(jti))
    expect(code).toBe('store_unavailable')
    expect(records).toMatchObject([
      {
        kind: 'admin',
        op: 'token.revoke',
        decision: 'deny',
        reason: 'store_unavailable',
        target: jti,
      },
    ])
  })
})

describe('a refused mint or attenuation is an audit record', () => {
  let host: TestWarden
  let warden: Warden
  let app: LoadedComponent
  /** Every token this describe handled: none may appear in the audit log. */
  const tokens: string[] = []

  beforeAll(async () => {
    host = await openTestWarden()
    warden = host.warden
    app = await warden.load(await guestFile('echo'))
  })

  afterAll(async () => {
    await host?.close()
  })

  async function parent(lifetimeSeconds = 600) {
    const minted = await warden.grantToken({
      appId: 'echo',
      digest: app.digest,
      grants: { log: true },
      limits: { fuel: 1_000_000 },
      lifetimeSeconds,
    })
    tokens.push(minted.token)
    return minted
  }

  it('audits a refused grant with deny and the code', async () => {
    const request = {
      appId: 'echo',
      digest: app.digest,
      grants: { log: true },
      lifetimeSeconds: 60,
    }
    const cases: [Partial<MintRequest>, string][] = [
      [{ grants: { shell: true } as never }, 'invalid_request'],
      [{ grants: { http: [{ host: 'EVIL.com' }] } }, 'invalid_request'],
      [{ lifetimeSeconds: MAX + 1 }, 'invalid_request'],
      [{ limits: { fuel: 0 } }, 'invalid_request'],
    ]
    for (const [bad, reason] of cases) {
      const { code, records } = await audited(warden, () =>
        warden.grantToken({ ...request, ...bad }, 'admin:k1'),
      )
      expect(code).toBe(reason)
      expect(records).toMatchObject([
        {
          kind: 'admin',
          op: 'token.grant',
          actor: 'admin:k1',
          decision: 'deny',
          reason,
          appId: 'echo',
          digest: app.digest,
          tokenJti: null,
          target: null,
        },
      ])
    }
  })

  it('audits a refused attenuation with deny, the code and the verified parent', async () => {
    const { token, claims } = await parent(60)
    const cases: [AttenuationRequest, string][] = [
      [{ grants: { log: true, http: [{ host: 'api.example.com' }] } }, 'forbidden'],
      [{ limits: { fuel: 2_000_000 } }, 'forbidden'],
      [{ lifetimeSeconds: 120 }, 'forbidden'],
      [{ lifetimeSeconds: MAX + 1 }, 'invalid_request'],
      [{ grants: { shell: true } as never }, 'invalid_request'],
    ]
    for (const [request, reason] of cases) {
      const { code, records } = await audited(warden, () => warden.attenuateToken(token, request))
      expect(code).toBe(reason)
      expect(records).toMatchObject([
        {
          kind: 'admin',
          op: 'token.attenuate',
          actor: `holder:${claims.jti}`,
          decision: 'deny',
          reason,
          appId: 'echo',
          digest: app.digest,
          tokenJti: claims.jti,
          target: null,
        },
      ])
    }
  })

  it('audits an attenuation of a revoked, foreign or garbage parent, naming no one', async () => {
    const revoked = await parent()
    await warden.revokeToken(revoked.claims.jti)
    const other = await host.warden.grantToken({
      appId: 'echo',
      digest: `sha256:${'cd'.repeat(32)}`,
      grants: {},
      lifetimeSeconds: 60,
    })
    tokens.push(other.token)
    for (const [token, digest, reason] of [
      [revoked.token, undefined, 'token_revoked'],
      [other.token, app.digest, 'token_invalid'],
      ['not.a.token', undefined, 'token_invalid'],
    ] as const) {
      const { code, records } = await audited(warden, () =>
        warden.attenuateToken(token, {}, digest),
      )
      expect(code).toBe(reason)
      expect(records).toMatchObject([
        {
          kind: 'admin',
          op: 'token.attenuate',
          actor: 'holder:unknown',
          decision: 'deny',
          reason,
          tokenJti: null,
          target: null,
        },
      ])
    }
  })

  it('audits what the CLI refuses before it reaches the Warden', async () => {
    const grant = await audited(warden, () =>
      grantToken(warden, { file: HELLO, grants: { shell: true } }),
    )
    expect(grant.code).toBe('invalid_request')
    expect(grant.records).toMatchObject([
      { kind: 'admin', op: 'token.grant', decision: 'deny', reason: 'invalid_request' },
    ])
    const { token } = await parent()
    const child = await audited(warden, () =>
      attenuateToken(warden, { parent: token, grants: { log: true }, limits: { cpus: 2 } }),
    )
    expect(child.code).toBe('invalid_request')
    expect(child.records).toMatchObject([
      { kind: 'admin', op: 'token.attenuate', decision: 'deny', reason: 'invalid_request' },
    ])
  })

  it('never writes a token into the log, and the chain still verifies', async () => {
    expect((await warden.audit.verify()).ok).toBe(true)
    const log = await readFile(auditLogPath(host.dataDir), 'utf8')
    expect(log).toContain('"decision":"deny"')
    expect(tokens.length).toBeGreaterThan(0)
    for (const token of tokens) {
      for (const part of token.split('.')) {
        expect(log).not.toContain(part)
      }
    }
  })
})
