import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenError } from '../errors.js'
import { attenuate } from './attenuate.js'
import type { AttenuateOptions, AttenuationRequest } from './attenuate.js'
import { MAX_CHAIN_LENGTH, TOKEN_TYPE } from './claims.js'
import type { CapabilityClaims, GrantsInput } from './claims.js'
import { createKeyStore } from './keys.js'
import type { KeyStore } from './keys.js'
import { AttenuationRefused, mintToken } from './mint.js'
import { createMemoryRevocationList } from './revocations.js'
import { verifyToken } from './verify.js'

const DIGEST = `sha256:${'ab'.repeat(32)}`
const NOW = 1_700_000_000
const PARENT_GRANTS: GrantsInput = {
  http: [
    { host: '*.github.com', methods: ['GET', 'HEAD'], pathPrefix: '/repos/' },
    { scheme: 'http', host: '127.0.0.1', port: 8080, allowPrivate: true },
    { host: 'status.example.com' },
  ],
  secrets: [
    { name: 'github_token', hosts: ['api.github.com', 'uploads.github.com'], reveal: false },
  ],
  data: [
    { collection: 'crm', prefix: 'contacts/', pii: false },
    { collection: 'hr', prefix: '', wholeCollection: true, pii: true },
  ],
  log: false,
}

let dataDir: string
let keys: KeyStore
let parentToken: string
let parent: CapabilityClaims
const revocations = createMemoryRevocationList()
const options: AttenuateOptions = { revocations, maxLifetimeSeconds: 3600, now: NOW + 100 }

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-attenuate-'))
  keys = createKeyStore(dataDir)
  const minted = await mintToken(
    keys,
    {
      appId: 'hello',
      digest: DIGEST,
      grants: PARENT_GRANTS,
      limits: { fuel: 1e6 },
      lifetimeSeconds: 600,
    },
    { maxLifetimeSeconds: 3600, now: NOW },
  )
  parentToken = minted.token
  parent = minted.claims
})

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

async function refused(request: AttenuationRequest, opts = options): Promise<WardenError> {
  try {
    await attenuate(keys, parentToken, request, opts)
  } catch (error) {
    expect(error).toBeInstanceOf(WardenError)
    return error as WardenError
  }
  throw new Error('expected a refusal')
}

