/**
 * The local-file secret store: one AES-256-GCM encrypted file per secret under a private
 * directory (0o700), each file 0o600 and written atomically (temporary file + rename).
 *
 * - A fresh random 12-byte IV per write; the secret's name is the additional authenticated
 *   data, so a ciphertext copied or renamed to another name does not decrypt.
 * - Tampering, a moved file or a wrong master key fail closed: `read` throws
 *   `WardenError('internal')` and never returns a value.
 * - The admin surface (`put`, `delete`, `list`) is write-only: nothing in it returns a value.
 *   `read` exists for the broker alone (it implements {@link SecretSource}); type the admin
 *   HTTP layer with {@link SecretAdmin} so it cannot reach it.
 *
 * ## The master key
 *
 * The 32-byte master key never lives in the store's directory. Resolve it once at start
 * ({@link resolveMasterKey}): `WARDEN_MASTER_KEY` (base64) when set, else `<dataDir>/master.key`
 * (created on first start, 0o600).
 *
 * Tradeoff: the default key file sits in the same data dir as `<dataDir>/secrets/`, so a copy
 * of the whole data dir (a backup, a stolen disk) carries both the key and the ciphertexts;
 * at-rest encryption then protects only against a leak of the secrets directory alone. For
 * production, set `WARDEN_MASTER_KEY` from a secret manager or systemd credentials: the key
 * then stays off the disk and out of backups, at the price of being visible to anyone who can
 * read the process environment (same user, `/proc/<pid>/environ`, child processes).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { link, mkdir, readFile, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { WardenError } from '../../core/errors.js'
import type { SecretSource } from '../types.js'
import {
  isErrno,
  readdirOrEmpty,
  ensurePrivateDir,
  syncDir,
  tempPathFor,
  writeFileAtomic,
} from '../../core/fs-atomic.js'
import { assertSecretName, isSecretName } from './names.js'

/** Bytes in a master key (AES-256). */
export const MASTER_KEY_BYTES = 32

/** The default master key file name, in the data dir and outside the store's directory. */
export const DEFAULT_MASTER_KEY_FILE = 'master.key'

/** Largest secret value, in UTF-8 bytes: 64 KiB. */
export const MAX_SECRET_BYTES = 64 * 1024

const FILE_SUFFIX = '.secret'
const IV_BYTES = 12
const TAG_BYTES = 16

/** What `list` shows of one secret: never its value. */
export interface SecretMeta {
  name: string
  /** ISO 8601 time of the last `put`. */
  updatedAt: string
}

/** The admin's write-only view of a secret store. */
export interface SecretAdmin {
  /** Create or replace secret `name`. Throws `TypeError` on a bad name or value. */
  put(name: string, value: string): Promise<SecretMeta>
  /** Delete secret `name`. Resolves to whether it existed. */
  delete(name: string): Promise<boolean>
  /** Every secret's name and update time, sorted by name. Never values. */
  list(): Promise<SecretMeta[]>
}

/** A secret store: the admin's write-only view plus the broker's `read`. */
export interface SecretStore extends SecretAdmin, SecretSource {}

/** Options of {@link createFileSecretStore}. */
export interface FileSecretStoreOptions {
  /** The store's directory, e.g. `<dataDir>/secrets`. Created with mode 0o700. */
  dir: string
  /** 32 random bytes, kept outside `dir` (see the module comment). Copied. */
  masterKey: Uint8Array
}

/** The on-disk form of one secret. */
interface SecretFile {
  v: 1
  alg: 'A256GCM'
  iv: string
  tag: string
  ct: string
  updatedAt: string
}

function assertMasterKey(key: unknown): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array) || key.byteLength !== MASTER_KEY_BYTES) {
    throw new TypeError(`master key must be a Uint8Array of ${MASTER_KEY_BYTES} bytes`)
  }
}

/** @internal Throw `TypeError` unless `value` is a storable secret value. */
export function assertSecretValue(value: unknown): asserts value is string {
  if (typeof value !== 'string' || !value.isWellFormed()) {
    throw new TypeError('secret value must be a well-formed string')
  }
  const bytes = Buffer.byteLength(value, 'utf8')
  if (bytes === 0 || bytes > MAX_SECRET_BYTES) {
    throw new TypeError(`secret value must be 1 to ${MAX_SECRET_BYTES} bytes`)
  }
}

