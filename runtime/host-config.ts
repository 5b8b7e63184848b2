/**
 * The operator's configuration, resolved once from the environment. This is the only module
 * that reads `process.env` (STYLE.md §5).
 */
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { DEFAULT_CEILINGS } from './limits/limits.js'
import type { LimitCeilings } from './limits/limits.js'
import type { Quotas } from './quotas.js'
import type { Isolation } from './sandbox/sandbox.js'
import type { TelemetryConfig } from './telemetry/telemetry.js'

/** Host configuration: where state lives, how big the pool is, the ceilings of every run. */
export interface HostConfig {
  /** Local state: caches, keys, stores. `WARDEN_DATA_DIR`, default `./.warden`. */
  dataDir: string
  /** Sandbox workers. `WARDEN_POOL_SIZE`, default the number of CPUs. */
  poolSize: number
  /**
   * Where runs are contained: `thread` (worker threads of the host process) or `process` (those
   * threads in a child process without secrets, file access or, where allowed, network).
   * `WARDEN_ISOLATION`, default `thread`.
   */
  isolation: Isolation
  /**
   * Resolution of guests' monotonic clocks, in nanoseconds. `WARDEN_CLOCK_RESOLUTION_US`
   * (microseconds), default 100 µs.
   */
  clockResolutionNs: number
  /**
   * Runs of one app running at once while other apps' runs wait. `WARDEN_MAX_RUNNING_PER_APP`,
   * default every worker but one.
   */
  maxRunningPerApp: number | undefined
  /**
   * A lone app may borrow idle workers past that while its recent runs took under this many ms
   * and none ended at a limit. `WARDEN_BORROW_BELOW_MS`, default 50; 0 never.
   */
  borrowBelowMs: number | undefined
  /** Runs of one app waiting beyond those. `WARDEN_MAX_QUEUED_PER_APP`, default 4 × the pool size. */
  maxQueuedPerApp: number | undefined
  /** Transpile child processes. `WARDEN_TRANSPILE_WORKERS`, default 2. */
  transpileWorkers: number
  /** Deadline of one transpilation, in ms. `WARDEN_TRANSPILE_TIMEOUT_MS`, default 20,000. */
  transpileTimeoutMs: number
  /** Loaded components kept in memory, in MiB. `WARDEN_LOADED_CACHE_MB`, default 256. */
  loadedCacheMb: number
  /** Redis for the distributed mode; unset means local files. `WARDEN_REDIS_URL`. */
  redisUrl: string | undefined
  /** Every Redis key and channel starts with it. `WARDEN_REDIS_PREFIX`, default `warden:`. */
  redisPrefix: string
  /**
   * Quotas of every app and token, on all hosts (Redis mode) or this one:
   * `WARDEN_QUOTA_APP_RUNS_PER_MINUTE`, `WARDEN_QUOTA_TOKEN_RUNS_PER_MINUTE`,
   * `WARDEN_QUOTA_APP_FUEL_PER_DAY`, `WARDEN_QUOTA_TOKEN_FUEL_PER_DAY`. Default: none.
   */
  quotas: Quotas
  /** HTTP port. `PORT`, default 8080. */
  port: number
  /** HTTP address to listen on. `HOST`, default 127.0.0.1 (this machine only). */
  host: string
  /**
   * Requests per second one API key (`WARDEN_RATE_LIMIT_KEY_RPS`, default 100) and one
   * capability token (`WARDEN_RATE_LIMIT_TOKEN_RPS`, default 500) may send.
   */
  rateLimits: { keyRps: number; tokenRps: number }
  /** Ceilings no token or flag can exceed. */
  ceilings: LimitCeilings
  /**
   * The secrets master key, base64 of 32 bytes. `WARDEN_MASTER_KEY`; unset: the key file
   * `<dataDir>/master.key`, created on first start (see host-capabilities/secrets/store.ts).
   */
  masterKey: string | undefined
  /**
   * Bytes of uploads one publisher key may keep in the registry, over every version of its apps
   * that are not decommissioned, in MiB. `WARDEN_PUBLISHER_QUOTA_MB`, default 2,048.
   */
  publisherQuotaMb: number
  /** Longest capability token lifetime, in seconds. `WARDEN_MAX_TOKEN_TTL_S`, default 7 days. */
  maxTokenLifetimeSeconds: number
  /**
   * OpenTelemetry: on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or a
   * per-signal one) and `OTEL_SDK_DISABLED` is not `true`; off by default. The SDK reads the
   * other `OTEL_*` variables itself (docs/telemetry.md).
   */
  otel: TelemetryConfig
}

