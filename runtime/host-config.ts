/**
 * The operator's configuration, resolved once from the environment. This is the only module
 * that reads `process.env` (STYLE.md §5).
 */
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { DEFAULT_CEILINGS } from './limits/limits.js'
import type { LimitCeilings } from './limits/limits.js'

/** Host configuration: where state lives, how big the pool is, the ceilings of every run. */
export interface HostConfig {
  /** Local state: caches, keys, stores. `WARDEN_DATA_DIR`, default `./.warden`. */
  dataDir: string
  /** Sandbox workers. `WARDEN_POOL_SIZE`, default the number of CPUs. */
  poolSize: number
  /** Redis for the distributed mode; unset means local files. `WARDEN_REDIS_URL`. */
  redisUrl: string | undefined
  /** HTTP port. `PORT`, default 8080. */
  port: number
  /** Ceilings no token or flag can exceed. */
  ceilings: LimitCeilings
  /**
   * The secrets master key, base64 of 32 bytes. `WARDEN_MASTER_KEY`; unset: the key file
   * `<dataDir>/master.key`, created on first start (see host-capabilities/secrets/store.ts).
   */
  masterKey: string | undefined
  /** Longest capability token lifetime, in seconds. `WARDEN_MAX_TOKEN_TTL_S`, default 7 days. */
  maxTokenLifetimeSeconds: number
}

/** Resolve the host configuration from an environment (default `process.env`). */
export function resolveHostConfig(env: NodeJS.ProcessEnv = process.env): Readonly<HostConfig> {
  return Object.freeze({
    dataDir: resolve(env.WARDEN_DATA_DIR ?? '.warden'),
    poolSize: positiveInt(env.WARDEN_POOL_SIZE, 'WARDEN_POOL_SIZE') ?? availableParallelism(),
    redisUrl: env.WARDEN_REDIS_URL || undefined,
    port: positiveInt(env.PORT, 'PORT') ?? 8080,
    ceilings: {
      maxMemoryMb:
        positiveInt(env.WARDEN_MAX_MEMORY_MB, 'WARDEN_MAX_MEMORY_MB') ?? DEFAULT_CEILINGS.maxMemoryMb,
      maxTimeoutMs:
        positiveInt(env.WARDEN_MAX_TIMEOUT_MS, 'WARDEN_MAX_TIMEOUT_MS') ?? DEFAULT_CEILINGS.maxTimeoutMs,
      maxFuel: positiveInt(env.WARDEN_MAX_FUEL, 'WARDEN_MAX_FUEL') ?? DEFAULT_CEILINGS.maxFuel,
    },
    masterKey: env.WARDEN_MASTER_KEY || undefined,
    maxTokenLifetimeSeconds:
      positiveInt(env.WARDEN_MAX_TOKEN_TTL_S, 'WARDEN_MAX_TOKEN_TTL_S') ?? 7 * 24 * 3600,
  })
}

function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') {
    return undefined
  }
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new TypeError(`${name} must be a positive integer, got ${JSON.stringify(value)}`)
  }
  return n
}
