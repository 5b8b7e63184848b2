/**
 * HTTP micro-apps: an admin binds an approved `micro-app` to `/apps/<name>/` with a capability
 * token (`POST /v1/apps/:id/route`), and `ANY /apps/<name>/…` runs the app's `handler.handle`
 * in a fresh instance under that token for each request. The mapping to and from the WIT
 * records, and every check of what the guest answers, is in `../micro-app-http.ts`.
 *
 * A request is refused, each with its stable code, when: the route is unknown (`not_found`,
 * for every malformed or percent-encoded name too), the bound token is over its rate
 * (`rate_limited`), the app is decommissioned (`not_found`), disabled (`app_disabled`) or its
 * current build is pending (`app_not_approved`), the bound token no longer verifies
 * (`token_expired`, `token_revoked`, `token_invalid` after a new build), or the body is over the
 * cap (`payload_too_large`, read no further). The run's own failures answer with Warden's codes
 * (`timeout`, `fuel_exhausted`, `memory_limit`, `guest_trap`…), and an answer HTTP cannot carry
 * with `invalid_response`.
 */
import { createRoute, z } from '@hono/zod-openapi'
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import {
  grantsSchema,
  limitsRequestSchema,
  toWardenError,
  WardenError,
} from '../../runtime/index.js'
import type { CapabilityClaims } from '../../runtime/index.js'
import type { ControlPlaneContext } from '../app.js'
import { actorOf, requireRole } from '../auth.js'
import type { ControlPlaneEnv } from '../auth.js'
import { readBodyCapped } from '../body.js'
import {
  checkGuestResponse,
  MICRO_APP_CSP,
  MICRO_APP_DEFAULTS,
  requestHeadersForGuest,
  splitAppPath,
} from '../micro-app-http.js'
import type { IncomingRequest } from '../micro-app-http.js'
import type { AppRecord } from '../registry.js'
import { familyOf } from '../rate-limit.js'
import { routeView } from '../route-store.js'
import type { RouteBinding } from '../route-store.js'
import { buildOf, countedRun, refuseRun } from './run-app.js'
import { errorResponses, json, jsonBody } from './schemas.js'
import { grantFor } from './tokens.js'

const routeSchema = z
  .object({
    name: z.string(),
    path: z.string().openapi({ example: '/apps/hello/' }),
    appId: z.string(),
    jti: z.string().openapi({ description: 'the bound token (its string is never shown)' }),
    exp: z.int(),
    boundAt: z.string(),
    boundBy: z.string(),
  })
  .openapi('Route')

const bindSchema = z
  .union([
    z.strictObject({
      token: z
        .string()
        .min(1)
        .max(8192)
        .openapi({ description: 'a capability token for this app and its current build' }),
    }),
    z.strictObject({
      grants: grantsSchema.optional(),
      limits: limitsRequestSchema.optional(),
      ttlSeconds: z
        .int()
        .positive()
        .optional()
        .openapi({ description: 'lifetime of the minted token; default 3600' }),
    }),
  ])
  .openapi({
    description:
      'Bind with a token you hold (`{ "token" }`), or mint a fresh one for the route (`{ "grants", "limits", "ttlSeconds" }`, as `POST /v1/tokens`)',
  })

const idParam = z.object({ id: z.string().min(1).max(128) })

const answerOf = (binding: RouteBinding) => ({
  ...routeView(binding),
  path: `/apps/${binding.name}/`,
})

