/**
 * `/v1/apps`: upload (registration and versions), the registry, approval, the kill switch,
 * decommissioning, and invoking an action with a capability token.
 */
import { createRoute, z } from '@hono/zod-openapi'
import type { OpenAPIHono } from '@hono/zod-openapi'
import { toWardenError, WardenError } from '../../runtime/index.js'
import type { ControlPlaneContext } from '../app.js'
import { readBodyCapped } from '../body.js'
import { actorOf, requireRole } from '../auth.js'
import type { ControlPlaneEnv } from '../auth.js'
import { APP_NAME, APP_OWNER, APP_PURPOSE, APP_STATUSES } from '../registry.js'
import type { AppRecord } from '../registry.js'
import { assessRisk, RISK_TIERS } from '../risk.js'
import { answerAppRun, inputJson, runApp, tokenFirst } from './run-app.js'
import { errorResponses, json, jsonBody, pageQuery } from './schemas.js'

const uploadQuery = z.strictObject({
  name: z.string().regex(APP_NAME, 'a DNS label: a-z, 0-9 and -, at most 63'),
  owner: APP_OWNER,
  purpose: APP_PURPOSE,
  reviewBy: z.iso.date().optional(),
})

const versionSchema = z.object({
  digest: z.string(),
  sizeBytes: z.number(),
  kind: z.string(),
  world: z.string(),
  imports: z.array(z.string()),
  exports: z.array(z.string()),
  riskTier: z.enum(RISK_TIERS as ['low', 'medium', 'high']),
  riskReasons: z.array(z.string()),
  uploadedAt: z.string(),
  uploadedBy: z.string(),
  approvedAt: z.string().optional(),
  approvedBy: z.string().optional(),
  buildKey: z.string().optional(),
})

const appSchema = versionSchema
  .omit({
    uploadedAt: true,
    uploadedBy: true,
    approvedAt: true,
    approvedBy: true,
    sizeBytes: true,
    buildKey: true,
  })
  .extend({
    id: z.string(),
    name: z.string(),
    owner: z.string(),
    purpose: z.string(),
    reviewBy: z.string().optional(),
    publisher: z.string(),
    status: z.enum(APP_STATUSES as ['pending', 'approved', 'disabled', 'decommissioned']),
    versions: z.array(versionSchema),
    createdAt: z.string(),
    updatedAt: z.string(),
    lastRunAt: z.string().optional(),
  })
  .openapi('App')

const idParam = z.object({ id: z.string().min(1).max(128) })

const invokeAnswer = z
  .object({
    output: z.unknown().optional(),
    report: z.record(z.string(), z.unknown()),
    invocationId: z.string(),
  })
  .openapi('Invocation')

/** The upload's bytes, under the cap; an empty upload is `invalid_request`. */
async function readUpload(request: Request, cap: number): Promise<Uint8Array> {
  const bytes = await readBodyCapped(request, cap, 'the upload')
  if (bytes.byteLength === 0) {
    throw new WardenError('invalid_request', 'the upload is empty')
  }
  return bytes
}

