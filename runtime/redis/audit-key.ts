/**
 * The checkpoint signing key of a deployment's audit stream: one Ed25519 key for every host,
 * kept in `<prefix>audit:signing-key` with its private half sealed by a subkey of the master
 * key (AES-256-GCM), as the token key ring is (keys.ts). Whoever can write Redis but does not
 * hold the master key can rebuild the stream's hash chain, but not the signatures over it.
 * The first host to open the stream makes the key (`SET NX`: one key, whoever races).
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { deriveSubkey, openSecret, sealSecret } from '../../host-capabilities/secrets/index.js'
import { auditSigningKeyFrom } from '../audit/checkpoint.js'
import type { AuditSigningKey } from '../audit/checkpoint.js'
import { WardenError } from '../errors.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'

const SEAL_PURPOSE = 'warden redis audit signing key'
const SEAL_NAME = 'audit-signing-key'

/**
 * The deployment's checkpoint signing key, made (and stored sealed) when there is none yet.
 * `created` says whether this call made it. Rejects with `store_unavailable` when Redis is
 * away, and with `internal` when the stored key does not open with this master key.
 *
 * @example
 * const { key } = await openRedisAuditSigningKey(redis, masterKey)
 */
export async function openRedisAuditSigningKey(
  redis: RedisConnection,
  masterKey: Uint8Array,
): Promise<{ key: AuditSigningKey; created: boolean }> {
  const sealKey = deriveSubkey(masterKey, SEAL_PURPOSE)
  const name = redis.key('audit:signing-key')
  let created = false
  let text = await read(redis, name)
  if (text === null) {
    const { privateKey } = generateKeyPairSync('ed25519')
    const der = privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64')
    const sealed = sealSecret(sealKey, SEAL_NAME, der, new Date().toISOString())
    try {
      created = (await redis.client.set(name, sealed, 'NX')) === 'OK'
    } catch (error) {
      throw storeUnavailable('the audit signing key cannot be stored', error)
    }
    text = created ? sealed : await read(redis, name)
    if (text === null) {
      throw new WardenError('internal', 'the audit signing key vanished while it was made')
    }
  }
  return { key: unseal(sealKey, text), created }
}

/**
 * The public key that verifies the stream's checkpoints (`warden audit verify` with
 * `WARDEN_REDIS_URL` and the master key), or undefined when the deployment has none yet.
 * It is derived from the sealed private half, so a key swapped in Redis does not open.
 */
export async function readRedisAuditVerificationKey(
  redis: RedisConnection,
  masterKey: Uint8Array,
): Promise<KeyObject | undefined> {
  const text = await read(redis, redis.key('audit:signing-key'))
  if (text === null) {
    return undefined
  }
  return unseal(deriveSubkey(masterKey, SEAL_PURPOSE), text).publicKey
}

function unseal(sealKey: Uint8Array, text: string): AuditSigningKey {
  const der = Buffer.from(openSecret(sealKey, SEAL_NAME, text), 'base64')
  return auditSigningKeyFrom(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }))
}

async function read(redis: RedisConnection, name: string): Promise<string | null> {
  try {
    return await redis.client.get(name)
  } catch (error) {
    throw storeUnavailable('the audit signing key cannot be read', error)
  }
}
