import { createPublicKey } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { base64url, decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenError } from '../errors.js'
import type { WardenErrorCode } from '../errors.js'
import { attenuate } from './attenuate.js'
import { TOKEN_TYPE } from './claims.js'
import type { CapabilityClaims } from './claims.js'
import { createKeyStore } from './keys.js'
import type { KeyStore } from './keys.js'
import { mintToken } from './mint.js'
import type { MintRequest } from './mint.js'
import { createMemoryRevocationList } from './revocations.js'
import { verifyToken } from './verify.js'

const DIGEST = `sha256:${'ab'.repeat(32)}`
const OTHER_DIGEST = `sha256:${'cd'.repeat(32)}`
const NOW = 1_700_000_000
const POLICY = { maxLifetimeSeconds: 3600, now: NOW }
const REQUEST: MintRequest = {
  appId: 'hello',
  digest: DIGEST,
  grants: {
    http: [{ host: 'api.github.com', methods: ['GET'], pathPrefix: '/repos/' }],
    secrets: [{ name: 'github_token', hosts: ['api.github.com'] }],
    data: [{ collection: 'crm', prefix: 'contacts/' }],
    log: true,
  },
  limits: { fuel: 1_000_000 },
  lifetimeSeconds: 600,
}

let dataDir: string
let keys: KeyStore
let token: string
let claims: CapabilityClaims
let kid: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-verify-'))
  keys = createKeyStore(dataDir)
  ;({ token, claims } = await mintToken(keys, REQUEST, POLICY))
  kid = decodeProtectedHeader(token).kid!
})

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

function verify(t: string, options: Partial<Parameters<typeof verifyToken>[2]> = {}) {
  return verifyToken(keys, t, {
    digest: DIGEST,
    revocations: createMemoryRevocationList(),
    maxLifetimeSeconds: POLICY.maxLifetimeSeconds,
    now: NOW,
    ...options,
  })
}

/** The failure's code; also checks that nothing in the error repeats the token. */
async function refusal(t: string, promise: Promise<unknown>): Promise<WardenErrorCode> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(WardenError)
    const err = error as WardenError
    expect(err.cause).toBeUndefined()
    const shown = `${err.message} ${JSON.stringify(err)} ${String(err.stack)}`
    for (const part of t.split('.').filter((p) => p.length >= 8)) {
      expect(shown).not.toContain(part)
    }
    const jti = (() => {
      try {
        return decodeJwt(t).jti
      } catch {
        return undefined
      }
    })()
    if (typeof jti === 'string' && jti.length > 0) {
      expect(shown).not.toContain(jti)
    }
    return err.code
  }
  throw new Error('expected a refusal')
}

function payload(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...claims, jti: crypto.randomUUID(), ...overrides }
}

function b64json(value: unknown): string {
  return base64url.encode(JSON.stringify(value))
}

describe('mintToken', () => {
  it('mints normalised claims with a random jti', async () => {
    expect(claims).toMatchObject({
      iss: 'warden',
      aud: 'warden',
      sub: 'app:hello',
      iat: NOW,
      nbf: NOW,
      exp: NOW + 600,
      app: { id: 'hello', digest: DIGEST },
      chain: [],
    })
    expect(claims.parent).toBeUndefined()
    expect(claims.grants.http[0]).toEqual({
      scheme: 'https',
      host: 'api.github.com',
      port: 443,
      methods: ['GET'],
      pathPrefix: '/repos/',
    })
    expect(claims.limits.fuel).toBe(1_000_000)
    expect(claims.limits.memoryMb).toBe(64)
    const again = await mintToken(keys, REQUEST, POLICY)
    expect(again.claims.jti).not.toBe(claims.jti)
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'EdDSA', typ: TOKEN_TYPE, kid })
  })

  it('refuses a lifetime above the maximum with invalid_request', async () => {
    const err = await mintToken(keys, { ...REQUEST, lifetimeSeconds: 3601 }, POLICY).catch((e) => e)
    expect(err.code).toBe('invalid_request')
    for (const lifetimeSeconds of [0, -1, 1.5]) {
      const bad = await mintToken(keys, { ...REQUEST, lifetimeSeconds }, POLICY).catch((e) => e)
      expect(bad.code).toBe('invalid_request')
    }
  })

  it('refuses unknown fields in a grant entry and malformed app facts', async () => {
    const grants = { http: [{ host: 'a.com', followRedirects: true }] } as never
    for (const request of [
      { ...REQUEST, grants },
      { ...REQUEST, grants: { shell: true } as never },
      { ...REQUEST, digest: 'sha256:nope' },
      { ...REQUEST, appId: '../etc' },
      { ...REQUEST, limits: { fuel: 0 } },
      { ...REQUEST, limits: { cpus: 2 } as never },
    ]) {
      const err = await mintToken(keys, request, POLICY).catch((e) => e)
      expect(err.code).toBe('invalid_request')
    }
  })
})

