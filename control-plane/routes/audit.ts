/**
 * `/v1/audit` (query, verify, head) for admins and auditors, and `/v1/invocations/:id`: a run's
 * report and audit records, for admins, auditors and the token that ran it.
 */
import { createRoute, z } from '@hono/zod-openapi'
import type { OpenAPIHono } from '@hono/zod-openapi'
import { WardenError } from '../../runtime/index.js'
import type { AuditRecord } from '../../runtime/index.js'
import type { ControlPlaneContext } from '../app.js'
import { bearerOf, requireRole } from '../auth.js'
import type { ControlPlaneEnv } from '../auth.js'
import { verifyPresentedToken } from './run-app.js'
import { errorResponses, json } from './schemas.js'

const isoTime = z.iso.datetime({ offset: true }).transform((t) => new Date(t).toISOString())

const recordSchema = z.record(z.string(), z.unknown()).openapi('AuditRecord', {
  description:
    'One audit record (docs/control-plane.md "Audit record"): every field present, null where it ' +
    'does not apply, except `checkpoint` (only on checkpoint records) and `calls` (only on a ' +
    'host-call record standing for several identical calls or allowed output writes of one run: ' +
    'their number, ≥ 2, with bytesOut, bytesIn and durationMs summed over them).',
})

/** Most bytes of answers {@link registerAuditRoutes} keeps for tokens' repeated lookups. */
const MAX_ANSWERED_BYTES = 32 * 1024 * 1024
/** The largest one answer it keeps. */
const MAX_ANSWER_KEPT_BYTES = 8 * 1024 * 1024