describe('attenuate', () => {
  it('derives a narrower child that verifies and points at its parent', async () => {
    const child = await attenuate(
      keys,
      parentToken,
      {
        grants: {
          http: [{ host: 'api.github.com', methods: ['GET'], pathPrefix: '/repos/acme/' }],
          secrets: [{ name: 'github_token', hosts: ['api.github.com'] }],
          data: [{ collection: 'hr', prefix: 'people/' }],
        },
        limits: { fuel: 1000, memoryMb: 16 },
        lifetimeSeconds: 60,
      },
      options,
    )
    expect(child.claims).toMatchObject({
      app: parent.app,
      sub: parent.sub,
      parent: parent.jti,
      chain: [parent.jti],
      iat: NOW + 100,
      exp: NOW + 160,
    })
    expect(child.claims.limits).toEqual({ ...parent.limits, fuel: 1000, memoryMb: 16 })
    const verified = await verifyToken(keys, child.token, {
      digest: DIGEST,
      revocations,
      maxLifetimeSeconds: options.maxLifetimeSeconds,
      now: NOW + 100,
    })
    expect(verified).toEqual(child.claims)
  })

  it("keeps the parent's grants and limits, and expires with it, by default", async () => {
    const child = await attenuate(keys, parentToken, {}, options)
    expect(child.claims.grants).toEqual(parent.grants)
    expect(child.claims.limits).toEqual(parent.limits)
    expect(child.claims.exp).toBe(parent.exp)
  })

  it('caps the default lifetime at the policy maximum', async () => {
    // Issued by a host whose clock is 20 s ahead (within the leeway): it verifies, and has
    // more time left than the maximum.
    const now = options.now!
    const window = { iat: now + 20, nbf: now, exp: now + 620 }
    const ahead = await keys.sign({ ...parent, jti: crypto.randomUUID(), ...window }, TOKEN_TYPE)
    const child = await attenuate(keys, ahead, {}, { ...options, maxLifetimeSeconds: 600 })
    expect(child.claims.exp).toBe(now + 600)
  })

  it('derives grandchildren with the whole chain', async () => {
    const child = await attenuate(keys, parentToken, { grants: { log: false } }, options)
    const grandchild = await attenuate(keys, child.token, {}, options)
    expect(grandchild.claims.chain).toEqual([parent.jti, child.claims.jti])
    expect(grandchild.claims.parent).toBe(child.claims.jti)
  })

  it.each<[string, GrantsInput, string]>([
    ['a wider host', { http: [{ host: 'github.com', pathPrefix: '/repos/' }] }, 'grants.http[0]'],
    [
      'a wildcard over an exact host',
      { http: [{ host: '*.status.example.com' }] },
      'grants.http[0]',
    ],
    ['a wider wildcard', { http: [{ host: '*.example.com' }] }, 'grants.http[0]'],
    [
      'another host',
      { http: [{ host: 'api.gitlab.com', pathPrefix: '/repos/' }] },
      'grants.http[0]',
    ],
    [
      'an extra method',
      { http: [{ host: 'api.github.com', methods: ['POST'], pathPrefix: '/repos/' }] },
      'grants.http[0]',
    ],
    ['a shorter path', { http: [{ host: 'api.github.com', pathPrefix: '/' }] }, 'grants.http[0]'],
    [
      'another port',
      { http: [{ host: 'api.github.com', port: 8443, pathPrefix: '/repos/' }] },
      'grants.http[0]',
    ],
    [
      'plain http',
      { http: [{ scheme: 'http', host: 'api.github.com', pathPrefix: '/repos/' }] },
      'grants.http[0]',
    ],
    [
      'allowPrivate',
      { http: [{ host: 'api.github.com', pathPrefix: '/repos/', allowPrivate: true }] },
      'grants.http[0]',
    ],
    ['the whole wildcard host', { http: [{ host: '*.github.com' }] }, 'grants.http[0]'],
    [
      'a second wide entry',
      { http: [{ scheme: 'http', host: '127.0.0.1', port: 8080 }, { host: 'evil.com' }] },
      'grants.http[1]',
    ],
    ['another secret', { secrets: [{ name: 'stripe_key' }] }, 'grants.secrets[0]'],
    [
      'an extra secret host',
      { secrets: [{ name: 'github_token', hosts: ['evil.com'] }] },
      'grants.secrets[0]',
    ],
    ['reveal', { secrets: [{ name: 'github_token', reveal: true }] }, 'grants.secrets[0]'],
    ['a shorter data prefix', { data: [{ collection: 'crm', prefix: 'con' }] }, 'grants.data[0]'],
    [
      'the whole collection',
      { data: [{ collection: 'crm', prefix: '', wholeCollection: true }] },
      'grants.data[0]',
    ],
    ['pii', { data: [{ collection: 'crm', prefix: 'contacts/', pii: true }] }, 'grants.data[0]'],
    ['another collection', { data: [{ collection: 'billing', prefix: 'x' }] }, 'grants.data[0]'],
    ['log', { log: true }, 'grants.log'],
  ])('refuses %s with forbidden, naming the grant', async (_, grants, path) => {
    const err = await refused({ grants })
    expect(err.code).toBe('forbidden')
    expect(err).toBeInstanceOf(AttenuationRefused)
    expect((err as AttenuationRefused).path).toBe(path)
  })

  it("refuses a limit above the parent's", async () => {
    const err = await refused({ limits: { fuel: 1e6 + 1 } })
    expect(err.code).toBe('forbidden')
    expect((err as AttenuationRefused).path).toBe('limits.fuel')
    const memory = await refused({ limits: { memoryMb: 65 } })
    expect((memory as AttenuationRefused).path).toBe('limits.memoryMb')
  })

  it("refuses a lifetime past the parent's exp or above the maximum", async () => {
    const late = await refused({ lifetimeSeconds: 501 })
    expect(late.code).toBe('forbidden')
    expect((late as AttenuationRefused).path).toBe('exp')
    const long = await refused({ lifetimeSeconds: 3601 })
    expect(long.code).toBe('invalid_request')
  })

  it('refuses a malformed request with invalid_request', async () => {
    for (const request of [
      { grants: { http: [{ host: 'api.github.com', pathPrefix: '/repos/', extra: 1 }] } },
      { grants: { shell: true } },
      { grants: { secrets: [{ name: 'github_token', hosts: ['*.github.com'] }] } },
      { scopes: ['all'] },
      { limits: { fuel: -1 } },
      { lifetimeSeconds: 0 },
    ]) {
      const err = await refused(request as AttenuationRequest)
      expect(err.code).toBe('invalid_request')
    }
  })

  it('refuses to attenuate a revoked, expired or foreign parent', async () => {
    const revoked = await refused(
      {},
      { ...options, revocations: createMemoryRevocationList([parent.jti]) },
    )
    expect(revoked.code).toBe('token_revoked')
    const expired = await refused({}, { ...options, now: parent.exp + 30 })
    expect(expired.code).toBe('token_expired')
    // Within the leeway the parent verifies, but it has no time left to give.
    const inLeeway = await refused({}, { ...options, now: parent.exp + 10 })
    expect(inLeeway.code).toBe('token_expired')
    const otherBuild = await refused({}, { ...options, digest: `sha256:${'cd'.repeat(32)}` })
    expect(otherBuild.code).toBe('token_invalid')
    const garbage = await attenuate(keys, 'not.a.token', {}, options).catch((e) => e)
    expect(garbage.code).toBe('token_invalid')
  })

  it('refuses to attenuate a ring-signed parent that minting would have refused', async () => {
    const now = options.now!
    for (const window of [
      // Longer than the maximum, though inside its window now.
      { iat: now - 10 * 86_400, nbf: now - 10 * 86_400, exp: now + 600 },
      { iat: now, nbf: now, exp: now + options.maxLifetimeSeconds + 1 },
      // Issued in the future.
      { iat: now + 600, nbf: now, exp: now + 900 },
    ]) {
      const forged = await keys.sign({ ...parent, jti: crypto.randomUUID(), ...window }, TOKEN_TYPE)
      const err = await attenuate(keys, forged, {}, options).catch((e) => e)
      expect(err.code).toBe('token_invalid')
    }
  })

  it('refuses a parent longer than the maximum in force now (it was lowered)', async () => {
    const err = await refused({}, { ...options, maxLifetimeSeconds: 599 })
    expect(err.code).toBe('token_invalid')
  })

  it(`stops at ${MAX_CHAIN_LENGTH} ancestors`, async () => {
    let token = parentToken
    for (let depth = 1; depth <= MAX_CHAIN_LENGTH; depth++) {
      token = (await attenuate(keys, token, {}, options)).token
    }
    const err = await attenuate(keys, token, {}, options).catch((e) => e)
    expect(err.code).toBe('forbidden')
    expect((err as AttenuationRefused).path).toBe('chain')
  })
})

describe('mintToken with a parent', () => {
  it('refuses anything wider, whoever calls it', async () => {
    const request = {
      appId: 'hello',
      digest: DIGEST,
      grants: { log: true },
      lifetimeSeconds: 60,
      parent,
    }
    const policy = { maxLifetimeSeconds: 3600, now: NOW }
    const wider = await mintToken(keys, request, policy).catch((e) => e)
    expect(wider.code).toBe('forbidden')
    const otherApp = await mintToken(
      keys,
      { ...request, appId: 'other', grants: {} },
      policy,
    ).catch((e) => e)
    expect(otherApp.code).toBe('forbidden')
    expect((otherApp as AttenuationRefused).path).toBe('app')
  })
})