describe('verifyToken', () => {
  it('returns the claims of a valid token', async () => {
    await expect(verify(token)).resolves.toEqual(claims)
  })

  it('refuses a forged signature (another key, the ring kid)', async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const forged = await new SignJWT(payload())
      .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN_TYPE, kid })
      .sign(privateKey)
    expect(await refusal(forged, verify(forged))).toBe('token_invalid')
  })

  it('refuses a tampered payload under a genuine signature', async () => {
    const [h, , s] = token.split('.')
    const wider = payload({ grants: { ...claims.grants, log: true, http: [] } })
    const tampered = `${h}.${b64json(wider)}.${s}`
    expect(await refusal(tampered, verify(tampered))).toBe('token_invalid')
  })

  it('refuses alg: none', async () => {
    const header = { alg: 'none', typ: TOKEN_TYPE, kid }
    for (const unsigned of [
      `${b64json(header)}.${b64json(payload())}.`,
      `${b64json(header)}.${b64json(payload())}.${token.split('.')[2]}`,
    ]) {
      expect(await refusal(unsigned, verify(unsigned))).toBe('token_invalid')
    }
  })

  it('refuses HS256 signed with the public key as the secret', async () => {
    const jwk = (await keys.jwks()).keys[0]!
    const raw = base64url.decode(jwk.x)
    const pem = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x },
      format: 'jwk',
    }).export({ type: 'spki', format: 'pem' })
    const secrets = [
      raw,
      new TextEncoder().encode(String(pem)),
      new TextEncoder().encode(JSON.stringify(jwk)),
    ]
    for (const secret of secrets) {
      const hs = await new SignJWT(payload())
        .setProtectedHeader({ alg: 'HS256', typ: TOKEN_TYPE, kid })
        .sign(secret)
      expect(await refusal(hs, verify(hs))).toBe('token_invalid')
    }
  })

  it('refuses another audience, issuer or subject', async () => {
    for (const overrides of [
      { aud: 'other' },
      { aud: ['warden', 'other'] },
      { iss: 'other' },
      { sub: 'app:other' },
    ]) {
      const t = await keys.sign(payload(overrides), TOKEN_TYPE)
      expect(await refusal(t, verify(t))).toBe('token_invalid')
    }
  })

  it('refuses another typ, exactly', async () => {
    for (const typ of ['JWT', 'at+jwt', 'application/warden-cap+jwt', 'WARDEN-CAP+JWT']) {
      const t = await keys.sign(payload(), typ)
      expect(await refusal(t, verify(t))).toBe('token_invalid')
    }
  })

  it('refuses a token without a kid, and one with an unknown kid', async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const noKid = await new SignJWT(payload())
      .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN_TYPE })
      .sign(privateKey)
    expect(await refusal(noKid, verify(noKid))).toBe('token_invalid')
    // Re-encode a genuine token's header without its kid: the signature no longer matches
    // either, but the missing kid is refused first.
    const [, p, s] = token.split('.')
    const stripped = `${b64json({ alg: 'EdDSA', typ: TOKEN_TYPE })}.${p}.${s}`
    expect(await refusal(stripped, verify(stripped))).toBe('token_invalid')

    const otherDir = await mkdtemp(join(tmpdir(), 'warden-verify-other-'))
    try {
      const other = await mintToken(createKeyStore(otherDir), REQUEST, POLICY)
      expect(await refusal(other.token, verify(other.token))).toBe('token_invalid')
    } finally {
      await rm(otherDir, { recursive: true, force: true })
    }
  })

  it('refuses an expired token with token_expired, after the leeway', async () => {
    await expect(verify(token, { now: claims.exp + 29 })).resolves.toBeDefined()
    expect(await refusal(token, verify(token, { now: claims.exp + 30 }))).toBe('token_expired')
    expect(await refusal(token, verify(token, { now: claims.exp, leewaySeconds: 0 }))).toBe(
      'token_expired',
    )
  })

  it('refuses a token that is not valid yet with token_expired, after the leeway', async () => {
    await expect(verify(token, { now: claims.nbf - 30 })).resolves.toBeDefined()
    expect(await refusal(token, verify(token, { now: claims.nbf - 31 }))).toBe('token_expired')
  })

  it('says token_invalid, not token_expired, for a forged expired token', async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const forged = await new SignJWT(payload({ exp: NOW - 1000 }))
      .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN_TYPE, kid })
      .sign(privateKey)
    expect(await refusal(forged, verify(forged))).toBe('token_invalid')
  })

  it('refuses a revoked token', async () => {
    const revocations = createMemoryRevocationList([claims.jti])
    expect(await refusal(token, verify(token, { revocations }))).toBe('token_revoked')
  })

  it('refuses a token whose parent or grandparent is revoked', async () => {
    const revocations = createMemoryRevocationList()
    const options = { revocations, maxLifetimeSeconds: 3600, now: NOW }
    const child = await attenuate(keys, token, { grants: { log: true } }, options)
    const grandchild = await attenuate(keys, child.token, {}, options)
    expect(grandchild.claims.chain).toEqual([claims.jti, child.claims.jti])
    await expect(verify(grandchild.token, { revocations })).resolves.toBeDefined()

    const parentRevoked = createMemoryRevocationList([child.claims.jti])
    expect(
      await refusal(grandchild.token, verify(grandchild.token, { revocations: parentRevoked })),
    ).toBe('token_revoked')
    const rootRevoked = createMemoryRevocationList([claims.jti])
    expect(
      await refusal(grandchild.token, verify(grandchild.token, { revocations: rootRevoked })),
    ).toBe('token_revoked')
    expect(await refusal(child.token, verify(child.token, { revocations: rootRevoked }))).toBe(
      'token_revoked',
    )
  })

  it('refuses a token for another build (digest mismatch)', async () => {
    expect(await refusal(token, verify(token, { digest: OTHER_DIGEST }))).toBe('token_invalid')
  })

  it('refuses an unknown claim at the top level and inside a grant entry', async () => {
    const top = await keys.sign(payload({ admin: true }), TOKEN_TYPE)
    expect(await refusal(top, verify(top))).toBe('token_invalid')
    const grants = {
      ...claims.grants,
      http: [{ ...claims.grants.http[0], followRedirects: true }],
    }
    const inner = await keys.sign(payload({ grants }), TOKEN_TYPE)
    expect(await refusal(inner, verify(inner))).toBe('token_invalid')
    const limits = { ...claims.limits, cpus: 4 }
    const inLimits = await keys.sign(payload({ limits }), TOKEN_TYPE)
    expect(await refusal(inLimits, verify(inLimits))).toBe('token_invalid')
  })

  it('refuses a genuine token whose claims break the schema', async () => {
    for (const overrides of [
      { jti: undefined },
      { exp: undefined },
      { app: { id: 'hello', digest: DIGEST, owner: 'x' } },
      { parent: crypto.randomUUID() },
      { grants: { ...claims.grants, data: [{ collection: 'crm', prefix: '' }] } },
    ]) {
      const t = await keys.sign(payload(overrides), TOKEN_TYPE)
      expect(await refusal(t, verify(t))).toBe('token_invalid')
    }
  })

  it('refuses a revocation lookup that fails with store_unavailable, never a success', async () => {
    for (const failure of [new Error('EIO: i/o error'), new WardenError('internal', 'boom')]) {
      const revocations = {
        isRevoked: async () => {
          throw failure
        },
      }
      const err = await verify(token, { revocations }).catch((e) => e)
      expect(err).toBeInstanceOf(WardenError)
      expect(err.code).toBe('store_unavailable')
    }
  })

  it('answers any garbage with token_invalid and never repeats it', async () => {
    const parts = token.split('.')
    const mutated = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc
        .tuple(fc.nat(token.length - 1), fc.string({ minLength: 1, maxLength: 3 }))
        .map(([at, s]) => token.slice(0, at) + s + token.slice(at + 1)),
      fc.constantFrom(
        '',
        '..',
        `${parts[0]}.${parts[1]}`,
        `${parts[0]}..${parts[2]}`,
        `${token}.${parts[2]}`,
        'a'.repeat(20_000),
      ),
    )
    await fc.assert(
      fc.asyncProperty(mutated, async (t) => {
        if (t === token) {
          return
        }
        expect(await refusal(t, verify(t))).toBe('token_invalid')
      }),
      { numRuns: 300 },
    )
  })
})

