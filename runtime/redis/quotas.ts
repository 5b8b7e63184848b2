/**
 * The quotas of `../quotas.ts`, counted in Redis for every host at once. One Lua script checks
 * the four counters and counts the run, atomically, on Redis's clock (`TIME`), so hosts with
 * skewed clocks share one window. Counter keys expire after their window.
 */
import { quotaExceeded } from '../quotas.js'
import type { QuotaName, QuotaStore, Quotas } from '../quotas.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'

// KEYS: app runs, token runs, app fuel, token fuel (bases; the window is appended here).
// ARGV: the four limits in the same order (0: none); ARGV[5]: 'admit' or a fuel amount.
const SCRIPT = `
local t = redis.call('TIME')
local minute = math.floor(tonumber(t[1]) / 60)
local day = math.floor(tonumber(t[1]) / 86400)
local runsApp = KEYS[1] .. ':' .. minute
local runsToken = KEYS[2] .. ':' .. minute
local fuelApp = KEYS[3] .. ':' .. day
local fuelToken = KEYS[4] .. ':' .. day
if ARGV[5] ~= 'admit' then
  local fuel = tonumber(ARGV[5])
  redis.call('INCRBY', fuelApp, fuel)
  redis.call('EXPIRE', fuelApp, 172800)
  redis.call('INCRBY', fuelToken, fuel)
  redis.call('EXPIRE', fuelToken, 172800)
  return ''
end
local function used(key) return tonumber(redis.call('GET', key) or '0') end
local function full(key, limit) return tonumber(limit) > 0 and used(key) >= tonumber(limit) end
if full(fuelApp, ARGV[3]) then return 'app-fuel-per-day' end
if full(fuelToken, ARGV[4]) then return 'token-fuel-per-day' end
if full(runsApp, ARGV[1]) then return 'app-runs-per-minute' end
if full(runsToken, ARGV[2]) then return 'token-runs-per-minute' end
redis.call('INCR', runsApp)
redis.call('EXPIRE', runsApp, 120)
redis.call('INCR', runsToken)
redis.call('EXPIRE', runsToken, 120)
return ''
`

/**
 * Quotas shared by every host on `redis`.
 *
 * @example
 * const quotas = createRedisQuotaStore(redis, { appRunsPerMinute: 600 })
 * await quotas.admit(appId, jti) // limit_exceeded past 600 runs this minute, on all hosts
 */
export function createRedisQuotaStore(redis: RedisConnection, quotas: Quotas): QuotaStore {
  const limits = [
    quotas.appRunsPerMinute,
    quotas.tokenRunsPerMinute,
    quotas.appFuelPerDay,
    quotas.tokenFuelPerDay,
  ].map((v) => String(v ?? 0))
  const keys = (appId: string, jti: string) => [
    redis.key(`quota:runs:app:${appId}`),
    redis.key(`quota:runs:token:${jti}`),
    redis.key(`quota:fuel:app:${appId}`),
    redis.key(`quota:fuel:token:${jti}`),
  ]
  const call = async (appId: string, jti: string, what: string): Promise<string> => {
    try {
      return String(await redis.client.eval(SCRIPT, 4, ...keys(appId, jti), ...limits, what))
    } catch (error) {
      throw storeUnavailable('the quotas cannot be counted', error)
    }
  }
  return {
    async admit(appId, jti) {
      const refused = await call(appId, jti, 'admit')
      if (refused !== '') {
        throw quotaExceeded(refused as QuotaName)
      }
    },
    async addFuel(appId, jti, fuel) {
      if (Number.isSafeInteger(fuel) && fuel > 0) {
        await call(appId, jti, String(fuel))
      }
    },
  }
}
