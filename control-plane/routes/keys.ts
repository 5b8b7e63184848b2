/** `/v1/keys`: API keys, created, listed and revoked by admins. */
import { createRoute, z } from '@hono/zod-openapi'
import type { OpenAPIHono } from '@hono/zod-openapi'
import { WardenError } from '../../runtime/index.js'
import { API_ROLES, isApiKeyId } from '../api-keys.js'
import type { ControlPlaneContext } from '../app.js'
import { actorOf, requireRole } from '../auth.js'
import type { ControlPlaneEnv } from '../auth.js'
import { errorResponses, json, jsonBody } from './schemas.js'

const keyInfoSchema = z
  .object({
    id: z.string(),
    role: z.enum(API_ROLES),
    label: z.string(),
    createdAt: z.string(),
    createdBy: z.string(),
    revokedAt: z.string().optional(),
    revokedBy: z.string().optional(),
  })
  .openapi('ApiKey')

const idParam = z.object({ id: z.string().refine(isApiKeyId, 'not a key id') })

export function registerKeyRoutes(
  app: OpenAPIHono<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
): void {
  const admin = requireRole(ctx.keys, ['admin'])
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/keys',
      summary: 'Create an API key (shown once)',
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      request: jsonBody(
        z.strictObject({
          role: z.enum(API_ROLES),
          label: z
            .string()
            .min(1)
            .max(200)
            .regex(/^[\x20-\x7e]+$/, 'printable ASCII'),
        }),
      ),
      responses: {
        201: json(keyInfoSchema.extend({ key: z.string() }), 'the key, once'),
        ...errorResponses(),
      },
    }),
    async (c) => {
      const { role, label } = c.req.valid('json')
      const actor = actorOf(c.get('principal'))
      const { key, info } = await ctx.keys.create(role, { label, actor })
      await ctx.warden.audit.append({
        kind: 'admin',
        op: 'key.create',
        actor,
        target: `key:${info.id}`,
        decision: 'allow',
        reason: role,
      })
      return c.json({ ...info, key }, 201)
    },
  )
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/keys',
      summary: 'List API keys (never their secrets)',
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      responses: {
        200: json(z.object({ keys: z.array(keyInfoSchema) }), 'keys'),
        ...errorResponses(),
      },
    }),
    (c) => c.json({ keys: ctx.keys.list() }, 200),
  )
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/keys/{id}',
      summary: 'Revoke an API key',
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      request: { params: idParam },
      responses: { 200: json(keyInfoSchema, 'the revoked key'), ...errorResponses(404, 409) },
    }),
    async (c) => {
      const { id } = c.req.valid('param')
      const target = ctx.keys.get(id)
      if (!target) {
        throw new WardenError('not_found', 'no such key')
      }
      const liveAdmins = ctx.keys.list().filter((k) => k.role === 'admin' && !k.revokedAt)
      if (target.role === 'admin' && !target.revokedAt && liveAdmins.length === 1) {
        throw new WardenError('conflict', 'this is the last admin key: create another first')
      }
      const actor = actorOf(c.get('principal'))
      const revoked = await ctx.keys.revoke(id, actor)
      await ctx.warden.audit.append({
        kind: 'admin',
        op: 'key.revoke',
        actor,
        target: `key:${id}`,
        decision: 'allow',
      })
      return c.json(revoked!, 200)
    },
  )
}