// A verifier must not assume that a token it can verify came from mintToken: whoever holds the
// signing key (a leaked key file, a bug in another minting path) can sign any claims.
describe('verifyToken: what minting enforces, enforced again', () => {
  const MAX = POLICY.maxLifetimeSeconds

  it('accepts a ring-signed token of exactly the maximum lifetime', async () => {
    const t = await keys.sign(payload({ iat: NOW, nbf: NOW, exp: NOW + MAX }), TOKEN_TYPE)
    await expect(verify(t)).resolves.toBeDefined()
  })

  it('refuses a ring-signed token living longer than the maximum with token_invalid', async () => {
    for (const overrides of [
      { iat: NOW, nbf: NOW, exp: NOW + MAX + 1 },
      { iat: NOW, nbf: NOW, exp: NOW + 100 * 365 * 86_400 },
      // Still inside its window now, but minted (so it says) ten days ago for eleven.
      { iat: NOW - 10 * 86_400, nbf: NOW - 10 * 86_400, exp: NOW + 86_400 },
      // A short window that opens far from iat is still a long lifetime.
      { iat: NOW - 2 * MAX, nbf: NOW - 60, exp: NOW + 60 },
    ]) {
      const t = await keys.sign(payload(overrides), TOKEN_TYPE)
      expect(await refusal(t, verify(t))).toBe('token_invalid')
    }
  })

  it('measures the lifetime against the maximum it is given', async () => {
    const t = await keys.sign(payload({ iat: NOW, nbf: NOW, exp: NOW + 600 }), TOKEN_TYPE)
    await expect(verify(t, { maxLifetimeSeconds: 600 })).resolves.toBeDefined()
    expect(await refusal(t, verify(t, { maxLifetimeSeconds: 599 }))).toBe('token_invalid')
  })

  it('refuses an iat in the future beyond the leeway with token_invalid', async () => {
    const within = await keys.sign(payload({ iat: NOW + 30, nbf: NOW, exp: NOW + 600 }), TOKEN_TYPE)
    await expect(verify(within)).resolves.toBeDefined()
    for (const overrides of [
      { iat: NOW + 31, nbf: NOW, exp: NOW + 600 },
      { iat: NOW + 3000, nbf: NOW, exp: NOW + 3000 },
    ]) {
      const t = await keys.sign(payload(overrides), TOKEN_TYPE)
      expect(await refusal(t, verify(t))).toBe('token_invalid')
      expect(await refusal(t, verify(t, { leewaySeconds: 0 }))).toBe('token_invalid')
    }
  })

  it('refuses a ring-signed child whose lifetime is above the maximum', async () => {
    const child = {
      parent: claims.jti,
      chain: [claims.jti],
      grants: { ...claims.grants, log: false },
    }
    const ok = await keys.sign(payload({ ...child, iat: NOW, nbf: NOW, exp: NOW + 60 }), TOKEN_TYPE)
    await expect(verify(ok)).resolves.toBeDefined()
    for (const window of [
      { iat: NOW, nbf: NOW, exp: NOW + MAX + 1 },
      { iat: NOW - 5 * MAX, nbf: NOW, exp: NOW + 60 },
      { iat: NOW + 600, nbf: NOW, exp: NOW + 900 },
    ]) {
      const t = await keys.sign(payload({ ...child, ...window }), TOKEN_TYPE)
      expect(await refusal(t, verify(t))).toBe('token_invalid')
    }
  })

  it('needs the maximum: a verifier cannot skip the lifetime check', async () => {
    for (const maxLifetimeSeconds of [undefined, 0, -1, 1.5, Number.NaN]) {
      const err = await verifyToken(keys, token, {
        digest: DIGEST,
        revocations: createMemoryRevocationList(),
        now: NOW,
        maxLifetimeSeconds,
      } as never).catch((e) => e)
      expect(err).toBeInstanceOf(TypeError)
    }
  })
})

