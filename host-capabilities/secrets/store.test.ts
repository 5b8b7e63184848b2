import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WardenError } from '../../runtime/errors.js'
import {
  createFileSecretStore,
  deriveSubkey,
  loadOrCreateMasterKey,
  masterKeyFromEnv,
  resolveMasterKey,
} from './store.js'

const posix = process.platform !== 'win32'
let root: string
let dir: string
let masterKey: Uint8Array

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'warden-secrets-'))
  dir = join(root, 'secrets')
  masterKey = new Uint8Array(randomBytes(32))
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (error: unknown) => error,
  )
}

describe('createFileSecretStore', () => {
  it('round-trips values, including multi-byte UTF-8', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    await store.put('api_key', 'sk-1234567890')
    await store.put('emoji', 'pä$$wörd 🔑 密码')
    expect(await store.read('api_key')).toBe('sk-1234567890')
    expect(await store.read('emoji')).toBe('pä$$wörd 🔑 密码')
    expect(await store.read('missing')).toBeUndefined()
  })

  it('replaces a value on put and reads it from a second store on the same dir', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    await store.put('token', 'first-value')
    await store.put('token', 'second-value')
    const other = createFileSecretStore({ dir, masterKey })
    expect(await other.read('token')).toBe('second-value')
  })

  it('never writes the plaintext to disk, and uses a fresh IV per write', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    const value = 'correct-horse-battery-staple'
    await store.put('token', value)
    const first = await readFile(join(dir, 'token.secret'))
    await store.put('token', value)
    const second = await readFile(join(dir, 'token.secret'))
    for (const bytes of [first, second]) {
      expect(bytes.includes(Buffer.from(value))).toBe(false)
      expect(bytes.includes(Buffer.from(Buffer.from(value).toString('base64')))).toBe(false)
    }
    const a = JSON.parse(first.toString()) as { iv: string; ct: string }
    const b = JSON.parse(second.toString()) as { iv: string; ct: string }
    expect(a.iv).not.toBe(b.iv)
    expect(a.ct).not.toBe(b.ct)
  })

  it('fails closed on a tampered ciphertext, tag or IV', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    await store.put('token', 'a-secret-value')
    const path = join(dir, 'token.secret')
    const original = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>
    for (const field of ['ct', 'tag', 'iv']) {
      const bytes = Buffer.from(original[field] as string, 'base64')
      bytes[0] = (bytes[0] as number) ^ 1
      await writeFile(path, JSON.stringify({ ...original, [field]: bytes.toString('base64') }))
      const error = await rejection(store.read('token'))
      expect(error).toBeInstanceOf(WardenError)
      expect((error as WardenError).code).toBe('internal')
    }
    await writeFile(path, 'not json')
    expect(((await rejection(store.read('token'))) as WardenError).code).toBe('internal')
  })

  it('fails closed when a file is moved or copied to another name', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    await store.put('alpha', 'alpha-secret')
    await store.put('beta', 'beta-secret')
    // Swap the two files: each ciphertext is now under the other's name.
    await rename(join(dir, 'alpha.secret'), join(dir, 'tmp.secret'))
    await rename(join(dir, 'beta.secret'), join(dir, 'alpha.secret'))
    await rename(join(dir, 'tmp.secret'), join(dir, 'beta.secret'))
    expect(((await rejection(store.read('alpha'))) as WardenError).code).toBe('internal')
    expect(((await rejection(store.read('beta'))) as WardenError).code).toBe('internal')
  })

  it('fails closed under another master key', async () => {
    await createFileSecretStore({ dir, masterKey }).put('token', 'a-secret-value')
    const other = createFileSecretStore({ dir, masterKey: new Uint8Array(randomBytes(32)) })
    expect(((await rejection(other.read('token'))) as WardenError).code).toBe('internal')
  })

  it.runIf(posix)(
    'keeps the directory 0o700 and each file 0o600, with no temporary files',
    async () => {
      await rm(dir, { recursive: true, force: true })
      const { mkdir } = await import('node:fs/promises')
      await mkdir(dir, { mode: 0o755 })
      await chmod(dir, 0o755)
      const store = createFileSecretStore({ dir, masterKey })
      await store.put('one', 'value-one')
      await store.put('two', 'value-two')
      expect((await stat(dir)).mode & 0o777).toBe(0o700)
      expect((await stat(join(dir, 'one.secret'))).mode & 0o777).toBe(0o600)
      expect((await stat(join(dir, 'two.secret'))).mode & 0o777).toBe(0o600)
      expect((await readdir(dir)).sort()).toEqual(['one.secret', 'two.secret'])
    },
  )

  it('lists names and update times, never values', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    expect(await store.list()).toEqual([])
    await store.put('zeta', 'zeta-secret-value')
    await store.put('alpha', 'alpha-secret-value')
    const listed = await store.list()
    expect(listed.map((m) => m.name)).toEqual(['alpha', 'zeta'])
    for (const meta of listed) {
      expect(Object.keys(meta).sort()).toEqual(['name', 'updatedAt'])
      expect(Number.isNaN(Date.parse(meta.updatedAt))).toBe(false)
    }
    expect(JSON.stringify(listed)).not.toContain('secret-value')
  })

  it('deletes, and says whether the secret existed', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    await store.put('token', 'a-secret-value')
    expect(await store.delete('token')).toBe(true)
    expect(await store.delete('token')).toBe(false)
    expect(await store.read('token')).toBeUndefined()
    expect(await store.list()).toEqual([])
  })

  it.each(['', 'A', 'Token', '1abc', '_x', 'a-b', 'a.b', '../etc', 'a/b', 'x'.repeat(65), 'é'])(
    'refuses the name %j with a TypeError',
    async (name) => {
      const store = createFileSecretStore({ dir, masterKey })
      expect(await rejection(store.put(name, 'value'))).toBeInstanceOf(TypeError)
      expect(await rejection(store.read(name))).toBeInstanceOf(TypeError)
      expect(await rejection(store.delete(name))).toBeInstanceOf(TypeError)
    },
  )

  it('accepts names at the edges of the pattern', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    for (const name of ['a', 'a_1', 'z'.repeat(64)]) {
      await store.put(name, 'some-value')
      expect(await store.read(name)).toBe('some-value')
    }
  })

  it('refuses empty, oversized and ill-formed values', async () => {
    const store = createFileSecretStore({ dir, masterKey })
    for (const value of ['', 'x'.repeat(64 * 1024 + 1), 'bad\ud800', 42]) {
      expect(await rejection(store.put('token', value as string))).toBeInstanceOf(TypeError)
    }
  })

  it('refuses a master key that is not 32 bytes', () => {
    for (const key of [new Uint8Array(16), new Uint8Array(33), 'k'.repeat(32)]) {
      expect(() => createFileSecretStore({ dir, masterKey: key as Uint8Array })).toThrow(TypeError)
    }
  })
})

