/**
 * `/v1/tokens`: grant (admin), attenuate (any holder, with the parent as bearer), revoke and
 * list (admin; never token strings). Grants and limits are the token claims' own schemas, built
 * from the capability list.
 */
import { createRoute, z } from '@hono/zod-openapi'
import type { OpenAPIHono } from '@hono/zod-openapi'
import { grantsSchema, jtiSchema, limitsRequestSchema, WardenError } from '../../runtime/index.js'
import type { GrantsInput, LimitsRequest, MintedToken } from '../../runtime/index.js'
import type { ControlPlaneContext } from '../app.js'
import { actorOf, requireRole } from '../auth.js'
import type { ControlPlaneEnv } from '../auth.js'
import type { AppRecord } from '../registry.js'
import { tokenEntrySchema } from '../token-index.js'
import type { TokenEntry } from '../token-index.js'
import { tokenFirst } from './run-app.js'
import { errorResponses, json, jsonBody } from './schemas.js'

/** Most live (unexpired, unrevoked) children one token may have. */
export const MAX_LIVE_CHILDREN = 100

/** Most live descendants, at any depth, of one granted token. */
export const MAX_LIVE_DESCENDANTS = 1000

const ttl = z.int().positive().openapi({ description: 'seconds until exp' })

const mintedSchema = z
  .object({
    token: z.string().openapi({ description: 'the capability token: shown once, never stored' }),
    jti: z.string(),
    exp: z.int(),
    app: z.object({ id: z.string(), digest: z.string() }),
    grants: z.record(z.string(), z.unknown()),
    limits: z.record(z.string(), z.unknown()),
    parent: z.string().optional(),
  })
  .openapi('MintedToken')

function answer({ token, claims }: MintedToken) {
  return {
    token,
    jti: claims.jti,
    exp: claims.exp,
    app: claims.app,
    grants: claims.grants,
    limits: claims.limits,
    ...(claims.parent ? { parent: claims.parent } : {}),
  }
}

/** The token index's entry of a minted token. */
export function entryOf({ claims }: MintedToken, grantedBy: string): TokenEntry {
  return {
    jti: claims.jti,
    appId: claims.app.id,
    digest: claims.app.digest,
    ...(claims.parent ? { parent: claims.parent } : {}),
    root: claims.chain[0] ?? claims.jti,
    grants: claims.grants,
    limits: claims.limits,
    iat: claims.iat,
    exp: claims.exp,
    grantedBy,
  }
}

/** What a grant asks for: the token claims' grants and limits, and a lifetime. */
export interface GrantBody {
  grants?: GrantsInput | undefined
  limits?: LimitsRequest | undefined
  ttlSeconds?: number | undefined
}

/**
 * Mint a token for `record`'s current build (default lifetime an hour) and record it in the
 * token index. Refusals are audited by `warden.grantToken`.
 */
export async function grantFor(
  { warden, tokens }: Pick<ControlPlaneContext, 'warden' | 'tokens'>,
  record: Pick<AppRecord, 'id' | 'digest'>,
  body: GrantBody,
  actor: string,
): Promise<MintedToken> {
  tokens.ensureRoom()
  const minted = await warden.grantToken(
    {
      appId: record.id,
      digest: record.digest,
      grants: body.grants ?? {},
      ...(body.limits ? { limits: body.limits } : {}),
      lifetimeSeconds: body.ttlSeconds ?? 3600,
    },
    actor,
  )
  await tokens.add(entryOf(minted, actor))
  return minted
}

