/**
 * The control plane as a hono app: the routes of DESIGN.md's HTTP API over an open Warden,
 * its API keys, app registry and token index. Every body, query and parameter is checked with
 * zod through `@hono/zod-openapi`, and `/openapi.json` (OpenAPI 3.1) is generated from the same
 * schemas. `serve.ts` puts it on a port.
 */
import { OpenAPIHono } from '@hono/zod-openapi'
import type { Hook } from '@hono/zod-openapi'
import { DEFAULT_MAX_COMPONENT_BYTES, describeIssue, WardenError } from '../runtime/index.js'
import type { LoadedComponent, MeteringReport, RedisConnection, Warden } from '../runtime/index.js'
import type { ApiKeyStore } from './api-keys.js'
import type { ControlPlaneEnv } from './auth.js'
import { bearerOf } from './auth.js'
import { capBody } from './body.js'
import { answerError } from './http-errors.js'
import { createMetrics } from './metrics.js'
import type { ControlPlaneMetrics } from './metrics.js'
import { hasDotSegment, MICRO_APP_DEFAULTS } from './micro-app-http.js'
import { createRateLimiter, DEFAULT_RATE_LIMITS } from './rate-limit.js'
import { clientOf, createRefusalAudit } from './refusals.js'
import type { RefusalAudit } from './refusals.js'
import type { RateLimiter, RateLimits } from './rate-limit.js'
import type { AppRegistry } from './registry.js'
import type { RouteStore } from './route-store.js'
import { registerAppRoutes } from './routes/apps.js'
import { registerAuditRoutes } from './routes/audit.js'
import { registerKeyRoutes } from './routes/keys.js'
import { registerMicroAppRoutes } from './routes/micro-apps.js'
import { registerRunRoutes } from './routes/runs.js'
import { registerStoreRoutes } from './routes/stores.js'
import { registerSystemRoutes } from './routes/system.js'
import { registerTokenRoutes } from './routes/tokens.js'
import type { TokenIndex } from './token-index.js'
import { matchedRoute, traceRequests } from './tracing.js'

/** What the routes work on. */
export interface ControlPlaneDeps {
  warden: Warden
  keys: ApiKeyStore
  registry: AppRegistry
  tokens: TokenIndex
  /** Route bindings of HTTP micro-apps (`/apps/<name>/`). */
  routes: RouteStore
  /** Caps of HTTP micro-apps, in bytes. Default {@link MICRO_APP_DEFAULTS}: 1 MiB in, 5 MiB out. */
  microApps?: Partial<MicroAppCaps>
  /** Upload cap in bytes. Default 64 MiB (the loader's). */
  maxUploadBytes?: number
  /** Cap of every JSON body, in bytes. Default 1 MiB. */
  maxJsonBytes?: number
  /** Requests per second per API key and per capability token. Default {@link DEFAULT_RATE_LIMITS}. */
  rateLimits?: RateLimits
  /**
   * The built-in JS agent component, loaded and registered as the app `js` (`agent.ts`):
   * `POST /v1/runs` with `source` runs it. Absent: such runs answer `not_found`.
   */
  agent?: LoadedComponent
  /**
   * Redis mode: a barrier awaited before each `/v1` request, so that it sees every change other
   * hosts acknowledged before it began; rejects with `store_unavailable` when Redis is away.
   */
  sync?: () => Promise<void>
  /** Redis mode: the rate limits are counted in this Redis, for every host at once. */
  redis?: RedisConnection
}

/** Body caps of HTTP micro-apps, in bytes. */
export interface MicroAppCaps {
  /** A request body; past it `payload_too_large`, read no further. */
  maxRequestBytes: number
  /** A response body; past it `invalid_response`. */
  maxResponseBytes: number
}

/** The routes' shared state: the deps and recent invocations. */
export interface ControlPlaneContext extends ControlPlaneDeps {
  maxUploadBytes: number
  microApps: MicroAppCaps
  /** The per-credential rate limiter (the `/v1/*` middleware's; routes share it). */
  limiter: RateLimiter
  /** The last runs, by invocation id, for `GET /v1/invocations/:id` (bounded). */
  recent: RecentInvocations
  metrics: ControlPlaneMetrics
  /** Audit records of refused credentials, bounded per client address. */
  refusals: RefusalAudit
}

/** A bounded map of the last runs' reports, by invocation id (the oldest go first). */
export class RecentInvocations {
  readonly #max: number
  readonly #reports = new Map<string, MeteringReport>()

  constructor(max = 1000) {
    this.#max = max
  }

  add(report: MeteringReport): void {
    this.#reports.set(report.invocationId, report)
    if (this.#reports.size > this.#max) {
      this.#reports.delete(this.#reports.keys().next().value!)
    }
  }

  get(id: string): MeteringReport | undefined {
    return this.#reports.get(id)
  }
}

/** A route path as a regular expression, to tell `method_not_allowed` from `not_found`. */
function routePattern(path: string): RegExp {
  const segments = path.split('/').map((segment) => {
    if (/^:[A-Za-z]+\{.*\}$/.test(segment)) {
      return '.+'
    }
    return segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  })
  return new RegExp(`^${segments.join('/')}$`)
}

/**
 * Build the control plane's hono app.
 *
 * @example
 * const app = createControlPlane({ warden, keys, registry, tokens })
 * serve({ fetch: app.fetch, port: 8080 })
 */