export function registerAuditRoutes(
  app: OpenAPIHono<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
): void {
  const { warden, keys } = ctx
  const auditor = requireRole(keys, ['admin', 'auditor'])
  // A finished run's answer to the token that ran it, by invocation id, least recently asked
  // first out: a run leaves up to a record per host call, and each lookup read and parsed them
  // all on the main thread (in Redis mode ~12 ms for 991 records), so one token asking again
  // and again, within its request budget, slowed every tenant ×20 (thirteenth outside attack).
  const answered = new Map<string, { tokenJti: string; text: string }>()
  let answeredBytes = 0
  const keep = (id: string, tokenJti: string, text: string) => {
    if (text.length > MAX_ANSWER_KEPT_BYTES) {
      return
    }
    answered.set(id, { tokenJti, text })
    answeredBytes += text.length
    for (const [old, kept] of answered) {
      if (answeredBytes <= MAX_ANSWERED_BYTES) {
        break
      }
      answered.delete(old)
      answeredBytes -= kept.text.length
    }
  }
  const JSON_TYPE = { 'content-type': 'application/json; charset=UTF-8' }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/audit',
      summary: 'Audit records, oldest first; JSON lines with Accept: application/x-ndjson',
      security: [{ apiKey: [] }],
      middleware: [auditor] as const,
      request: {
        query: z.strictObject({
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          cursor: z.coerce.number().int().min(1).optional().openapi({ description: 'a seq' }),
          app: z.string().max(128).optional(),
          invocation: z.string().max(128).optional(),
          actor: z.string().max(200).optional(),
          decision: z.enum(['allow', 'deny']).optional(),
          since: isoTime.optional(),
          until: isoTime.optional(),
        }),
      },
      responses: {
        200: json(
          z.object({ records: z.array(recordSchema), nextCursor: z.number().nullable() }),
          'records',
        ),
        ...errorResponses(),
      },
    }),
    async (c) => {
      const q = c.req.valid('query')
      const records = await warden.audit.read({
        fromSeq: q.cursor ?? 1,
        limit: q.limit,
        ...(q.app ? { appId: q.app } : {}),
        ...(q.invocation ? { invocationId: q.invocation } : {}),
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.decision ? { decision: q.decision } : {}),
        ...(q.since ? { since: q.since } : {}),
        ...(q.until ? { until: q.until } : {}),
      })
      const nextCursor = records.length === q.limit ? records[records.length - 1]!.seq + 1 : null
      if ((c.req.header('accept') ?? '').includes('application/x-ndjson')) {
        if (nextCursor !== null) {
          c.header('x-next-cursor', String(nextCursor))
        }
        c.header('content-type', 'application/x-ndjson')
        return c.body(records.map((r) => `${JSON.stringify(r)}\n`).join(''), 200) as never
      }
      return c.json({ records, nextCursor } as never, 200)
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/audit/verify',
      summary: 'Verify the hash chain and the signed checkpoints',
      security: [{ apiKey: [] }],
      middleware: [auditor] as const,
      responses: {
        200: json(
          z.object({
            ok: z.boolean(),
            records: z.number(),
            lastSeq: z.number(),
            lastHash: z.string().optional(),
            firstBad: z.number().optional(),
            reason: z.string().optional(),
            lastCheckpoint: z.object({ seq: z.number(), ts: z.string() }).nullable().optional(),
            unsigned: z.number().optional(),
          }),
          'the result',
        ),
        ...errorResponses(),
      },
    }),
    async (c) => {
      const result = await warden.audit.verify()
      if (result.ok) {
        return c.json(
          {
            ok: true,
            records: result.count,
            lastSeq: result.lastSeq,
            lastHash: result.lastHash,
            lastCheckpoint: result.lastCheckpoint,
            unsigned: result.unsigned,
          },
          200,
        )
      }
      // The chain holds up to the record before the first bad one; no hash is vouched for.
      return c.json(
        {
          ok: false,
          records: result.firstBadSeq - 1,
          lastSeq: result.firstBadSeq - 1,
          firstBad: result.firstBadSeq,
          reason: result.reason,
        },
        200,
      )
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/audit/head',
      summary: 'The head of the chain: publish it elsewhere to detect a later rewrite',
      security: [{ apiKey: [] }],
      middleware: [auditor] as const,
      responses: {
        200: json(z.object({ seq: z.number(), hash: z.string() }), 'the head'),
        ...errorResponses(),
      },
    }),
    async (c) => c.json(await warden.audit.readHead(), 200),
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/audit/key',
      summary:
        "The public key the log's checkpoints are signed with: verify a copy of the log with it",
      description:
        'Save `publicKey` to a file and run `warden audit verify --public-key <file>` (or any Ed25519 ' +
        'verifier over the checkpoint records); `keyId` is the `keyId` of each checkpoint.',
      security: [{ apiKey: [] }],
      middleware: [auditor] as const,
      responses: {
        200: json(
          z.object({ keyId: z.string(), publicKey: z.string() }),
          'the key id and the SPKI PEM of the public key',
        ),
        ...errorResponses(404),
      },
    }),
    async (c) => {
      const key = warden.audit.checkpointKey
      if (!key) {
        throw new WardenError('not_found', "this log's checkpoints are not signed")
      }
      const publicKey = key.publicKey.export({ type: 'spki', format: 'pem' }).toString()
      return c.json({ keyId: key.keyId, publicKey }, 200)
    },
  )

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/invocations/{id}',
      summary: "A run's metering report and audit records",
      security: [{ apiKey: [] }, { capabilityToken: [] }] as { [k: string]: string[] }[],
      request: { params: z.object({ id: z.string().min(1).max(128) }) },
      responses: {
        200: json(
          z.object({
            invocationId: z.string(),
            report: z.record(z.string(), z.unknown()).nullable(),
            records: z.array(recordSchema),
          }),
          'the run',
        ),
        ...errorResponses(404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param')
      const credential = bearerOf(c.req.header('authorization'))
      if (credential === undefined) {
        throw new WardenError('unauthorized', 'send an API key or the token that ran it')
      }
      // The credential first: nothing is read for a caller who may not read it.
      let tokenJti: string | undefined
      if (credential.startsWith('wdn_')) {
        const key = keys.authenticate(credential)
        if (!key) {
          throw new WardenError('unauthorized', 'the API key is unknown or revoked')
        }
        if (key.role !== 'admin' && key.role !== 'auditor') {
          throw new WardenError('forbidden', 'this route needs the role admin or auditor')
        }
      } else {
        tokenJti = (await verifyPresentedToken(c, ctx, credential)).jti
      }
      const kept = tokenJti === undefined ? undefined : answered.get(id)
      if (kept) {
        if (kept.tokenJti !== tokenJti) {
          throw new WardenError('not_found', 'no such invocation')
        }
        answered.delete(id)
        answered.set(id, kept)
        return c.body(kept.text, 200, JSON_TYPE) as never
      }
      const recent = ctx.recent.get(id)
      if (tokenJti !== undefined && recent && recent.tokenJti !== tokenJti) {
        throw new WardenError('not_found', 'no such invocation')
      }
      // A token bearer's lookup never scans the log (outside attack 5, finding 06): the index
      // and the recent runs answer it, and a run they no longer hold is `not_found`.
      const records: AuditRecord[] = await warden.audit.read({
        invocationId: id,
        limit: 10_000,
        ...(tokenJti !== undefined ? { indexedOnly: true } : {}),
      })
      const run = records.find((r) => r.kind === 'run')
      const ranWith = recent?.tokenJti ?? run?.tokenJti ?? null
      if (tokenJti !== undefined && ranWith !== tokenJti) {
        // The same answer whether the run exists or not: a token learns only its own runs.
        throw new WardenError('not_found', 'no such invocation')
      }
      if (!recent && records.length === 0) {
        throw new WardenError('not_found', 'no such invocation')
      }
      const text = JSON.stringify({
        invocationId: id,
        report: recent ?? null,
        // To the token that ran it, its host calls without their targets and reasons: the log
        // cleans those of every stored secret, which would tell the token which of the strings
        // its guest wrote there is one (fourteenth outside attack); its run's answer had them,
        // cleaned of its own secrets only.
        records:
          tokenJti === undefined
            ? records
            : records.map((r) =>
                r.kind === 'host-call' ? { ...r, target: null, reason: null } : r,
              ),
      })
      if (tokenJti !== undefined && run) {
        // Finished: its records are all written (with the run's, in one group) and never change.
        keep(id, tokenJti, text)
      }
      return c.body(text, 200, JSON_TYPE) as never
    },
  )
}