function parseSecretFile(text: string): SecretFile | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null) {
    return undefined
  }
  const f = parsed as Record<string, unknown>
  if (
    f.v !== 1 ||
    f.alg !== 'A256GCM' ||
    typeof f.iv !== 'string' ||
    typeof f.tag !== 'string' ||
    typeof f.ct !== 'string' ||
    typeof f.updatedAt !== 'string'
  ) {
    return undefined
  }
  return f as unknown as SecretFile
}

/**
 * @internal Seal `value` under `key` (AES-256-GCM, a fresh IV, `name` as the additional data):
 * the JSON envelope the file store writes and the Redis store keeps.
 */
export function sealSecret(
  key: Uint8Array,
  name: string,
  value: string,
  updatedAt: string,
): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(name, 'utf8'))
  const ct = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()])
  const envelope: SecretFile = {
    v: 1,
    alg: 'A256GCM',
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    ct: ct.toString('base64'),
    updatedAt,
  }
  return JSON.stringify(envelope)
}

/**
 * @internal Open an envelope of {@link sealSecret}. Tampering, another name or another key throw
 * `internal`; nothing is returned that did not authenticate.
 */
export function openSecret(key: Uint8Array, name: string, text: string): string {
  const failed = (cause?: unknown) =>
    new WardenError('internal', `secret ${name} could not be decrypted`, { cause })
  const file = parseSecretFile(text)
  if (!file) {
    throw failed()
  }
  const iv = Buffer.from(file.iv, 'base64')
  const tag = Buffer.from(file.tag, 'base64')
  if (iv.byteLength !== IV_BYTES || tag.byteLength !== TAG_BYTES) {
    throw failed()
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(name, 'utf8'))
    decipher.setAuthTag(tag)
    const plain = Buffer.concat([decipher.update(Buffer.from(file.ct, 'base64')), decipher.final()])
    return plain.toString('utf8')
  } catch (error) {
    throw failed(error)
  }
}

/** The update time of a sealed envelope, or undefined when it is not one. */
export function sealedAt(text: string): string | undefined {
  return parseSecretFile(text)?.updatedAt
}

/**
 * Create a secret store backed by encrypted files in `dir`.
 *
 * @example
 * const store = createFileSecretStore({ dir: join(dataDir, 'secrets'), masterKey })
 * await store.put('github_token', 'ghp_…')
 * await store.list() // [{ name: 'github_token', updatedAt: '2025-…' }]
 */