describe('master key', () => {
  it('decodes a base64 key of exactly 32 bytes', () => {
    const raw = randomBytes(32)
    expect(Buffer.from(masterKeyFromEnv(raw.toString('base64'))).equals(raw)).toBe(true)
    expect(Buffer.from(masterKeyFromEnv(` ${raw.toString('base64')}\n`)).equals(raw)).toBe(true)
  })

  it.each([
    ['too short', randomBytes(31).toString('base64')],
    ['too long', randomBytes(33).toString('base64')],
    ['not base64', '!'.repeat(44)],
    ['base64url', Buffer.alloc(32, 0xff).toString('base64url')],
    ['empty', ''],
  ])('refuses a key that is %s', (_, value) => {
    expect(() => masterKeyFromEnv(value)).toThrow(TypeError)
  })

  it('never puts the value in its error message', () => {
    const value = 'c2VjcmV0LXZhbHVlLXRoYXQtaXMtbm90LTMyLWJ5dGVz'
    try {
      masterKeyFromEnv(value)
      expect.unreachable()
    } catch (error) {
      expect(String((error as Error).message)).not.toContain(value)
    }
  })

  it.runIf(posix)('creates a 0o600 key file once and reads it back', async () => {
    const path = join(root, 'data', 'master.key')
    const created = await loadOrCreateMasterKey(path)
    expect(created.byteLength).toBe(32)
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    const again = await loadOrCreateMasterKey(path)
    expect(Buffer.from(again).equals(Buffer.from(created))).toBe(true)
    expect(await readdir(join(root, 'data'))).toEqual(['master.key'])
  })

  it('gives concurrent first starts one and the same key', async () => {
    const path = join(root, 'master.key')
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateMasterKey(path)))
    for (const key of keys) {
      expect(Buffer.from(key).equals(Buffer.from(keys[0] as Uint8Array))).toBe(true)
    }
  })

  it.runIf(posix)('refuses a key file readable by others, or of the wrong size', async () => {
    const path = join(root, 'master.key')
    await writeFile(path, randomBytes(32), { mode: 0o644 })
    await chmod(path, 0o644)
    expect(await rejection(loadOrCreateMasterKey(path))).toBeInstanceOf(Error)
    await chmod(path, 0o600)
    await writeFile(path, randomBytes(16))
    expect(await rejection(loadOrCreateMasterKey(path))).toBeInstanceOf(Error)
  })

  it('prefers the environment over the key file', async () => {
    const raw = randomBytes(32)
    const key = await resolveMasterKey({ fromEnv: raw.toString('base64'), dataDir: root })
    expect(Buffer.from(key).equals(raw)).toBe(true)
    expect(await readdir(root)).toEqual([])
    const fromFile = await resolveMasterKey({ fromEnv: undefined, dataDir: root })
    expect(await readdir(root)).toEqual(['master.key'])
    expect(fromFile.byteLength).toBe(32)
  })

  it('derives distinct subkeys per purpose, deterministically', () => {
    const a = deriveSubkey(masterKey, 'warden:data-cursor:v1')
    expect(a.byteLength).toBe(32)
    expect(Buffer.from(deriveSubkey(masterKey, 'warden:data-cursor:v1')).equals(a)).toBe(true)
    expect(Buffer.from(deriveSubkey(masterKey, 'other')).equals(a)).toBe(false)
    expect(Buffer.from(a).equals(Buffer.from(masterKey))).toBe(false)
  })
})