export function registerMicroAppRoutes(
  app: OpenAPIHono<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
): void {
  const { warden, registry, routes, refusals, microApps } = ctx
  const admin = requireRole(ctx.keys, ['admin'])
  const reader = requireRole(ctx.keys, ['admin', 'publisher', 'auditor'])

  const existing = (id: string): AppRecord => {
    const record = registry.get(id)
    if (!record || record.status === 'decommissioned') {
      throw new WardenError('not_found', 'no such app')
    }
    return record
  }
  const audit = (
    op: string,
    actor: string,
    record: AppRecord,
    outcome: { jti?: string; error?: unknown },
  ) =>
    warden.audit.append({
      kind: 'admin',
      op,
      actor,
      target: `/apps/${record.name}/`,
      appId: record.id,
      digest: record.digest,
      ...(outcome.jti ? { tokenJti: outcome.jti } : {}),
      decision: outcome.error === undefined ? 'allow' : 'deny',
      ...(outcome.error === undefined ? {} : { reason: toWardenError(outcome.error).code }),
    })

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/apps/{id}/route',
      summary: 'Serve an approved micro-app at /apps/<name>/ under a capability token',
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      request: { params: idParam, ...jsonBody(bindSchema) },
      responses: {
        201: json(routeSchema, 'bound (a rebind replaces the binding)'),
        ...errorResponses(404),
      },
    }),
    async (c) => {
      const actor = actorOf(c.get('principal'))
      const record = existing(c.req.valid('param').id)
      const body = c.req.valid('json')
      let binding: RouteBinding
      try {
        if (record.kind !== 'micro-app') {
          throw new WardenError(
            'invalid_request',
            'only a micro-app is served on a route; this is an action',
          )
        }
        if (record.status !== 'approved') {
          throw record.status === 'disabled'
            ? new WardenError('app_disabled', 'the app is disabled')
            : new WardenError('app_not_approved', 'the app is waiting for approval')
        }
        let token: string
        let claims: CapabilityClaims
        if ('token' in body) {
          token = body.token
          // This build's token, for this app: a route never runs a token of another one.
          claims = await warden.verifyToken(token, record.digest)
          if (claims.app.id !== record.id) {
            throw new WardenError('token_invalid', 'the token is for another app')
          }
        } else {
          const minted = await grantFor(ctx, record, body, actor)
          token = minted.token
          claims = minted.claims
        }
        binding = {
          name: record.name,
          appId: record.id,
          token,
          jti: claims.jti,
          exp: claims.exp,
          boundAt: new Date().toISOString(),
          boundBy: actor,
        }
        await routes.put(binding)
      } catch (error) {
        await audit('app.route.bind', actor, record, { error })
        throw error
      }
      await audit('app.route.bind', actor, record, { jti: binding.jti })
      return c.json(answerOf(binding) as never, 201)
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/apps/{id}/route',
      summary: "The app's route binding (never the token string)",
      security: [{ apiKey: [] }],
      middleware: [reader] as const,
      request: { params: idParam },
      responses: { 200: json(routeSchema, 'the binding'), ...errorResponses(404) },
    }),
    async (c) => {
      const record = existing(c.req.valid('param').id)
      const binding = await routes.get(record.name)
      if (!binding || binding.appId !== record.id) {
        throw new WardenError('not_found', 'the app has no route')
      }
      return c.json(answerOf(binding) as never, 200)
    },
  )

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/apps/{id}/route',
      summary: 'Stop serving the app at /apps/<name>/ (the token is not revoked)',
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      request: { params: idParam },
      responses: { 200: json(routeSchema, 'the binding that was removed'), ...errorResponses(404) },
    }),
    async (c) => {
      const actor = actorOf(c.get('principal'))
      const record = existing(c.req.valid('param').id)
      const removed = await routes.delete(record.name)
      if (!removed) {
        throw new WardenError('not_found', 'the app has no route')
      }
      await audit('app.route.unbind', actor, record, { jti: removed.jti })
      return c.json(answerOf(removed) as never, 200)
    },
  )

  const serve = async (c: Context<ControlPlaneEnv>) => {
    const url = new URL(c.req.url)
    const target = splitAppPath(url.pathname)
    const binding = target && (await routes.get(target.name))
    if (!target || !binding) {
      throw new WardenError('not_found', 'no app is served here')
    }
    if (url.pathname === `/apps/${target.name}`) {
      // The mount is a folder: relative links in the app's pages resolve under it only with the
      // slash, so `/apps/<name>` moves there (308 keeps the method and body).
      return c.redirect(`/apps/${target.name}/${url.search}`, 308)
    }
    // Every caller of a route shares its token's budget, as every holder of a token does.
    await ctx.limiter.check({ kind: 'token', token: binding.token })
    const record = registry.get(binding.appId)
    if (!record || record.status === 'decommissioned' || record.name !== target.name) {
      throw new WardenError('not_found', 'no app is served here')
    }
    if (record.status !== 'approved') {
      throw await refuseRun(warden, record)
    }
    if (record.kind !== 'micro-app') {
      throw new WardenError('not_found', 'no app is served here')
    }
    let claims: CapabilityClaims
    try {
      claims = await warden.verifyToken(binding.token)
      if (claims.app.id !== record.id) {
        throw new WardenError('token_invalid', 'the route token is for another app')
      }
    } catch (error) {
      await refusals.record(c, toWardenError(error).code)
      throw error
    }
    await ctx.limiter.check(familyOf(claims))
    const request: IncomingRequest = {
      method: c.req.method,
      path: target.path,
      query: url.search.slice(1),
      headers: requestHeadersForGuest(c.req.raw.headers),
      body: await readBodyCapped(c.req.raw, microApps.maxRequestBytes, 'the request body'),
    }
    const component = await buildOf(ctx, record)
    const invocation = await countedRun(c, ctx, record, (incoming) =>
      warden.call(component, 'handler.handle', [request], {
        token: binding.token,
        appId: record.id,
        verified: claims,
        // A body over the cap is refused before the answer is redacted (`RunOptions.outputCap`);
        // the headers' own caps are checked after, with the rest of the response.
        outputCap: {
          bytes: microApps.maxResponseBytes + MICRO_APP_DEFAULTS.maxHeaderBytes,
          error: {
            code: 'invalid_response',
            message: `the micro-app's response is over the cap of ${microApps.maxResponseBytes} bytes`,
          },
        },
        get signal() {
          return incoming.signal
        },
      }),
    )
    const { invocationId } = invocation.report
    if (!invocation.ok) {
      // The report stays with the admin (GET /v1/invocations/:id): callers are anonymous.
      throw invocation.error
        ? WardenError.fromJSON(invocation.error)
        : new WardenError('internal', 'the run failed')
    }
    let answer: ReturnType<typeof checkGuestResponse>
    try {
      answer = checkGuestResponse(invocation.output, { maxBodyBytes: microApps.maxResponseBytes })
    } catch (error) {
      await warden.audit.append({
        kind: 'run',
        op: 'http.response',
        invocationId,
        appId: record.id,
        digest: record.digest,
        tokenJti: claims.jti,
        actor: `app:${record.id}`,
        decision: 'deny',
        reason: toWardenError(error).code,
      })
      throw error
    }
    const headers = answer.headers
    headers['content-security-policy'] = [
      ...(headers['content-security-policy'] ?? []),
      MICRO_APP_CSP,
    ]
    headers['x-content-type-options'] = ['nosniff']
    return c.body(answer.body as Uint8Array<ArrayBuffer>, answer.status as 200, headers)
  }
  app.all('/apps/*', serve)

  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/apps/{name}/{path}',
    summary:
      'Any method: the micro-app bound to /apps/<name>/ answers (its status, headers and body)',
    description:
      'Served for every method. The request reaches the app without hop-by-hop and credential headers; its body is capped. Warden refusals are `{ "error": { "code", "message" } }` with the code\'s status; see docs/control-plane.md, "HTTP micro-apps".',
    request: {
      params: z.object({
        name: z.string().openapi({ description: 'the app name' }),
        path: z.string().openapi({ description: 'the path under the mount, any depth' }),
      }),
    },
    responses: {
      default: { description: "the app's answer" },
      ...errorResponses(404, 413, 429, 502, 504),
    },
  })
}