export function createFileSecretStore(options: FileSecretStoreOptions): SecretStore {
  assertMasterKey(options.masterKey)
  if (typeof options.dir !== 'string' || options.dir === '') {
    throw new TypeError('dir must be a non-empty path')
  }
  const dir = options.dir
  const key = Buffer.from(options.masterKey)
  let ready: Promise<void> | undefined
  const ensureDir = () =>
    (ready ??= ensurePrivateDir(dir).catch((error: unknown) => {
      ready = undefined
      throw error
    }))
  const pathOf = (name: string) => join(dir, name + FILE_SUFFIX)

  return {
    async put(name, value) {
      assertSecretName(name)
      assertSecretValue(value)
      await ensureDir()
      const updatedAt = new Date().toISOString()
      await writeFileAtomic(pathOf(name), sealSecret(key, name, value, updatedAt))
      return { name, updatedAt }
    },

    async delete(name) {
      assertSecretName(name)
      try {
        await unlink(pathOf(name))
      } catch (error) {
        if (isErrno(error, 'ENOENT')) {
          return false
        }
        throw error
      }
      await syncDir(dir)
      return true
    },

    async list() {
      const files = await readdirOrEmpty(dir)
      const out: SecretMeta[] = []
      for (const file of files) {
        if (!file.endsWith(FILE_SUFFIX)) {
          continue
        }
        const name = file.slice(0, -FILE_SUFFIX.length)
        if (!isSecretName(name)) {
          continue
        }
        const path = join(dir, file)
        try {
          const parsed = parseSecretFile(await readFile(path, 'utf8'))
          const updatedAt = parsed?.updatedAt ?? (await stat(path)).mtime.toISOString()
          out.push({ name, updatedAt })
        } catch (error) {
          // Deleted between readdir and readFile.
          if (!isErrno(error, 'ENOENT')) {
            throw error
          }
        }
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    },

    async read(name) {
      assertSecretName(name)
      let text: string
      try {
        text = await readFile(pathOf(name), 'utf8')
      } catch (error) {
        if (isErrno(error, 'ENOENT')) {
          return undefined
        }
        throw error
      }
      return openSecret(key, name, text)
    },
  }
}

/**
 * Decode a master key given as base64 (e.g. `WARDEN_MASTER_KEY`): exactly 32 bytes, canonical
 * standard base64. Throws `TypeError`, whose message never contains the value.
 *
 * @example
 * masterKeyFromEnv(randomBytes(32).toString('base64'))
 */
export function masterKeyFromEnv(value: string): Uint8Array {
  if (typeof value !== 'string') {
    throw new TypeError('master key must be a base64 string')
  }
  const text = value.trim()
  const bytes = Buffer.from(text, 'base64')
  if (bytes.byteLength !== MASTER_KEY_BYTES || bytes.toString('base64') !== text) {
    throw new TypeError(`master key must be ${MASTER_KEY_BYTES} bytes in standard base64`)
  }
  return new Uint8Array(bytes)
}

/**
 * Read the raw 32-byte master key at `path`, or create it (random, mode 0o600) when absent.
 * Creation is atomic and race-free: two processes starting at once end up with one key.
 * Refuses a key file readable by group or others (as ssh does), and one of the wrong size.
 *
 * @example
 * const masterKey = await loadOrCreateMasterKey(join(dataDir, 'master.key'))
 */
export async function loadOrCreateMasterKey(path: string): Promise<Uint8Array> {
  const existing = await readMasterKeyFile(path)
  if (existing) {
    return existing
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = tempPathFor(path)
  try {
    await writeFileAtomic(tmp, randomBytes(MASTER_KEY_BYTES))
    // link() fails with EEXIST instead of replacing: whoever links first wins.
    await link(tmp, path)
  } catch (error) {
    if (!isErrno(error, 'EEXIST')) {
      throw error
    }
  } finally {
    await unlink(tmp).catch(() => undefined)
  }
  await syncDir(dirname(path))
  const created = await readMasterKeyFile(path)
  if (!created) {
    throw new Error(`master key file ${path} vanished while it was being created`)
  }
  return created
}

async function readMasterKeyFile(path: string): Promise<Uint8Array | undefined> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (error) {
    if (isErrno(error, 'ENOENT')) {
      return undefined
    }
    throw error
  }
  if (process.platform !== 'win32' && ((await stat(path)).mode & 0o077) !== 0) {
    throw new Error(`master key file ${path} is readable by others; run chmod 600 on it`)
  }
  if (bytes.byteLength !== MASTER_KEY_BYTES) {
    throw new Error(`master key file ${path} must hold exactly ${MASTER_KEY_BYTES} raw bytes`)
  }
  return new Uint8Array(bytes)
}

/**
 * The master key for this host: from `fromEnv` (the value of `WARDEN_MASTER_KEY`) when set,
 * else from `<dataDir>/master.key`, created on first start. Call once at start.
 *
 * @example
 * const masterKey = await resolveMasterKey({ fromEnv: env.WARDEN_MASTER_KEY, dataDir })
 */
export async function resolveMasterKey(options: {
  fromEnv: string | undefined
  dataDir: string
}): Promise<Uint8Array> {
  if (options.fromEnv !== undefined && options.fromEnv !== '') {
    return masterKeyFromEnv(options.fromEnv)
  }
  return loadOrCreateMasterKey(join(options.dataDir, DEFAULT_MASTER_KEY_FILE))
}

/**
 * Derive an independent 32-byte subkey from the master key (HKDF-SHA256), so that one master
 * key can serve several purposes (e.g. `'warden:data-cursor:v1'`) without reuse.
 *
 * @example
 * const cursorKey = deriveSubkey(masterKey, 'warden:data-cursor:v1')
 */
export function deriveSubkey(masterKey: Uint8Array, purpose: string): Uint8Array {
  assertMasterKey(masterKey)
  if (typeof purpose !== 'string' || purpose === '') {
    throw new TypeError('purpose must be a non-empty string')
  }
  return new Uint8Array(hkdfSync('sha256', masterKey, new Uint8Array(0), purpose, 32))
}
