/**
 * `POST /v1/runs`: an agent's ephemeral run under the capability token sent as bearer. With
 * `source`, the JS runs in Warden's built-in JS sandbox (the built-in app `js`; the token must
 * be one granted for it) as the body of an async function; with `app`, a deployed action runs
 * as `POST /v1/apps/:id/invoke` would run it. The answer holds the return value, the logs, the
 * metering report and the invocation id. A run leaves nothing behind: the source is neither
 * stored, nor logged, nor a cache key.
 */
import { createRoute, z } from '@hono/zod-openapi'
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import {
  AGENT_APP_NAME,
  agentAnswer,
  agentRequest,
  MAX_AGENT_OUTPUT_BYTES,
  MAX_AGENT_SOURCE_CHARS,
  WardenError,
} from '../../runtime/index.js'
import type { Invocation } from '../../runtime/index.js'
import type { ControlPlaneContext } from '../app.js'
import type { ControlPlaneEnv } from '../auth.js'
import { isJsonText } from '../json-text.js'
import {
  answerAppRun,
  answerRunError,
  inputJson,
  jsonAnswer,
  RawJson,
  runApp,
  tokenFirst,
} from './run-app.js'
import { errorResponses, json, jsonBody } from './schemas.js'

const input = z.unknown().openapi({ description: 'the input, any JSON (the script sees `input`)' })

const runRequest = z
  .union([
    z.strictObject({
      source: z.string().min(1).max(MAX_AGENT_SOURCE_CHARS).openapi({
        description:
          'JS: the body of an async function of (warden, input); its return value is the output',
        example: 'return 1+1',
      }),
      input: input.optional(),
    }),
    z.strictObject({
      app: z.string().min(1).max(128).openapi({ description: 'a deployed action: id or name' }),
      input: input.optional(),
    }),
  ])
  .openapi('RunRequest')

const logLine = z.object({ level: z.enum(['debug', 'info', 'warn', 'error']), message: z.string() })

const runAnswer = z
  .object({
    output: z
      .unknown()
      .openapi({ description: "the script's return value (JSON), or the action's output" }),
    logs: z.array(logLine),
    report: z.record(z.string(), z.unknown()),
    invocationId: z.string(),
  })
  .openapi('RunAnswer')

export function registerRunRoutes(
  app: OpenAPIHono<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/runs',
      summary: "Run an agent's JS source in the built-in sandbox, or a deployed action, once",
      description:
        'Bearer: a capability token for the built-in app `js` (with `source`) or for the action (with `app`). ' +
        'A script that throws answers 422 `guest_error` with its message and stack (lines of the source).',
      security: [{ capabilityToken: [] }],
      middleware: [tokenFirst(ctx)] as const,
      request: jsonBody(runRequest),
      responses: {
        200: json(runAnswer, 'the output, logs and metering report'),
        ...errorResponses(404, 408, 413, 422, 429, 504),
      },
    }),
    async (c) => {
      const bearer = c.get('bearer')
      const body = c.req.valid('json')
      if ('app' in body) {
        // `{"app":"js"}` is refused by runApp: the sandbox takes scripts as `source` only.
        const { invocation } = await runApp(c, ctx, {
          app: body.app,
          bearer,
          input: () => inputJson(body.input),
        })
        return answerAppRun(c, invocation, { logs: invocation.logs }) as never
      }
      if (!ctx.agent) {
        throw new WardenError('not_found', 'this server has no built-in JS sandbox')
      }
      const { invocation } = await runApp(c, ctx, {
        app: AGENT_APP_NAME,
        bearer,
        input: () => agentRequest(body.source, body.input),
        component: ctx.agent,
        // Every tenant's scripts are runs of this one app: share it per token family.
        fairness: 'token-family',
        builtin: true,
      })
      const raw = scriptValue(invocation)
      if (raw) {
        return answer(c, raw, invocation) as never
      }
      const outcome = agentAnswer(invocation)
      if (outcome.ok) {
        // An answer the fast path does not take (parsed by agentAnswer, 1 MiB at most).
        return answer(c, new RawJson(JSON.stringify(outcome.value) ?? 'null'), invocation) as never
      }
      if ('scriptError' in outcome) {
        const { message, stack } = outcome.scriptError
        return c.json(
          {
            error: { code: 'guest_error', message, stack },
            logs: invocation.logs,
            report: invocation.report,
            invocationId: invocation.report.invocationId,
          },
          422,
        ) as never
      }
      return answerRunError(c, outcome.error, invocation, { logs: invocation.logs }) as never
    },
  )
}

/**
 * A script's return value as the JSON text the sandbox wrote it in, `{"ok":<value>}`, without
 * parsing it on the main thread: undefined unless the run succeeded with exactly that shape
 * (then {@link agentAnswer} decides, as before).
 */
function scriptValue(invocation: Invocation): RawJson | undefined {
  const text = invocation.output
  if (
    !invocation.ok ||
    typeof text !== 'string' ||
    // Past agentAnswer's bound: it answers limit_exceeded.
    Buffer.byteLength(text) > MAX_AGENT_OUTPUT_BYTES + 8 ||
    !text.startsWith('{"ok":') ||
    !text.endsWith('}')
  ) {
    return undefined
  }
  const value = text.slice(6, -1)
  return isJsonText(value) ? new RawJson(value) : undefined
}

function answer(c: Context<ControlPlaneEnv>, output: RawJson, invocation: Invocation) {
  return jsonAnswer(
    c,
    {
      output,
      logs: invocation.logs,
      report: invocation.report,
      invocationId: invocation.report.invocationId,
    },
    200,
  )
}