export function registerTokenRoutes(
  app: OpenAPIHono<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
): void {
  const { warden, registry, tokens } = ctx
  const admin = requireRole(ctx.keys, ['admin'])
  /**
   * Attenuations between their cap check and their entry in the index (signing is async), by
   * parent and by root: counted with the index, so a burst of concurrent requests cannot pass
   * the check together (found by the sixth outside attack: 400 at once made 360 children).
   */
  const reserved = new Map<string, number>()
  const reserve = (...keys: string[]) => {
    for (const key of keys) {
      reserved.set(key, (reserved.get(key) ?? 0) + 1)
    }
    return () => {
      for (const key of keys) {
        const left = (reserved.get(key) ?? 1) - 1
        if (left === 0) {
          reserved.delete(key)
        } else {
          reserved.set(key, left)
        }
      }
    }
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tokens',
      summary: "Grant a capability token for an approved app's current build",
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      request: jsonBody(
        z.strictObject({
          app: z.string().min(1).max(128).openapi({ description: 'app id or name' }),
          grants: grantsSchema.optional(),
          limits: limitsRequestSchema.optional(),
          ttlSeconds: ttl.optional().openapi({ description: 'default 3600, at most the maximum' }),
        }),
      ),
      responses: { 201: json(mintedSchema, 'the token, once'), ...errorResponses(404) },
    }),
    async (c) => {
      const actor = actorOf(c.get('principal'))
      const body = c.req.valid('json')
      const record = registry.get(body.app)
      try {
        if (!record || record.status === 'decommissioned') {
          throw new WardenError('not_found', 'no such app')
        }
        if (record.status === 'disabled') {
          throw new WardenError('app_disabled', 'the app is disabled')
        }
        if (record.status !== 'approved') {
          throw new WardenError('app_not_approved', 'the app is waiting for approval')
        }
      } catch (error) {
        await warden.auditTokenRefusal('token.grant', error, actor)
        throw error
      }
      const minted = await grantFor(ctx, record, body, actor)
      return c.json(answer(minted) as never, 201)
    },
  )

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tokens/attenuate',
      summary: 'Derive a narrower child of the token sent as bearer',
      security: [{ capabilityToken: [] }],
      middleware: [tokenFirst(ctx)] as const,
      request: jsonBody(
        z.strictObject({
          grants: grantsSchema.optional(),
          limits: limitsRequestSchema.optional(),
          ttlSeconds: ttl.optional(),
        }),
      ),
      responses: { 201: json(mintedSchema, 'the child token, once'), ...errorResponses() },
    }),
    async (c) => {
      const { token: parent, claims } = c.get('bearer')
      const body = c.req.valid('json')
      // Each child is recorded in the token index: a holder must not grow it without bound.
      const root = claims.chain[0] ?? claims.jti
      const parentKey = `parent:${claims.jti}`
      const rootKey = `root:${root}`
      if (
        tokens.childrenOf(claims.jti) + (reserved.get(parentKey) ?? 0) >= MAX_LIVE_CHILDREN ||
        tokens.descendantsOf(root) + (reserved.get(rootKey) ?? 0) >= MAX_LIVE_DESCENDANTS
      ) {
        throw new WardenError(
          'limit_exceeded',
          `a token may have at most ${MAX_LIVE_CHILDREN} live children, and a granted token ${MAX_LIVE_DESCENDANTS} live descendants: revoke some, or let them expire`,
        )
      }
      tokens.ensureRoom()
      // No await between the check above and this reservation.
      const release = reserve(parentKey, rootKey)
      let minted: Awaited<ReturnType<typeof warden.attenuateToken>>
      try {
        minted = await warden.attenuateToken(parent, {
          ...(body.grants ? { grants: body.grants } : {}),
          ...(body.limits ? { limits: body.limits } : {}),
          ...(body.ttlSeconds ? { lifetimeSeconds: body.ttlSeconds } : {}),
        })
      } finally {
        release()
      }
      // In the same synchronous step as the release: `add` records the entry before its first
      // await, so the child is never counted twice, nor not at all.
      await tokens.add(entryOf(minted, `holder:${minted.claims.parent ?? 'unknown'}`))
      return c.json(answer(minted) as never, 201)
    },
  )

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/tokens/{jti}',
      summary: 'Revoke a token and every token derived from it',
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      request: { params: z.object({ jti: jtiSchema }) },
      responses: {
        200: json(z.object({ jti: z.string(), revoked: z.literal(true) }), 'revoked'),
        ...errorResponses(),
      },
    }),
    async (c) => {
      const { jti } = c.req.valid('param')
      const actor = actorOf(c.get('principal'))
      await warden.revokeToken(jti, actor)
      await tokens.markRevoked(jti, actor)
      return c.json({ jti, revoked: true as const }, 200)
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/tokens',
      summary: 'Tokens granted, newest first (never their strings)',
      security: [{ apiKey: [] }],
      middleware: [admin] as const,
      request: {
        query: z.strictObject({
          app: z.string().max(128).optional(),
          /** Only tokens granted by an admin, not their children. */
          granted: z.enum(['true', 'false']).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          cursor: jtiSchema.optional().openapi({ description: 'the last jti of the page before' }),
        }),
      },
      responses: {
        200: json(
          z.object({
            tokens: z.array(tokenEntrySchema),
            total: z.int(),
            nextCursor: z.string().nullable(),
          }),
          'tokens',
        ),
        ...errorResponses(),
      },
    }),
    (c) => {
      const { app: appRef, limit, cursor, granted } = c.req.valid('query')
      const appId = appRef === undefined ? undefined : registry.get(appRef)?.id
      if (appRef !== undefined && appId === undefined) {
        throw new WardenError('not_found', 'no such app')
      }
      const all = tokens.list(appId).filter((t) => granted !== 'true' || t.parent === undefined)
      const start = cursor === undefined ? 0 : all.findIndex((t) => t.jti === cursor) + 1
      const page = all.slice(start, start + limit)
      const nextCursor = start + limit < all.length ? page[page.length - 1]!.jti : null
      return c.json({ tokens: page, total: all.length, nextCursor } as never, 200)
    },
  )
}
