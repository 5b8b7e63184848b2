/**
 * The token signing key ring: Ed25519 keys, one JSON file each under `<dataDir>/keys/`
 * (directory 0700, files 0600). Private keys never leave this module: the ring signs, and
 * hands out public keys and the public JWKS only.
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose'
import type { JWTPayload } from 'jose'
import { z } from 'zod'
import { WardenError } from '../errors.js'

/** The one signing algorithm of capability tokens. */
export const TOKEN_ALGORITHM = 'EdDSA'

/** Public facts about one key. Never includes private material. */
export interface KeyInfo {
  /** RFC 7638 thumbprint of the public key; the JWS `kid`. */
  kid: string
  /** When the key was made (ISO 8601). */
  created: string
  /** When the key was retired (ISO 8601); a retired key verifies nothing. */
  retired?: string
  /** Whether new tokens are signed with this key. Exactly one key signs at a time. */
  signing: boolean
}

/** One public key of the JWKS. */
export interface PublicJwk {
  kty: 'OKP'
  crv: 'Ed25519'
  /** The public key, base64url. */
  x: string
  kid: string
  alg: 'EdDSA'
  use: 'sig'
}

/** The public JWKS served at `/.well-known/jwks.json`. */
export interface Jwks {
  keys: PublicJwk[]
}

/** The key ring. Create it with {@link createKeyStore}. */
export interface KeyStore {
  /**
   * Sign `payload` as a compact JWS with the signing key: header `{ alg: 'EdDSA', typ, kid }`.
   * Makes the first key on first use.
   */
  sign(payload: JWTPayload, typ: string): Promise<string>
  /** The public key of `kid`, or undefined when it is unknown or retired. */
  verificationKey(kid: string): Promise<CryptoKey | undefined>
  /** Make a new signing key. Older keys still verify until retired. */
  rotate(): Promise<KeyInfo>
  /**
   * Retire `kid`: tokens it signed stop verifying and its private half is erased from disk.
   * Retiring the signing key rotates first. Retiring a retired key does nothing; an unknown
   * one throws `not_found`.
   */
  retire(kid: string): Promise<void>
  /** The public keys that verify (not retired), newest first. */
  jwks(): Promise<Jwks>
  /** Every key, retired ones included, newest first. */
  list(): Promise<KeyInfo[]>
}

const base64url = z.string().regex(/^[A-Za-z0-9_-]+$/)

const keyFileSchema = z.strictObject({
  kid: base64url,
  alg: z.literal(TOKEN_ALGORITHM),
  created: z.iso.datetime(),
  retired: z.iso.datetime().optional(),
  // The private JWK while the key is live; only the public half once retired.
  jwk: z.strictObject({
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: base64url,
    d: base64url.optional(),
  }),
})

type KeyFile = z.output<typeof keyFileSchema>

interface LoadedKey {
  file: KeyFile
  publicKey: CryptoKey
  /** Absent once retired. Non-extractable. */
  privateKey?: CryptoKey
}

const FILE_MODE = 0o600
const DIR_MODE = 0o700

/**
 * Open the key ring under `<dataDir>/keys/`. Nothing is read or created until first use;
 * the first signature makes the first key. Key files whose mode lets group or others in are
 * tightened to 0600 on load.
 *
 * One process owns a ring: another process on the same directory sees a rotation or a
 * retirement only when it opens a new store.
 *
 * @example
 * const keys = createKeyStore('.warden')
 * const jwks = await keys.jwks()   // serve at /.well-known/jwks.json
 * await keys.rotate()              // new tokens use the new kid; old ones still verify
 */
