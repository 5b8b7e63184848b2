/**
 * Quotas per app and per capability token: runs per minute and fuel per day, counted where every
 * host of a deployment sees them (Redis, `redis/quotas.ts`) or, on one host, in memory. The
 * operator sets them for every app and token alike (`WARDEN_QUOTA_*`, docs/design-changes.md
 * says why not in tokens). Past a quota a run is refused with `limit_exceeded`, the message
 * naming the quota.
 *
 * Runs are counted before they start, atomically with the check (a fixed one-minute window of
 * the store's clock). Fuel is known only after a run: a run starts while the day's fuel is under
 * the quota and adds what it used when it ends, so concurrent runs may pass the quota by at most
 * one run's fuel each.
 */
import { WardenError } from './errors.js'

/** The four quotas; absent means none. */
export interface Quotas {
  /** Runs of one app per minute, on all hosts. `WARDEN_QUOTA_APP_RUNS_PER_MINUTE`. */
  appRunsPerMinute?: number
  /** Runs under one token per minute. `WARDEN_QUOTA_TOKEN_RUNS_PER_MINUTE`. */
  tokenRunsPerMinute?: number
  /** Fuel of one app per UTC day. `WARDEN_QUOTA_APP_FUEL_PER_DAY`. */
  appFuelPerDay?: number
  /** Fuel under one token per UTC day. `WARDEN_QUOTA_TOKEN_FUEL_PER_DAY`. */
  tokenFuelPerDay?: number
}

/** The names a refusal gives, in the order they are checked. */
export type QuotaName =
  | 'app-fuel-per-day'
  | 'token-fuel-per-day'
  | 'app-runs-per-minute'
  | 'token-runs-per-minute'

/** Where runs and fuel are counted. */
export interface QuotaStore {
  /**
   * Count one run of `appId` under `jti`, or refuse it with `limit_exceeded` (nothing counted).
   * Rejects with `store_unavailable` when the count cannot be read.
   */
  admit(appId: string, jti: string): Promise<void>
  /** Add the fuel a run used. Rejects with `store_unavailable`. */
  addFuel(appId: string, jti: string, fuel: number): Promise<void>
}

/** True when at least one quota is set. */
export function hasQuotas(quotas: Quotas): boolean {
  return Object.values(quotas).some((v) => v !== undefined)
}

/** The refusal of a run past `quota`. */
export function quotaExceeded(quota: QuotaName): WardenError {
  return new WardenError('limit_exceeded', `the quota ${quota} is used up`)
}

/**
 * Counters in this process: the quotas of a host with local files.
 *
 * @example
 * const quotas = createMemoryQuotaStore({ appRunsPerMinute: 600 })
 */
export function createMemoryQuotaStore(quotas: Quotas, now: () => number = Date.now): QuotaStore {
  const counts = new Map<string, number>()
  let window = ''
  const windowed = (name: string) => {
    const ms = now()
    const minute = Math.floor(ms / 60_000)
    const day = Math.floor(ms / 86_400_000)
    const current = `${minute}:${day}`
    if (current !== window) {
      // Drop the windows that ended (the day's fuel stays until the day ends).
      for (const key of counts.keys()) {
        if (
          (key.startsWith('runs:') && !key.endsWith(`:${minute}`)) ||
          (key.startsWith('fuel:') && !key.endsWith(`:${day}`))
        ) {
          counts.delete(key)
        }
      }
      window = current
    }
    return `${name}:${name.startsWith('runs:') ? minute : day}`
  }
  const get = (key: string) => counts.get(key) ?? 0
  return {
    async admit(appId, jti) {
      const appFuel = windowed(`fuel:app:${appId}`)
      const tokenFuel = windowed(`fuel:token:${jti}`)
      const appRuns = windowed(`runs:app:${appId}`)
      const tokenRuns = windowed(`runs:token:${jti}`)
      const checks: [QuotaName, string, number | undefined][] = [
        ['app-fuel-per-day', appFuel, quotas.appFuelPerDay],
        ['token-fuel-per-day', tokenFuel, quotas.tokenFuelPerDay],
        ['app-runs-per-minute', appRuns, quotas.appRunsPerMinute],
        ['token-runs-per-minute', tokenRuns, quotas.tokenRunsPerMinute],
      ]
      for (const [name, key, limit] of checks) {
        if (limit !== undefined && get(key) >= limit) {
          throw quotaExceeded(name)
        }
      }
      counts.set(appRuns, get(appRuns) + 1)
      counts.set(tokenRuns, get(tokenRuns) + 1)
    },
    async addFuel(appId, jti, fuel) {
      for (const key of [windowed(`fuel:app:${appId}`), windowed(`fuel:token:${jti}`)]) {
        counts.set(key, get(key) + fuel)
      }
    },
  }
}
