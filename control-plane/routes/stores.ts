/**
 * `/v1/secrets` (write-only values: never read back, never echoed) and `/v1/data` (documents
 * apps read through scoped grants, and each collection's PII fields). Admin only. A data key
 * may hold `/`: send it percent-encoded as one path segment (`contacts%2Falice`). The key
 * `schema` at the top of a collection is reserved for the schema route.
 */
import { createRoute, z } from '@hono/zod-openapi'
import type { OpenAPIHono } from '@hono/zod-openapi'
import {
  isValidCollection,
  isValidKey,
  MAX_PII_FIELDS,
  MAX_SECRET_BYTES,
  SECRET_NAME_PATTERN,
  WardenError,
} from '../../runtime/index.js'
import type { ControlPlaneContext } from '../app.js'
import { actorOf, requireRole } from '../auth.js'
import type { ControlPlaneEnv } from '../auth.js'
import { errorResponses, json, jsonBody } from './schemas.js'

const secretName = z.object({
  name: z.string().regex(SECRET_NAME_PATTERN, 'a secret name: ^[a-z][a-z0-9_]{0,63}$'),
})
const collection = z.string().refine(isValidCollection, 'a collection: ^[a-z][a-z0-9_-]{0,63}$')
const dataKey = z.object({
  collection,
  key: z.string().refine(isValidKey, 'not a canonical key (docs: data keys)'),
})
const deleted = json(z.object({ deleted: z.boolean() }), 'whether there was one')

export function registerStoreRoutes(
  app: OpenAPIHono<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
): void {
  const { warden } = ctx
  const admin = requireRole(ctx.keys, ['admin'])
  const route = <R extends Parameters<typeof createRoute>[0]>(config: R) =>
    createRoute({ ...config, security: [{ apiKey: [] }], middleware: [admin] as const })

  app.openapi(
    route({
      method: 'put',
      path: '/v1/secrets/{name}',
      summary: 'Write a secret (encrypted at rest; the value is never shown again)',
      request: {
        params: secretName,
        ...jsonBody(
          z.strictObject({
            value: z
              .string()
              .min(1)
              .refine(
                (v) => Buffer.byteLength(v, 'utf8') <= MAX_SECRET_BYTES,
                `at most ${MAX_SECRET_BYTES} bytes`,
              ),
          }),
        ),
      },
      responses: { 204: { description: 'stored' }, ...errorResponses() },
    }),
    async (c) => {
      const { name } = c.req.valid('param')
      await warden.putSecret(name, c.req.valid('json').value, actorOf(c.get('principal')))
      return c.body(null, 204)
    },
  )
  app.openapi(
    route({
      method: 'delete',
      path: '/v1/secrets/{name}',
      summary: 'Delete a secret',
      request: { params: secretName },
      responses: { 200: deleted, ...errorResponses() },
    }),
    async (c) => {
      const { name } = c.req.valid('param')
      return c.json({ deleted: await warden.deleteSecret(name, actorOf(c.get('principal'))) }, 200)
    },
  )
  app.openapi(
    route({
      method: 'get',
      path: '/v1/secrets',
      summary: 'Secret names and when each was written (never values)',
      responses: {
        200: json(
          z.object({ secrets: z.array(z.object({ name: z.string(), updatedAt: z.string() })) }),
          'names',
        ),
        ...errorResponses(),
      },
    }),
    async (c) => c.json({ secrets: await warden.listSecrets() }, 200),
  )

  app.openapi(
    route({
      method: 'put',
      path: '/v1/data/{collection}/schema',
      summary: "Set a collection's PII fields (masked unless a grant says pii: true)",
      request: {
        params: z.object({ collection }),
        ...jsonBody(
          z.strictObject({
            piiFields: z.array(z.string().min(1).max(256)).max(MAX_PII_FIELDS),
          }),
        ),
      },
      responses: { 204: { description: 'set' }, ...errorResponses() },
    }),
    async (c) => {
      const { collection: name } = c.req.valid('param')
      const schema = c.req.valid('json')
      await warden.setDataSchema(name, schema, actorOf(c.get('principal')))
      return c.body(null, 204)
    },
  )
  app.openapi(
    route({
      method: 'put',
      path: '/v1/data/{collection}/{key}',
      summary: 'Write a document',
      request: { params: dataKey, ...jsonBody(z.strictObject({ value: z.unknown() })) },
      responses: { 204: { description: 'stored' }, ...errorResponses(413) },
    }),
    async (c) => {
      const { collection: name, key } = c.req.valid('param')
      const { value } = c.req.valid('json')
      if (value === undefined) {
        throw new WardenError('invalid_request', 'value: a JSON document is required')
      }
      try {
        await warden.putData(name, key, value, actorOf(c.get('principal')))
      } catch (error) {
        // The store refuses what it cannot keep (too deep, too large) as host misuse.
        if (error instanceof TypeError || error instanceof RangeError) {
          throw new WardenError(
            'invalid_request',
            'value: too deep or too large for a document (at most 64 levels and 1 MiB)',
          )
        }
        throw error
      }
      return c.body(null, 204)
    },
  )
  app.openapi(
    route({
      method: 'get',
      path: '/v1/data/{collection}/{key}',
      summary: 'Read a document as stored (PII unmasked: admin only)',
      request: { params: dataKey },
      responses: {
        200: json(z.object({ value: z.unknown() }), 'the document'),
        ...errorResponses(404),
      },
    }),
    async (c) => {
      const { collection: name, key } = c.req.valid('param')
      const value = await warden.readData(name, key)
      if (value === undefined) {
        throw new WardenError('not_found', 'no such document')
      }
      return c.json({ value } as never, 200)
    },
  )
  app.openapi(
    route({
      method: 'delete',
      path: '/v1/data/{collection}/{key}',
      summary: 'Delete a document',
      request: { params: dataKey },
      responses: { 200: deleted, ...errorResponses() },
    }),
    async (c) => {
      const { collection: name, key } = c.req.valid('param')
      return c.json(
        { deleted: await warden.deleteData(name, key, actorOf(c.get('principal'))) },
        200,
      )
    },
  )
}
