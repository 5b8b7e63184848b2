/** Liveness, readiness and the token-signing public keys: no credentials. */
import { createRoute, z } from '@hono/zod-openapi'
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { ControlPlaneContext } from '../app.js'
import { requireRole } from '../auth.js'
import type { ControlPlaneEnv } from '../auth.js'
import { json } from './schemas.js'

export function registerSystemRoutes(
  app: OpenAPIHono<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/healthz',
      summary: 'Liveness: the process answers',
      responses: { 200: json(z.object({ ok: z.literal(true) }), 'alive') },
    }),
    (c) => c.json({ ok: true as const }, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/readyz',
      summary: 'Readiness: the sandbox pool is warm and the stores answer',
      responses: {
        200: json(
          z.object({ ready: z.boolean(), checks: z.record(z.string(), z.boolean()) }),
          'ready or not',
        ),
        503: json(
          z.object({ ready: z.boolean(), checks: z.record(z.string(), z.boolean()) }),
          'not ready',
        ),
      },
    }),
    async (c) => {
      const checks = {
        pool: ctx.warden.runtime.pool.size > 0,
        audit: ctx.warden.audit.head.seq >= 0,
        keys: await ctx.warden.keys.jwks().then(
          () => true,
          () => false,
        ),
      }
      const ready = Object.values(checks).every(Boolean)
      return ready ? c.json({ ready, checks }, 200) : c.json({ ready, checks }, 503)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/.well-known/jwks.json',
      summary: 'The public keys that verify capability tokens',
      responses: {
        200: json(z.object({ keys: z.array(z.record(z.string(), z.unknown())) }), 'JWKS'),
      },
    }),
    async (c) => c.json((await ctx.warden.keys.jwks()) as never, 200),
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/metrics',
      summary: 'Prometheus metrics (an admin or auditor key: scrape with bearer credentials)',
      security: [{ apiKey: [] }],
      middleware: [requireRole(ctx.keys, ['admin', 'auditor'])] as const,
      responses: {
        200: {
          description: 'the Prometheus text format',
          content: { 'text/plain': { schema: z.string() } },
        },
      },
    }),
    async (c) => {
      c.header('content-type', ctx.metrics.registry.contentType)
      return c.body(await ctx.metrics.registry.metrics(), 200) as never
    },
  )
}
