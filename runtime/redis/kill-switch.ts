/**
 * The kill switch of a deployment: the Redis set `<prefix>disabled-apps`; each change is
 * announced on the change channel in the same transaction, so every host ends the app's runs at
 * once. Hosts also re-read the set on a timer (the watchdog) and after a reconnect, for
 * messages they missed.
 */
import type { KillSwitchStore } from '../kill-switch.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'
import { throwOnFailure } from './revocations.js'

/**
 * The shared kill switch.
 *
 * @example
 * const killSwitch = createRedisKillSwitch(redis)
 * await killSwitch.set('app-0123456789abcdef', true)
 */
export function createRedisKillSwitch(redis: RedisConnection): KillSwitchStore {
  const key = redis.key('disabled-apps')
  return {
    async list() {
      try {
        return (await redis.client.smembers(key)).sort()
      } catch (error) {
        throw storeUnavailable('the kill switch cannot be read', error)
      }
    },
    async set(appId, disabled) {
      const multi = redis.client.multi()
      if (disabled) {
        multi.sadd(key, appId)
      } else {
        multi.srem(key, appId)
      }
      multi.publish(redis.channel, JSON.stringify({ store: 'disabled', data: { appId, disabled } }))
      try {
        throwOnFailure(await multi.exec())
      } catch (error) {
        throw storeUnavailable('the kill switch cannot be written', error)
      }
    },
    onChange(listener) {
      return redis.onChange('disabled', (data) => {
        const { appId, disabled } = (data ?? {}) as { appId?: unknown; disabled?: unknown }
        if (typeof appId === 'string' && typeof disabled === 'boolean') {
          listener(appId, disabled)
        }
      })
    },
  }
}
