/**
 * The secret store of a deployment: the hash `<prefix>secrets`, name → the same AES-256-GCM
 * envelope the file store writes (ciphertext only: Redis never sees a value or the master key,
 * which every host of the deployment must share). Writes are announced, so that every host
 * rebuilds its redactor ({@link RedisSecretStore.onChange}).
 */
import {
  assertSecretName,
  assertSecretValue,
  isSecretName,
  openSecret,
  sealedAt,
  sealSecret,
} from '../../host-capabilities/secrets/index.js'
import type { SecretStore } from '../../host-capabilities/secrets/index.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'
import { throwOnFailure } from './revocations.js'

/** A shared secret store, which says when any host changed it. */
export interface RedisSecretStore extends SecretStore {
  /** Called after any host's put or delete (and after a reconnect). */
  onChange(listener: () => void): () => void
}

/**
 * The shared secret store.
 *
 * @example
 * const secrets = createRedisSecretStore(redis, masterKey)
 * await secrets.put('github_token', 'ghp_…')
 */
export function createRedisSecretStore(
  redis: RedisConnection,
  masterKey: Uint8Array,
): RedisSecretStore {
  const key = redis.key('secrets')
  const sealKey = Buffer.from(masterKey)
  const announce = JSON.stringify({ store: 'secrets', data: null })
  const guard = async <T>(what: string, task: () => Promise<T>): Promise<T> => {
    try {
      return await task()
    } catch (error) {
      throw storeUnavailable(what, error)
    }
  }
  return {
    async put(name, value) {
      assertSecretName(name)
      assertSecretValue(value)
      const updatedAt = new Date().toISOString()
      const sealed = sealSecret(sealKey, name, value, updatedAt)
      await guard('the secret cannot be written', async () =>
        throwOnFailure(
          await redis.client
            .multi()
            .hset(key, name, sealed)
            .publish(redis.channel, announce)
            .exec(),
        ),
      )
      return { name, updatedAt }
    },
    async delete(name) {
      assertSecretName(name)
      const [removed] = await guard('the secret cannot be deleted', async () =>
        throwOnFailure(
          await redis.client.multi().hdel(key, name).publish(redis.channel, announce).exec(),
        ),
      )
      return removed === 1
    },
    async list() {
      const all = await guard('the secrets cannot be listed', () => redis.client.hgetall(key))
      return Object.entries(all)
        .filter(([name]) => isSecretName(name))
        .map(([name, text]) => ({ name, updatedAt: sealedAt(text) ?? '' }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    },
    async read(name) {
      assertSecretName(name)
      const text = await guard('the secret cannot be read', () => redis.client.hget(key, name))
      return text === null ? undefined : openSecret(sealKey, name, text)
    },
    onChange(listener) {
      const stopChange = redis.onChange('secrets', () => listener())
      const stopReconnect = redis.onReconnect(listener)
      return () => {
        stopChange()
        stopReconnect()
      }
    },
  }
}
