import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeProtectedHeader } from 'jose'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WardenError } from '../errors.js'
import { createKeyStore } from './keys.js'
import { mintToken } from './mint.js'
import { createMemoryRevocationList } from './revocations.js'
import { verifyToken } from './verify.js'
import type { KeyStore } from './keys.js'

const DIGEST = `sha256:${'ab'.repeat(32)}`
const NOW = 1_700_000_000
const revocations = createMemoryRevocationList()

let dataDir: string

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-keys-'))
})

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

async function mint(keys: KeyStore): Promise<string> {
  const request = { appId: 'hello', digest: DIGEST, grants: { log: true }, lifetimeSeconds: 600 }
  const { token } = await mintToken(keys, request, { maxLifetimeSeconds: 3600, now: NOW })
  return token
}

function verify(keys: KeyStore, token: string) {
  return verifyToken(keys, token, {
    digest: DIGEST,
    revocations,
    maxLifetimeSeconds: 3600,
    now: NOW,
  })
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(WardenError)
    return (error as WardenError).code
  }
  return 'resolved'
}

describe('createKeyStore', () => {
  it('creates nothing until first use, then one key', async () => {
    const keys = createKeyStore(dataDir)
    expect(await readdir(dataDir)).toEqual([])
    await mint(keys)
    const files = await readdir(join(dataDir, 'keys'))
    expect(files).toHaveLength(1)
    expect((await keys.list()).map((k) => k.signing)).toEqual([true])
  })

  it('persists keys: a new store on the same dir keeps verifying and signing', async () => {
    const first = createKeyStore(dataDir)
    const token = await mint(first)
    const second = createKeyStore(dataDir)
    await expect(verify(second, token)).resolves.toMatchObject({ app: { digest: DIGEST } })
    const again = await mint(second)
    expect(decodeProtectedHeader(again).kid).toBe(decodeProtectedHeader(token).kid)
    expect(await second.jwks()).toEqual(await first.jwks())
  })

  it('writes the directory 0700 and key files 0600', async () => {
    const keys = createKeyStore(dataDir)
    await mint(keys)
    await keys.rotate()
    const dir = join(dataDir, 'keys')
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    for (const name of await readdir(dir)) {
      expect((await stat(join(dir, name))).mode & 0o777).toBe(0o600)
    }
  })

  it('tightens loose modes on load', async () => {
    await mint(createKeyStore(dataDir))
    const dir = join(dataDir, 'keys')
    const [name] = await readdir(dir)
    await chmod(join(dir, name!), 0o644)
    await chmod(dir, 0o755)
    await createKeyStore(dataDir).jwks()
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    expect((await stat(join(dir, name!))).mode & 0o777).toBe(0o600)
  })

  it('serves a public JWKS with no private material', async () => {
    const keys = createKeyStore(dataDir)
    await mint(keys)
    const dir = join(dataDir, 'keys')
    const [name] = await readdir(dir)
    const file = JSON.parse(await readFile(join(dir, name!), 'utf8')) as { jwk: { d: string } }
    const jwks = await keys.jwks()
    expect(jwks.keys).toHaveLength(1)
    expect(Object.keys(jwks.keys[0]!).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x'])
    expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })
    const everything = JSON.stringify([jwks, await keys.list()])
    expect(everything).not.toContain(file.jwk.d)
  })

  it('rotates: new tokens use the new kid, old tokens still verify', async () => {
    const keys = createKeyStore(dataDir)
    const before = await mint(keys)
    const oldKid = decodeProtectedHeader(before).kid
    const rotated = await keys.rotate()
    expect(rotated.kid).not.toBe(oldKid)
    const after = await mint(keys)
    expect(decodeProtectedHeader(after).kid).toBe(rotated.kid)
    await expect(verify(keys, before)).resolves.toBeDefined()
    await expect(verify(keys, after)).resolves.toBeDefined()
    expect((await keys.jwks()).keys.map((k) => k.kid)).toEqual([rotated.kid, oldKid])
    // The rotation is on disk too.
    const reopened = createKeyStore(dataDir)
    expect(decodeProtectedHeader(await mint(reopened)).kid).toBe(rotated.kid)
  })

  it('retires: tokens of a retired key stop verifying, here and after a restart', async () => {
    const keys = createKeyStore(dataDir)
    const before = await mint(keys)
    const oldKid = decodeProtectedHeader(before).kid!
    await keys.rotate()
    const after = await mint(keys)
    await keys.retire(oldKid)
    expect(await codeOf(verify(keys, before))).toBe('token_invalid')
    await expect(verify(keys, after)).resolves.toBeDefined()
    expect((await keys.jwks()).keys.map((k) => k.kid)).not.toContain(oldKid)
    const reopened = createKeyStore(dataDir)
    expect(await codeOf(verify(reopened, before))).toBe('token_invalid')
    const retired = (await reopened.list()).find((k) => k.kid === oldKid)
    expect(retired?.retired).toBeDefined()
    // The private half of a retired key is erased from disk.
    const file = JSON.parse(await readFile(join(dataDir, 'keys', `${oldKid}.json`), 'utf8'))
    expect(file.jwk.d).toBeUndefined()
  })

  it('rotates first when the signing key is retired', async () => {
    const keys = createKeyStore(dataDir)
    const before = await mint(keys)
    const oldKid = decodeProtectedHeader(before).kid!
    await keys.retire(oldKid)
    const after = await mint(keys)
    expect(decodeProtectedHeader(after).kid).not.toBe(oldKid)
    expect(await codeOf(verify(keys, before))).toBe('token_invalid')
    await expect(verify(keys, after)).resolves.toBeDefined()
    expect((await keys.list()).filter((k) => k.signing)).toHaveLength(1)
  })

  it('refuses to retire an unknown kid with not_found; retiring twice is harmless', async () => {
    const keys = createKeyStore(dataDir)
    expect(await codeOf(keys.retire('no-such-kid'))).toBe('not_found')
    const kid = decodeProtectedHeader(await mint(keys)).kid!
    await keys.retire(kid)
    await keys.retire(kid)
  })

  it('refuses a tampered key file without echoing its contents', async () => {
    await mint(createKeyStore(dataDir))
    const dir = join(dataDir, 'keys')
    const [name] = await readdir(dir)
    const path = join(dir, name!)
    const file = JSON.parse(await readFile(path, 'utf8'))
    // Swap in another public key: the kid no longer matches its thumbprint.
    file.jwk.x = 'A'.repeat(43)
    await writeFile(path, JSON.stringify(file))
    try {
      await createKeyStore(dataDir).jwks()
      expect.unreachable()
    } catch (error) {
      expect((error as WardenError).code).toBe('internal')
      expect((error as WardenError).message).not.toContain(file.jwk.d)
    }
  })

  it('makes one first key under concurrent first use', async () => {
    const keys = createKeyStore(dataDir)
    const tokens = await Promise.all([mint(keys), mint(keys), mint(keys)])
    expect(new Set(tokens.map((t) => decodeProtectedHeader(t).kid)).size).toBe(1)
    expect(await readdir(join(dataDir, 'keys'))).toHaveLength(1)
  })
})
