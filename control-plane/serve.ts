/**
 * `warden serve`: the control plane on a port, over the embedded default (local files in the
 * data dir). On first start it creates a bootstrap admin key, writes it to
 * `<dataDir>/admin.key` (mode 0600; never printed, never logged) and says where it is. With an
 * OTLP endpoint in the environment it starts OpenTelemetry first and flushes it last.
 */
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { serve } from '@hono/node-server'
import type { ServerType } from '@hono/node-server'
import {
  openRedisConnection,
  openWarden,
  resolveMasterKey,
  startTelemetry,
  writeFileAtomic,
} from '../runtime/index.js'
import type { HostConfig, RedisConnection, Warden, WardenOptions } from '../runtime/index.js'
import { openApiKeyStore } from './api-keys.js'
import type { ApiKeyStore } from './api-keys.js'
import { prepareAgentApp } from './agent.js'
import { createControlPlane } from './app.js'
import { openAppRegistry } from './registry.js'
import type { AppRegistry } from './registry.js'
import { openRedisRouteStore, openRouteStore } from './route-store.js'
import { openTokenIndex } from './token-index.js'

/** Options of {@link startServer}. */
export interface ServeOptions {
  config: Readonly<HostConfig>
  /** Port to listen on; 0 picks a free one. Default `config.port`. */
  port?: number
  /** Default `config.host`. */
  host?: string
  /** Extra options for `openWarden` (tests: a DNS lookup, a pool size). */
  warden?: Partial<WardenOptions>
  /**
   * Load and register the built-in JS sandbox (the app `js`, `POST /v1/runs` with `source`).
   * Default true; tests that do not use it turn it off to start faster.
   */
  agent?: boolean
  /** Where start-up progress goes (the agent's build, when its cache is cold). Default stderr. */
  log?: (message: string) => void
}

/** A running server. */
export interface RunningServer {
  /** `http://host:port`. */
  readonly url: string
  readonly warden: Warden
  readonly keys: ApiKeyStore
  readonly registry: AppRegistry
  /** Where the bootstrap admin key was written, when this start created it. */
  readonly bootstrapKeyFile: string | undefined
  /**
   * Stop accepting connections, let requests in flight finish (runs up to `graceMs`), write
   * the registry and close Warden (which checkpoints the audit log).
   */
  close(graceMs?: number): Promise<void>
}

/** Where a data dir keeps the bootstrap admin key. */
export function adminKeyPath(dataDir: string): string {
  return join(dataDir, 'admin.key')
}

/**
 * Open the data dir and serve the control plane.
 *
 * @example
 * const server = await startServer({ config: resolveHostConfig() })
 * console.log(server.url)
 */