describe('verifying the same token again (remembered by its hash)', () => {
  it('returns the same frozen claims, and still checks the clock, the digest and revocations', async () => {
    const fresh = await mintToken(keys, REQUEST, POLICY)
    const first = await verify(fresh.token)
    const again = await verify(fresh.token)
    expect(again).toBe(first)
    expect(Object.isFrozen(first.grants.http[0])).toBe(true)
    expect(await refusal(fresh.token, verify(fresh.token, { now: NOW + 601 + 30 }))).toBe(
      'token_expired',
    )
    expect(await refusal(fresh.token, verify(fresh.token, { digest: OTHER_DIGEST }))).toBe(
      'token_invalid',
    )
    const revocations = createMemoryRevocationList([fresh.claims.jti])
    expect(await refusal(fresh.token, verify(fresh.token, { revocations }))).toBe('token_revoked')
    expect(await refusal(fresh.token, verify(fresh.token, { maxLifetimeSeconds: 60 }))).toBe(
      'token_invalid',
    )
  })

  it('refuses a remembered token once its signing key is retired', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-verify-retire-'))
    try {
      const ring = createKeyStore(dir)
      const minted = await mintToken(ring, REQUEST, POLICY)
      const options = {
        digest: DIGEST,
        revocations: createMemoryRevocationList(),
        maxLifetimeSeconds: 3600,
        now: NOW,
      }
      await verifyToken(ring, minted.token, options)
      const { kid: old } = decodeProtectedHeader(minted.token)
      await ring.rotate()
      await ring.retire(old!)
      await expect(verifyToken(ring, minted.token, options)).rejects.toMatchObject({
        code: 'token_invalid',
      })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('one spelling per token (second outside attack)', () => {
  it('refuses a token whose base64url carries other spare bits', async () => {
    const fresh = await mintToken(keys, REQUEST, POLICY)
    await verify(fresh.token)
    const [h, p, sig] = fresh.token.split('.') as [string, string, string]
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = sig[sig.length - 1]!
    const twin = `${sig.slice(0, -1)}${alphabet[alphabet.indexOf(last) ^ 1]}`
    // Same bytes, another spelling: Node decodes both alike.
    expect(Buffer.from(twin, 'base64url')).toEqual(Buffer.from(sig, 'base64url'))
    expect(await refusal(`${h}.${p}.${twin}`, verify(`${h}.${p}.${twin}`))).toBe('token_invalid')
  })
})
