/**
 * Redis mode (`WARDEN_REDIS_URL`): every store of a host on one shared Redis, behind the same
 * interfaces as the file stores, so that hosts started with the same URL and prefix are one
 * deployment. `openWarden({ redis })` uses these; the control plane's stores have their own
 * (`control-plane/redis-stores.ts`).
 */
import { createHash } from 'node:crypto'
import { deriveSubkey } from '../../host-capabilities/secrets/index.js'
import { WardenError } from '../errors.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'

export { openRedisConnection, storeUnavailable } from './connection.js'
export type { RedisConnection, RedisConnectionOptions } from './connection.js'
export { openRedisAuditLog, verifyAuditStream } from './audit.js'
export { openRedisAuditSigningKey, readRedisAuditVerificationKey } from './audit-key.js'
export type { RedisAuditLog, RedisAuditLogOptions } from './audit.js'
export { createRedisDataStore } from './data.js'
export { createRedisKeyStore } from './keys.js'
export { createRedisKillSwitch } from './kill-switch.js'
export { createRedisQuotaStore } from './quotas.js'
export { createRedisRevocationList, throwOnFailure } from './revocations.js'
export { createRedisSecretStore } from './secrets.js'
export type { RedisSecretStore } from './secrets.js'
export { BoundedSet } from './bounded.js'

/**
 * Refuse a host whose master key is not the deployment's: the first host leaves a fingerprint
 * of its key (a hash of a derived subkey, never the key), the others must match it, or they
 * could neither read the secrets nor the signing keys the others wrote.
 */
export async function checkMasterKey(redis: RedisConnection, masterKey: Uint8Array): Promise<void> {
  const fingerprint = createHash('sha256')
    .update(deriveSubkey(masterKey, 'warden redis master key check'))
    .digest('hex')
  const key = redis.key('master-key-check')
  let stored: string | null
  try {
    await redis.client.set(key, fingerprint, 'NX')
    stored = await redis.client.get(key)
  } catch (error) {
    throw storeUnavailable('the deployment cannot be joined', error)
  }
  if (stored !== fingerprint) {
    throw new WardenError(
      'invalid_request',
      'this host has another master key than the deployment on this Redis and prefix: ' +
        'give every host the same WARDEN_MASTER_KEY',
    )
  }
}