export function registerAppRoutes(
  app: OpenAPIHono<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
): void {
  const { warden, registry, keys } = ctx
  const admin = requireRole(keys, ['admin'])
  const publisher = requireRole(keys, ['admin', 'publisher'])
  const reader = requireRole(keys, ['admin', 'publisher', 'auditor'])

  const live = (id: string): AppRecord => {
    const record = registry.get(id)
    if (!record || record.status === 'decommissioned') {
      throw new WardenError('not_found', 'no such app')
    }
    return record
  }
  const adminAction = async (
    op: string,
    actor: string,
    record: Pick<AppRecord, 'id' | 'digest'>,
    decision: 'allow' | 'deny' = 'allow',
    reason?: string,
  ) => {
    await warden.audit.append({
      kind: 'admin',
      op,
      actor,
      target: record.id,
      appId: record.id,
      digest: record.digest,
      decision,
      ...(reason ? { reason } : {}),
    })
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/apps',
      summary: 'Upload a component: register an app, or add a version to it',
      security: [{ apiKey: [] }],
      middleware: [publisher] as const,
      request: {
        query: uploadQuery,
        body: {
          required: true,
          content: { 'application/wasm': { schema: z.string().openapi({ format: 'binary' }) } },
        },
      },
      responses: {
        200: json(appSchema, 'the same bytes again: nothing changed'),
        201: json(appSchema, 'registered, or a new version'),
        ...errorResponses(409, 413, 415, 422),
      },
    }),
    async (c) => {
      const principal = c.get('principal')
      const actor = actorOf(principal)
      const meta = c.req.valid('query')
      try {
        const type = (c.req.header('content-type') ?? '').split(';', 1)[0]!.trim().toLowerCase()
        if (type !== 'application/wasm') {
          throw new WardenError(
            'unsupported_media_type',
            'upload the component bytes as application/wasm',
          )
        }
        const bytes = await readUpload(c.req.raw, ctx.maxUploadBytes)
        const component = await warden.load(bytes, { uploader: actor })
        const risk = assessRisk(component.imports, await warden.piiCollections())
        // Before the bytes are kept; `register` checks it again (an upload in between).
        const owner = registry.get(meta.name)
        registry.checkQuota(
          owner && owner.status !== 'decommissioned' ? owner.publisher : actor,
          component.digest,
          bytes.byteLength,
        )
        await registry.putBlob(component.digest, bytes)
        const { record, outcome } = await registry.register({
          ...meta,
          actor,
          actorIsAdmin: principal.role === 'admin',
          digest: component.digest,
          sizeBytes: bytes.byteLength,
          kind: component.kind,
          imports: component.imports,
          exports: component.world.exports.map((e) => e.name),
          risk,
        })
        if (outcome !== 'unchanged') {
          await adminAction(outcome === 'created' ? 'app.register' : 'app.version', actor, record)
        }
        return c.json(record as never, outcome === 'unchanged' ? 200 : 201)
      } catch (error) {
        await warden.audit.append({
          kind: 'admin',
          op: 'app.upload',
          actor,
          target: meta.name,
          decision: 'deny',
          reason: toWardenError(error).code,
        })
        throw error
      }
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/apps',
      summary: 'The registry',
      security: [{ apiKey: [] }],
      middleware: [reader] as const,
      request: {
        query: z.strictObject({
          status: z
            .enum(APP_STATUSES as ['pending', 'approved', 'disabled', 'decommissioned'])
            .optional(),
          tier: z.enum(RISK_TIERS as ['low', 'medium', 'high']).optional(),
          owner: z.string().max(200).optional(),
          ...pageQuery,
        }),
      },
      responses: {
        200: json(
          z.object({ apps: z.array(appSchema), nextCursor: z.string().nullable() }),
          'apps',
        ),
        ...errorResponses(),
      },
    }),
    async (c) => {
      const { limit, cursor, ...filter } = c.req.valid('query')
      await registry.syncRuns()
      const all = registry.list(filter)
      const start = cursor ? all.findIndex((a) => a.id === cursor) + 1 : 0
      const apps = all.slice(start, start + limit)
      const next = start + limit < all.length ? apps[apps.length - 1]!.id : null
      return c.json({ apps, nextCursor: next } as never, 200)
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/apps/{id}',
      summary: 'One app, with its versions and the tokens granted for it (never their strings)',
      security: [{ apiKey: [] }],
      middleware: [reader] as const,
      request: { params: idParam },
      responses: {
        200: json(
          appSchema.extend({ tokens: z.array(z.record(z.string(), z.unknown())) }),
          'the app',
        ),
        ...errorResponses(404),
      },
    }),
    async (c) => {
      await registry.syncRuns()
      const record = registry.get(c.req.valid('param').id)
      if (!record) {
        throw new WardenError('not_found', 'no such app')
      }
      const granted = ctx.tokens.list(record.id)
      return c.json(
        { ...record, tokens: granted.slice(0, 100), tokenCount: granted.length } as never,
        200,
      )
    },
  )

  const transition = (
    path: string,
    summary: string,
    act: (record: AppRecord, actor: string, digest: string | undefined) => Promise<AppRecord>,
  ) =>
    app.openapi(
      createRoute({
        method: 'post',
        path,
        summary,
        security: [{ apiKey: [] }],
        middleware: [admin] as const,
        request: {
          params: idParam,
          query: z.strictObject({
            digest: z
              .string()
              .regex(/^sha256:[0-9a-f]{64}$/)
              .optional()
              .openapi({ description: 'approve: the build you reviewed' }),
          }),
        },
        responses: { 200: json(appSchema, 'the app'), ...errorResponses(404, 409) },
      }),
      async (c) => {
        const record = live(c.req.valid('param').id)
        const { digest } = c.req.valid('query')
        return c.json((await act(record, actorOf(c.get('principal')), digest)) as never, 200)
      },
    )

  /** A key and every key that made it, nearest first: `key:<id>` … `bootstrap`. */
  const lineageOf = (actor: string): string[] => {
    const out: string[] = []
    let at: string | undefined = actor
    while (at !== undefined && !out.includes(at)) {
      out.push(at)
      at = at.startsWith('key:') ? keys.get(at.slice('key:'.length))?.createdBy : undefined
    }
    return out
  }
  /**
   * Who holds a key, as far as keys tell: a root key (made at bootstrap or by the CLI) is its
   * holder's; a key a root key made is given to someone (its own principal); every key made
   * further down belongs to that someone. So a second admin key, or a publisher key, that an
   * admin makes for themselves is theirs, and so are its siblings.
   */
  const principalOf = (actor: string): string => {
    const line = lineageOf(actor) // [actor, …, root key, 'bootstrap' | 'cli']
    return line.length >= 3 ? line[line.length - 3]! : line[0]!
  }
  const isPublisher = (approver: string) => (uploader: string) =>
    principalOf(approver) === principalOf(uploader)

  transition(
    '/v1/apps/{id}/approve',
    'Approve the current build, named by its digest',
    async (record, actor, digest) => {
      try {
        const approved = await registry.approve(record.id, actor, {
          digest,
          isPublisher: isPublisher(actor),
        })
        await adminAction('app.approve', actor, approved)
        return approved
      } catch (error) {
        await adminAction('app.approve', actor, record, 'deny', toWardenError(error).code)
        throw error
      }
    },
  )
  transition(
    '/v1/apps/{id}/disable',
    'Kill switch: refuse new runs and end running ones',
    async (record, actor) => {
      const disabled = await registry.setDisabled(record.id, true, actor)
      await warden.disableApp(record.id, actor)
      return disabled
    },
  )
  transition('/v1/apps/{id}/enable', 'Lift the kill switch', async (record, actor) => {
    const enabled = await registry.setDisabled(record.id, false, actor)
    await warden.enableApp(record.id, actor)
    return enabled
  })

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/apps/{id}',
      summary: 'Decommission: revoke every token, end runs, keep the audit records',
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      request: { params: idParam },
      responses: { 200: json(appSchema, 'the decommissioned app'), ...errorResponses(404) },
    }),
    async (c) => {
      const actor = actorOf(c.get('principal'))
      const record = live(c.req.valid('param').id)
      await warden.disableApp(record.id, actor)
      for (const token of ctx.tokens.list(record.id)) {
        if (!token.revokedAt) {
          await warden.revokeToken(token.jti, actor)
          await ctx.tokens.markRevoked(token.jti, actor)
        }
      }
      const gone = await registry.decommission(record.id, actor)
      await ctx.routes.delete(gone.name)
      await adminAction('app.decommission', actor, gone)
      return c.json(gone as never, 200)
    },
  )

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/apps/{id}/invoke',
      summary: 'Run an action once, under the capability token sent as bearer',
      security: [{ capabilityToken: [] }],
      middleware: [tokenFirst(ctx)] as const,
      request: { params: idParam, ...jsonBody(z.strictObject({ input: z.unknown() })) },
      responses: {
        200: json(invokeAnswer, 'the output and the metering report'),
        ...errorResponses(404, 408, 422, 429, 504),
      },
    }),
    async (c) => {
      // The token first: whoever holds no valid token for this app learns nothing about it
      // (exists, pending, disabled), and nothing of theirs is serialised.
      const bearer = c.get('bearer')
      const { invocation } = await runApp(c, ctx, {
        app: c.req.valid('param').id,
        bearer,
        input: () => inputJson(c.req.valid('json').input),
      })
      // Typed as never: the error answers carry the report beside the error body.
      return answerAppRun(c, invocation) as never
    },
  )
}