export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { config } = options
  const { dataDir } = config
  // Redis mode: one deployment with every host on the same URL and prefix. Unreachable at
  // start is an error (store_unavailable), never a silent fall back to local files.
  const redis: RedisConnection | undefined = config.redisUrl
    ? await openRedisConnection({ url: config.redisUrl, prefix: config.redisPrefix })
    : undefined
  const shared = redis ? { redis } : {}
  // Off (nothing loaded) unless an OTLP endpoint is set.
  const telemetry = await startTelemetry(config.otel)
  let warden: Warden
  let registry: AppRegistry
  try {
    registry = await openAppRegistry(dataDir, {
      ...shared,
      publisherQuotaBytes: config.publisherQuotaMb * 1024 * 1024,
    })
    const stopped = registry
      .list()
      .filter((a) => a.status === 'disabled' || a.status === 'decommissioned')
      .map((a) => a.id)
    warden = await openWarden({
      ...config,
      disabledApps: stopped,
      ...shared,
      telemetry,
      ...options.warden,
    })
  } catch (error) {
    await redis?.close()
    await telemetry.shutdown()
    throw error
  }
  let server: ServerType | undefined
  try {
    const keys = await openApiKeyStore(join(dataDir, 'api-keys.json'), shared)
    const tokens = await openTokenIndex(dataDir, shared)
    const routes = redis
      ? openRedisRouteStore(redis, await resolveMasterKey({ fromEnv: config.masterKey, dataDir }))
      : await openRouteStore(dataDir)
    let bootstrapKeyFile: string | undefined
    if (!keys.list().some((k) => k.role === 'admin' && !k.revokedAt)) {
      const { key, info } = await keys.create('admin', { label: 'bootstrap', actor: 'bootstrap' })
      bootstrapKeyFile = adminKeyPath(dataDir)
      await writeFileAtomic(bootstrapKeyFile, `${key}\n`)
      await warden.audit.append({
        kind: 'admin',
        op: 'key.create',
        actor: 'bootstrap',
        target: `key:${info.id}`,
        decision: 'allow',
        reason: 'admin',
      })
    }
    const agent =
      options.agent === false
        ? undefined
        : await prepareAgentApp(warden, registry, {
            log: options.log ?? ((message) => process.stderr.write(`${message}\n`)),
            workers: options.warden?.poolSize ?? config.poolSize,
            ceilings: config.ceilings,
          })
    const app = createControlPlane({
      warden,
      keys,
      registry,
      tokens,
      routes,
      rateLimits: config.rateLimits,
      ...(agent ? { agent } : {}),
      ...(redis ? { sync: () => redis.sync(), redis } : {}),
    })
    const host = options.host ?? config.host
    const listening = await new Promise<AddressInfo>((resolve, reject) => {
      server = serve(
        { fetch: app.fetch, port: options.port ?? config.port, hostname: host },
        (info) => resolve(info),
      )
      server.once('error', reject)
    })
    const shown = listening.family === 'IPv6' ? `[${listening.address}]` : listening.address
    let closing: Promise<void> | undefined
    return {
      url: `http://${shown}:${listening.port}`,
      warden,
      keys,
      registry,
      bootstrapKeyFile,
      close(graceMs = 10_000) {
        closing ??= (async () => {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              ;(server as { closeAllConnections?: () => void }).closeAllConnections?.()
              resolve()
            }, graceMs)
            server!.close(() => {
              clearTimeout(timer)
              resolve()
            })
            ;(server as { closeIdleConnections?: () => void }).closeIdleConnections?.()
          })
          await app.close()
          await registry.flush()
          await warden.close()
          await redis?.close()
          // Last: the final audit checkpoint goes out too.
          await telemetry.shutdown()
        })()
        return closing
      },
    }
  } catch (error) {
    server?.close()
    await warden.close()
    await redis?.close()
    await telemetry.shutdown()
    throw error
  }
}

/**
 * The "try it" block printed at start: upload, approve, grant and invoke with `curl`,
 * ready to paste in a POSIX shell. `wasmFile` is a component to upload.
 */
export function tryItBlock(url: string, keyFile: string, wasmFile: string): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`
  return [
    `KEY=$(cat ${q(keyFile)})`,
    `curl -s -X POST "${url}/v1/apps?name=hello&owner=it-team&purpose=try+Warden" \\`,
    `  -H "authorization: Bearer $KEY" -H 'content-type: application/wasm' \\`,
    `  --data-binary @${q(wasmFile)}; echo`,
    `curl -s -X POST ${url}/v1/apps/hello/approve -H "authorization: Bearer $KEY"; echo`,
    `TOKEN=$(curl -s -X POST ${url}/v1/tokens -H "authorization: Bearer $KEY" \\`,
    `  -H 'content-type: application/json' -d '{"app":"hello","grants":{"log":true},"ttlSeconds":600}' \\`,
    `  | node -e 'process.stdin.on("data", (d) => console.log(JSON.parse(d).token))')`,
    `curl -s -X POST ${url}/v1/apps/hello/invoke -H "authorization: Bearer $TOKEN" \\`,
    `  -H 'content-type: application/json' -d '{"input":{"greeting":"hello from curl"}}'; echo`,
  ].join('\n')
}
