/**
 * The token signing key ring of a deployment: the hash `<prefix>signing-keys`, kid → the key's
 * public facts and its private half sealed with a subkey of the master key (AES-256-GCM, the
 * kid as additional data), so that every host signs and verifies with one ring and Redis holds
 * no usable private key. A retired key keeps its public half only. Hosts cache the ring; a
 * change is announced (kid) and re-read, a reconnect re-reads all of it.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose'
import { deriveSubkey, openSecret, sealSecret } from '../../host-capabilities/secrets/index.js'
import { WardenError } from '../errors.js'
import { TOKEN_ALGORITHM } from '../tokens/keys.js'
import type { KeyInfo, KeyStore } from '../tokens/keys.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'
import { throwOnFailure } from './revocations.js'

interface StoredKey {
  kid: string
  created: string
  retired?: string
  x: string
  /** The private `d`, sealed; absent once retired. */
  sealed?: string
}

interface LoadedKey {
  stored: StoredKey
  publicKey: CryptoKey
  privateKey?: CryptoKey
}

const SEAL_PURPOSE = 'warden redis signing keys'

/**
 * The shared key ring.
 *
 * @example
 * const keys = createRedisKeyStore(redis, masterKey)
 * await keys.rotate() // every host signs with the new key from now on
 */
export function createRedisKeyStore(redis: RedisConnection, masterKey: Uint8Array): KeyStore {
  const hash = redis.key('signing-keys')
  const sealKey = deriveSubkey(masterKey, SEAL_PURPOSE)
  const keys = new Map<string, LoadedKey>()
  let loading: Promise<void> | undefined
  const guard = async <T>(task: () => Promise<T>): Promise<T> => {
    try {
      return await task()
    } catch (error) {
      throw storeUnavailable('the signing keys cannot be reached', error)
    }
  }

  async function importStored(stored: StoredKey): Promise<LoadedKey> {
    const bad = () => new WardenError('internal', `signing key ${stored.kid} is invalid`)
    const x = stored.x
    if ((await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x })) !== stored.kid) {
      throw bad()
    }
    const publicKey = (await importJWK(
      { kty: 'OKP', crv: 'Ed25519', x },
      TOKEN_ALGORITHM,
    )) as CryptoKey
    if (stored.retired !== undefined || stored.sealed === undefined) {
      return { stored, publicKey }
    }
    const d = openSecret(sealKey, `signing-key:${stored.kid}`, stored.sealed)
    const privateKey = (await importJWK({ kty: 'OKP', crv: 'Ed25519', x, d }, TOKEN_ALGORITHM, {
      extractable: false,
    })) as CryptoKey
    return { stored, publicKey, privateKey }
  }

  async function reloadOne(kid: string): Promise<LoadedKey | undefined> {
    const text = await guard(() => redis.client.hget(hash, kid))
    if (text === null) {
      keys.delete(kid)
      return undefined
    }
    const loaded = await importStored(JSON.parse(text) as StoredKey)
    keys.set(kid, loaded)
    return loaded
  }

  async function loadAll(): Promise<void> {
    const all = await guard(() => redis.client.hgetall(hash))
    keys.clear()
    for (const text of Object.values(all)) {
      const loaded = await importStored(JSON.parse(text) as StoredKey)
      keys.set(loaded.stored.kid, loaded)
    }
  }

  function load(): Promise<void> {
    loading ??= loadAll().catch((error: unknown) => {
      loading = undefined
      throw error
    })
    return loading
  }

  redis.onChange('keys', (kid) => {
    if (typeof kid === 'string') {
      void reloadOne(kid).catch(() => keys.delete(kid))
    }
  })
  redis.onReconnect(() => {
    loading = undefined
  })

  async function save(stored: StoredKey): Promise<void> {
    await guard(async () =>
      throwOnFailure(
        await redis.client
          .multi()
          .hset(hash, stored.kid, JSON.stringify(stored))
          .publish(redis.channel, JSON.stringify({ store: 'keys', data: stored.kid }))
          .exec(),
      ),
    )
  }

  function sorted(): LoadedKey[] {
    return [...keys.values()].sort((a, b) =>
      a.stored.created === b.stored.created
        ? b.stored.kid.localeCompare(a.stored.kid)
        : b.stored.created.localeCompare(a.stored.created),
    )
  }
  const newestLive = () => sorted().find((k) => k.stored.retired === undefined)

  async function makeKey(): Promise<LoadedKey> {
    const pair = await generateKeyPair(TOKEN_ALGORITHM, { crv: 'Ed25519', extractable: true })
    const jwk = await exportJWK(pair.privateKey)
    const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x! })
    const last = sorted()[0]?.stored.created
    let created = Date.now()
    if (last !== undefined && created <= Date.parse(last)) {
      created = Date.parse(last) + 1
    }
    const stored: StoredKey = {
      kid,
      created: new Date(created).toISOString(),
      x: jwk.x!,
      sealed: sealSecret(sealKey, `signing-key:${kid}`, jwk.d!, new Date(created).toISOString()),
    }
    await save(stored)
    const loaded = await importStored(stored)
    keys.set(kid, loaded)
    return loaded
  }

  const info = (key: LoadedKey, signer: LoadedKey | undefined): KeyInfo => ({
    kid: key.stored.kid,
    created: key.stored.created,
    ...(key.stored.retired === undefined ? {} : { retired: key.stored.retired }),
    signing: key === signer,
  })

  return {
    async sign(payload, typ) {
      await load()
      const key = newestLive()?.privateKey ? newestLive()! : await makeKey()
      return new SignJWT(payload)
        .setProtectedHeader({ alg: TOKEN_ALGORITHM, typ, kid: key.stored.kid })
        .sign(key.privateKey!)
    },
    async verificationKey(kid) {
      await load()
      // A key made on another host a moment ago: read it before saying it is unknown.
      const key = keys.get(kid) ?? (await reloadOne(kid))
      return key && key.stored.retired === undefined ? key.publicKey : undefined
    },
    async rotate() {
      await load()
      const key = await makeKey()
      return info(key, key)
    },
    async retire(kid) {
      await load()
      const key = keys.get(kid) ?? (await reloadOne(kid))
      if (!key) {
        throw new WardenError('not_found', 'no signing key has that kid')
      }
      if (key.stored.retired !== undefined) {
        return
      }
      if (newestLive() === key) {
        await makeKey()
      }
      const { sealed: _sealed, ...rest } = key.stored
      const stored: StoredKey = { ...rest, retired: new Date().toISOString() }
      await save(stored)
      keys.set(kid, { stored, publicKey: key.publicKey })
    },
    async jwks() {
      await load()
      return {
        keys: sorted()
          .filter((key) => key.stored.retired === undefined)
          .map((key) => ({
            kty: 'OKP' as const,
            crv: 'Ed25519' as const,
            x: key.stored.x,
            kid: key.stored.kid,
            alg: TOKEN_ALGORITHM,
            use: 'sig' as const,
          })),
      }
    },
    async list() {
      await load()
      const signer = newestLive()
      return sorted().map((key) => info(key, signer))
    },
  }
}