/** Resolve the host configuration from an environment (default `process.env`). */
export function resolveHostConfig(env: NodeJS.ProcessEnv = process.env): Readonly<HostConfig> {
  return Object.freeze({
    dataDir: resolve(env.WARDEN_DATA_DIR ?? '.warden'),
    poolSize: positiveInt(env.WARDEN_POOL_SIZE, 'WARDEN_POOL_SIZE') ?? availableParallelism(),
    isolation: isolation(env.WARDEN_ISOLATION),
    clockResolutionNs:
      (positiveInt(env.WARDEN_CLOCK_RESOLUTION_US, 'WARDEN_CLOCK_RESOLUTION_US') ?? 100) * 1000,
    maxRunningPerApp: positiveInt(env.WARDEN_MAX_RUNNING_PER_APP, 'WARDEN_MAX_RUNNING_PER_APP'),
    maxQueuedPerApp: positiveInt(env.WARDEN_MAX_QUEUED_PER_APP, 'WARDEN_MAX_QUEUED_PER_APP'),
    borrowBelowMs: nonNegativeInt(env.WARDEN_BORROW_BELOW_MS, 'WARDEN_BORROW_BELOW_MS'),
    transpileWorkers: positiveInt(env.WARDEN_TRANSPILE_WORKERS, 'WARDEN_TRANSPILE_WORKERS') ?? 2,
    transpileTimeoutMs:
      positiveInt(env.WARDEN_TRANSPILE_TIMEOUT_MS, 'WARDEN_TRANSPILE_TIMEOUT_MS') ?? 20_000,
    loadedCacheMb: positiveInt(env.WARDEN_LOADED_CACHE_MB, 'WARDEN_LOADED_CACHE_MB') ?? 256,
    redisUrl: env.WARDEN_REDIS_URL || undefined,
    redisPrefix: env.WARDEN_REDIS_PREFIX || 'warden:',
    quotas: quotas(env),
    port: positiveInt(env.PORT, 'PORT') ?? 8080,
    host: env.HOST || '127.0.0.1',
    rateLimits: {
      keyRps: positiveInt(env.WARDEN_RATE_LIMIT_KEY_RPS, 'WARDEN_RATE_LIMIT_KEY_RPS') ?? 100,
      tokenRps: positiveInt(env.WARDEN_RATE_LIMIT_TOKEN_RPS, 'WARDEN_RATE_LIMIT_TOKEN_RPS') ?? 500,
    },
    ceilings: {
      maxMemoryMb:
        positiveInt(env.WARDEN_MAX_MEMORY_MB, 'WARDEN_MAX_MEMORY_MB') ??
        DEFAULT_CEILINGS.maxMemoryMb,
      maxTimeoutMs:
        positiveInt(env.WARDEN_MAX_TIMEOUT_MS, 'WARDEN_MAX_TIMEOUT_MS') ??
        DEFAULT_CEILINGS.maxTimeoutMs,
      maxFuel: positiveInt(env.WARDEN_MAX_FUEL, 'WARDEN_MAX_FUEL') ?? DEFAULT_CEILINGS.maxFuel,
    },
    masterKey: env.WARDEN_MASTER_KEY || undefined,
    maxTokenLifetimeSeconds:
      positiveInt(env.WARDEN_MAX_TOKEN_TTL_S, 'WARDEN_MAX_TOKEN_TTL_S') ?? 7 * 24 * 3600,
    publisherQuotaMb:
      positiveInt(env.WARDEN_PUBLISHER_QUOTA_MB, 'WARDEN_PUBLISHER_QUOTA_MB') ?? 2048,
    otel: Object.freeze({ enabled: telemetryEnabled(env) }),
  })
}

const OTLP_ENDPOINTS = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
  'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT',
] as const

/** On when an OTLP endpoint is set, unless the SDK is disabled (its own boolean parsing). */
function telemetryEnabled(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') {
    return false
  }
  return OTLP_ENDPOINTS.some((name) => (env[name]?.trim() ?? '') !== '')
}

function quotas(env: NodeJS.ProcessEnv): Quotas {
  const out: Quotas = {}
  const set = (field: keyof Quotas, name: string) => {
    const value = positiveInt(env[name], name)
    if (value !== undefined) {
      out[field] = value
    }
  }
  set('appRunsPerMinute', 'WARDEN_QUOTA_APP_RUNS_PER_MINUTE')
  set('tokenRunsPerMinute', 'WARDEN_QUOTA_TOKEN_RUNS_PER_MINUTE')
  set('appFuelPerDay', 'WARDEN_QUOTA_APP_FUEL_PER_DAY')
  set('tokenFuelPerDay', 'WARDEN_QUOTA_TOKEN_FUEL_PER_DAY')
  return out
}

function isolation(value: string | undefined): Isolation {
  if (value === undefined || value === '') {
    return 'thread'
  }
  if (value !== 'thread' && value !== 'process') {
    throw new TypeError(`WARDEN_ISOLATION must be thread or process, got ${JSON.stringify(value)}`)
  }
  return value
}

function positiveInt(value: string | undefined, name: string): number | undefined {
  const n = nonNegativeInt(value, name)
  if (n === 0) {
    throw new TypeError(`${name} must be a positive integer, got ${JSON.stringify(value)}`)
  }
  return n
}

function nonNegativeInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') {
    return undefined
  }
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new TypeError(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`)
  }
  return n
}