export function createKeyStore(dataDir: string): KeyStore {
  const dir = join(dataDir, 'keys')
  const keys = new Map<string, LoadedKey>()
  let loading: Promise<void> | undefined
  // Mutations (make, rotate, retire) run one at a time.
  let queue: Promise<unknown> = Promise.resolve()

  function serial<T>(task: () => Promise<T>): Promise<T> {
    const run = queue.then(task, task)
    queue = run.catch(() => undefined)
    return run
  }

  function load(): Promise<void> {
    loading ??= loadAll().catch((error: unknown) => {
      loading = undefined
      throw error
    })
    return loading
  }

  async function loadAll(): Promise<void> {
    await mkdir(dir, { recursive: true, mode: DIR_MODE })
    await tighten(dir, DIR_MODE)
    for (const name of (await readdir(dir)).sort()) {
      if (!name.endsWith('.json')) {
        continue
      }
      const path = join(dir, name)
      await tighten(path, FILE_MODE)
      const key = await readKeyFile(path, name)
      keys.set(key.file.kid, key)
    }
  }

  function newest(live: boolean): LoadedKey | undefined {
    return sorted().find((key) => !live || key.file.retired === undefined)
  }

  function sorted(): LoadedKey[] {
    return [...keys.values()].sort((a, b) =>
      a.file.created === b.file.created
        ? b.file.kid.localeCompare(a.file.kid)
        : b.file.created.localeCompare(a.file.created),
    )
  }

  async function makeKey(): Promise<LoadedKey> {
    const pair = await generateKeyPair(TOKEN_ALGORITHM, { crv: 'Ed25519', extractable: true })
    const jwk = await exportJWK(pair.privateKey)
    const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x! })
    // Creation times strictly increase, so "newest" is well defined even within one ms.
    const last = newest(false)?.file.created
    let created = Date.now()
    if (last !== undefined && created <= Date.parse(last)) {
      created = Date.parse(last) + 1
    }
    const file: KeyFile = {
      kid,
      alg: TOKEN_ALGORITHM,
      created: new Date(created).toISOString(),
      jwk: { kty: 'OKP', crv: 'Ed25519', x: jwk.x!, d: jwk.d! },
    }
    await writeKeyFile(dir, file)
    const key = await importKey(file)
    keys.set(kid, key)
    return key
  }

  async function signingKey(): Promise<LoadedKey> {
    await load()
    const live = newest(true)
    if (live?.privateKey) {
      return live
    }
    return serial(async () => {
      const again = newest(true)
      return again?.privateKey ? again : makeKey()
    })
  }

  function info(key: LoadedKey, signer: LoadedKey | undefined): KeyInfo {
    const out: KeyInfo = { kid: key.file.kid, created: key.file.created, signing: key === signer }
    if (key.file.retired !== undefined) {
      out.retired = key.file.retired
    }
    return out
  }

  return {
    async sign(payload, typ) {
      const key = await signingKey()
      return new SignJWT(payload)
        .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ, kid: key.file.kid })
        .sign(key.privateKey!)
    },

    async verificationKey(kid) {
      await load()
      const key = keys.get(kid)
      return key && key.file.retired === undefined ? key.publicKey : undefined
    },

    async rotate() {
      await load()
      const key = await serial(makeKey)
      return info(key, key)
    },

    async retire(kid) {
      await load()
      await serial(async () => {
        const key = keys.get(kid)
        if (!key) {
          throw new WardenError('not_found', 'no signing key has that kid')
        }
        if (key.file.retired !== undefined) {
          return
        }
        if (newest(true) === key) {
          await makeKey()
        }
        const file: KeyFile = {
          ...key.file,
          retired: new Date().toISOString(),
          jwk: { kty: 'OKP', crv: 'Ed25519', x: key.file.jwk.x },
        }
        await writeKeyFile(dir, file)
        keys.set(kid, { file, publicKey: key.publicKey })
      })
    },

    async jwks() {
      await load()
      return {
        keys: sorted()
          .filter((key) => key.file.retired === undefined)
          .map((key) => ({
            kty: 'OKP' as const,
            crv: 'Ed25519' as const,
            x: key.file.jwk.x,
            kid: key.file.kid,
            alg: TOKEN_ALGORITHM,
            use: 'sig' as const,
          })),
      }
    },

    async list() {
      await load()
      const signer = newest(true)
      return sorted().map((key) => info(key, signer))
    },
  }
}

async function tighten(path: string, mode: number): Promise<void> {
  const current = (await stat(path)).mode & 0o777
  if ((current & ~mode) !== 0) {
    await chmod(path, current & mode)
  }
}

async function readKeyFile(path: string, name: string): Promise<LoadedKey> {
  // Messages name the file only: never its contents.
  const bad = () => new WardenError('internal', `signing key file ${name} is invalid`)
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(path, 'utf8'))
  } catch {
    throw bad()
  }
  const parsed = keyFileSchema.safeParse(raw)
  if (!parsed.success || name !== `${parsed.data.kid}.json`) {
    throw bad()
  }
  const file = parsed.data
  const { kty, crv, x } = file.jwk
  if ((await calculateJwkThumbprint({ kty, crv, x })) !== file.kid) {
    throw bad()
  }
  if (file.retired === undefined && file.jwk.d === undefined) {
    throw bad()
  }
  try {
    return await importKey(file)
  } catch {
    throw bad()
  }
}

async function importKey(file: KeyFile): Promise<LoadedKey> {
  const { kty, crv, x, d } = file.jwk
  const publicKey = (await importJWK({ kty, crv, x }, TOKEN_ALGORITHM)) as CryptoKey
  if (file.retired !== undefined || d === undefined) {
    return { file, publicKey }
  }
  const privateKey = (await importJWK({ kty, crv, x, d }, TOKEN_ALGORITHM, {
    extractable: false,
  })) as CryptoKey
  return { file, publicKey, privateKey }
}

/** Write atomically and durably: temp file (0600) → fsync → rename → fsync the directory. */
async function writeKeyFile(dir: string, file: KeyFile): Promise<void> {
  const path = join(dir, `${file.kid}.json`)
  const temp = join(dir, `.${file.kid}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(temp, 'wx', FILE_MODE)
  try {
    // NB: the mode passed to open is masked by the umask; set it exactly.
    await handle.chmod(FILE_MODE)
    await handle.writeFile(`${JSON.stringify(file, null, 2)}\n`)
    await handle.sync()
  } catch (error) {
    await handle.close()
    await unlink(temp).catch(() => undefined)
    throw error
  }
  await handle.close()
  await rename(temp, path)
  const dirHandle = await open(dir, 'r')
  try {
    await dirHandle.sync()
  } finally {
    await dirHandle.close()
  }
}