export function createControlPlane(
  deps: ControlPlaneDeps,
): OpenAPIHono<ControlPlaneEnv> & { close(): Promise<void> } {
  const defaultHook: Hook<unknown, ControlPlaneEnv, string, unknown> = (result, c) => {
    if (!result.success) {
      return c.json(
        { error: { code: 'invalid_request', message: describeIssue(result.error) } },
        400,
      )
    }
    return undefined
  }
  const app = new OpenAPIHono<ControlPlaneEnv>({ defaultHook })
  const limiter = createRateLimiter(deps.rateLimits ?? DEFAULT_RATE_LIMITS, deps.redis)
  const ctx: ControlPlaneContext = {
    ...deps,
    maxUploadBytes: deps.maxUploadBytes ?? DEFAULT_MAX_COMPONENT_BYTES,
    microApps: {
      maxRequestBytes: deps.microApps?.maxRequestBytes ?? MICRO_APP_DEFAULTS.maxRequestBytes,
      maxResponseBytes: deps.microApps?.maxResponseBytes ?? MICRO_APP_DEFAULTS.maxResponseBytes,
    },
    limiter,
    recent: new RecentInvocations(),
    metrics: createMetrics(deps.warden),
    refusals: createRefusalAudit(deps.warden.audit),
  }
  const maxJson = deps.maxJsonBytes ?? 1024 * 1024
  if (deps.warden.telemetry.enabled) {
    // Outermost, so the span covers everything below; absent when telemetry is off.
    app.use('*', traceRequests(deps.warden.telemetry, deps.warden.redact))
  }
  app.use('*', async (c, next) => {
    // The target as it came off the wire (the Request's URL is already resolved).
    const raw = (c.env as { incoming?: { url?: unknown } } | undefined)?.incoming?.url
    if (typeof raw === 'string' && hasDotSegment(raw)) {
      throw new WardenError('invalid_request', 'the path has a `.` or `..` segment')
    }
    await next()
  })
  app.use('*', async (c, next) => {
    const started = performance.now()
    c.header('cache-control', 'no-store')
    c.header('x-content-type-options', 'nosniff')
    await next()
    // The route's pattern, never the path a caller chose.
    const route = matchedRoute(c.req.routePath) ?? 'unmatched'
    ctx.metrics.request(route, c.req.method, c.res.status, (performance.now() - started) / 1000)
  })
  app.use('/v1/*', async (c, next) => {
    const lost = await deps.sync?.().then(
      () => undefined,
      (error: unknown) => error,
    )
    const credential = bearerOf(c.req.header('authorization'))
    if (lost !== undefined && (credential === undefined || credential.startsWith('wdn_'))) {
      // Fail closed: no API key is trusted from a copy that cannot be brought up to date. A
      // capability token goes on to its own check, which fails closed too, on the record.
      throw lost
    }
    if (credential === undefined) {
      // Every /v1 route needs a credential: a request without one is refused by its route's
      // middleware, before any validator reads its body, and counted against its sender here,
      // as a wrong key is (twelfth outside attack: anonymous floods were counted nowhere).
      await ctx.refusals.record(c, 'unauthorized')
      await limiter.check({ kind: 'client', address: clientOf(c) })
    } else if (credential.startsWith('wdn_')) {
      const key = deps.keys.authenticate(credential)
      if (key) {
        await limiter.check({ kind: 'key', id: key.id })
      } else {
        // A wrong key is audited (bounded) and counted against its sender, never the key.
        await ctx.refusals.record(c, 'unauthorized')
        await limiter.check({ kind: 'client', address: clientOf(c) })
      }
    }
    // A capability token is counted where its route verifies it (`tokenFirst`, before the
    // route's validators): by its family once verified, else against its sender. Counting it
    // by its string here would give each forged string a fresh budget (fifth outside attack).
    await next()
  })
  const jsonCap = capBody(maxJson)
  app.use('/v1/*', (c, next) => {
    // The upload streams its own body under its own cap.
    if (c.req.method === 'POST' && c.req.path === '/v1/apps') {
      return next()
    }
    return jsonCap(c, next)
  })

  registerSystemRoutes(app, ctx)
  registerKeyRoutes(app, ctx)
  registerAppRoutes(app, ctx)
  registerTokenRoutes(app, ctx)
  registerRunRoutes(app, ctx)
  registerStoreRoutes(app, ctx)
  registerAuditRoutes(app, ctx)
  registerMicroAppRoutes(app, ctx)

  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key (`wdn_…`) with the role the route names',
  })
  app.openAPIRegistry.registerComponent('securitySchemes', 'capabilityToken', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A Warden capability token (EdDSA JWS, typ warden-cap+jwt)',
  })
  // Generated once, on the first request, and served from memory: the library's `doc31`
  // regenerates it per request (13–25 ms of CPU), on a route anyone may call.
  let openApiDocument: string | undefined
  app.get('/openapi.json', (c) => {
    openApiDocument ??= JSON.stringify(
      app.getOpenAPI31Document({
        openapi: '3.1.0',
        info: {
          title: 'Warden control plane',
          version: '0.1.0',
          description: 'Run untrusted WebAssembly micro-apps with capability tokens.',
        },
      }),
    )
    return c.body(openApiDocument, 200, { 'content-type': 'application/json' })
  })

  const known = app.routes.map((r) => ({
    method: r.method,
    pattern: routePattern(r.path),
  }))
  app.notFound((c) => {
    const allowed = known.filter((r) => r.method !== 'ALL' && r.pattern.test(c.req.path))
    if (allowed.length > 0) {
      c.header('allow', [...new Set(allowed.map((r) => r.method))].join(', '))
      return answerError(
        c,
        new WardenError('method_not_allowed', `${c.req.method} is not allowed on this route`),
      )
    }
    return answerError(c, new WardenError('not_found', 'no such route'))
  })
  app.onError((error, c) => answerError(c, error))
  // Before Warden closes: what the refusal recorder counted goes on the record.
  return Object.assign(app, { close: () => ctx.refusals.close() })
}
