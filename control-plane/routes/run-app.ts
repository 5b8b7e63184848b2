/**
 * Running an app under a capability token, shared by `POST /v1/apps/:id/invoke` and
 * `POST /v1/runs`: the token first (whoever holds no valid token for the app learns nothing
 * about it), then the app's status, then one run, counted and remembered; and the answer of a
 * run as JSON, with the metering report beside an error.
 */
import type { Context } from 'hono'
import { createMiddleware } from 'hono/factory'
import { MAX_AGENT_OUTPUT_BYTES, toWardenError, WardenError } from '../../runtime/index.js'
import type { CapabilityClaims, Invocation, LoadedComponent, Warden } from '../../runtime/index.js'
import type { ControlPlaneContext } from '../app.js'
import { isJsonText } from '../json-text.js'
import { requireToken } from '../auth.js'
import type { ControlPlaneEnv } from '../auth.js'
import { familyOf } from '../rate-limit.js'
import { BUILTIN_PUBLISHER } from '../registry.js'
import { clientOf } from '../refusals.js'
import type { AppRecord } from '../registry.js'

/** A verified bearer token and its claims. */
export type Bearer = ControlPlaneEnv['Variables']['bearer']

/**
 * Route middleware of the routes a capability token authorises: the request's token, verified
 * (see {@link verifyPresentedToken}) and kept as `c.get('bearer')`. It runs before the route's
 * validators, so a request without a valid token costs no parsing or checking of its body: a
 * 270 KB `attenuate` body cost ~15 ms of schema checks before its absent credential was
 * noticed (twelfth outside attack).
 */
export function tokenFirst(ctx: ControlPlaneContext) {
  return createMiddleware<ControlPlaneEnv>(async (c, next) => {
    const token = requireToken(c.req.header('authorization'))
    c.set('bearer', { token, claims: await verifyPresentedToken(c, ctx, token) })
    await next()
  })
}

/**
 * A capability token the client presented, verified, and only then charged to its family's rate
 * limit: a token gets no bucket of its own before its signature checked, so a flood of forged
 * strings makes no fresh budget (nor Redis key) per string. A refusal is recorded (bounded) and
 * charged to the client address, as a wrong API key is: past that budget `429 rate_limited`,
 * whatever the strings; a valid token's budget is never spent by them.
 */
export async function verifyPresentedToken(
  c: Context<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
  token: string,
): Promise<CapabilityClaims> {
  let claims: CapabilityClaims
  try {
    claims = await ctx.warden.verifyToken(token)
  } catch (error) {
    const code = toWardenError(error).code
    await ctx.refusals.record(c, code)
    if (code !== 'store_unavailable') {
      // The token's own fault (forged, expired, revoked): its sender pays.
      await ctx.limiter.check({ kind: 'client', address: clientOf(c) })
    }
    throw error
  }
  await ctx.limiter.check(familyOf(claims)).catch(async (error: unknown) => {
    // Redis lost: the token is refused before its budget could be counted, on the record.
    if (error instanceof WardenError && error.code === 'store_unavailable') {
      await ctx.refusals.record(c, error.code)
    }
    throw error
  })
  return claims
}

/** An input value as the JSON text an action takes. */
export function inputJson(input: unknown): string {
  try {
    return input === undefined ? 'null' : JSON.stringify(input)
  } catch {
    throw new WardenError('invalid_request', 'input: nested too deeply')
  }
}

/**
 * Most bytes of a run's output (or its guest error) an answer carries: 1 MiB, as for a script's
 * return value. Past it the answer is `limit_exceeded` (with the run's report): the server
 * checks, encodes and sends every byte on its main thread, which all requests share.
 */
export const MAX_ANSWER_OUTPUT_BYTES = MAX_AGENT_OUTPUT_BYTES

/**
 * What a run's output may carry before it is read at all (`RunOptions.outputCap`): an answer's
 * most, and the 8 characters of a script's `{"ok":…}` around it. Beyond it the output is
 * dropped before redaction, whose cost grows with the bytes and the stored secrets.
 */
const OUTPUT_CAP = {
  bytes: MAX_ANSWER_OUTPUT_BYTES + 8,
  error: {
    code: 'limit_exceeded' as const,
    message: `the app answered more than ${MAX_ANSWER_OUTPUT_BYTES} bytes, the most an answer carries`,
  },
}

/** JSON text that goes into an answer as it is (see {@link jsonAnswer}). */
export class RawJson {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

/**
 * A guest's output string as the JSON text of an answer: the string itself when it is JSON
 * (checked in one pass, never parsed: parsing 16 MB of `[{},…]` and serialising it again held
 * the main thread ~1.9 s, ninth outside attack), else the string as a JSON string. Throws
 * `limit_exceeded` past {@link MAX_ANSWER_OUTPUT_BYTES}.
 */
export function outputJson(output: unknown): RawJson {
  if (typeof output !== 'string') {
    return new RawJson(JSON.stringify(output ?? null))
  }
  if (
    output.length > MAX_ANSWER_OUTPUT_BYTES ||
    Buffer.byteLength(output) > MAX_ANSWER_OUTPUT_BYTES
  ) {
    throw new WardenError(
      'limit_exceeded',
      `the app answered more than ${MAX_ANSWER_OUTPUT_BYTES} bytes, the most an answer carries`,
    )
  }
  return new RawJson(isJsonText(output) ? output : JSON.stringify(output))
}

/**
 * The answer to a run of a deployed app (`POST /v1/apps/:id/invoke`, `POST /v1/runs {app}`):
 * its output (200), its own error (422 `guest_error`), or Warden's error, each with the run's
 * report and `extra` fields (the logs, on `/v1/runs`).
 */
export function answerAppRun(
  c: Context<ControlPlaneEnv>,
  invocation: Invocation,
  extra: Record<string, unknown> = {},
): Response {
  if (invocation.error) {
    return answerRunError(c, WardenError.fromJSON(invocation.error), invocation, extra)
  }
  let value: RawJson
  try {
    value = outputJson(invocation.ok ? invocation.output : invocation.guestError)
  } catch (error) {
    return answerRunError(c, toWardenError(error), invocation, extra)
  }
  const { report } = invocation
  if (invocation.ok) {
    return jsonAnswer(
      c,
      { output: value, ...extra, report, invocationId: report.invocationId },
      200,
    )
  }
  return answerRunError(
    c,
    new WardenError('guest_error', 'the app returned an error'),
    invocation,
    { guestError: value, ...extra },
  )
}

/**
 * A JSON answer whose fields are serialised in order, each {@link RawJson} as its text: the
 * guest's JSON goes out as it came, with no parse and no second serialisation.
 */
export function jsonAnswer(
  c: Context<ControlPlaneEnv>,
  fields: Record<string, unknown>,
  status: number,
): Response {
  let text = '{'
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) {
      continue
    }
    text += `${text.length > 1 ? ',' : ''}${JSON.stringify(key)}:${value instanceof RawJson ? value.text : JSON.stringify(value)}`
  }
  return c.body(`${text}}`, status as 200, { 'content-type': 'application/json' })
}

/** A build: from the runtime's in-memory cache (bounded), else read back from the registry. */
export function buildOf(
  { warden, registry }: Pick<ControlPlaneContext, 'warden' | 'registry'>,
  record: Pick<AppRecord, 'digest'>,
): Promise<LoadedComponent> {
  return (
    warden.runtime.loaded(record.digest) ??
    registry.readBlob(record.digest).then((bytes) => warden.load(bytes))
  )
}

/**
 * A run of an app that is not `approved`, refused on the record (`deny`, its code): the error
 * to throw, `app_disabled` or `app_not_approved`.
 */
export async function refuseRun(
  warden: Warden,
  record: AppRecord,
  tokenJti?: string,
): Promise<WardenError> {
  const code = record.status === 'disabled' ? 'app_disabled' : 'app_not_approved'
  await warden.audit.append({
    kind: 'run',
    op: 'run',
    appId: record.id,
    digest: record.digest,
    ...(tokenJti ? { tokenJti } : {}),
    actor: `app:${record.id}`,
    decision: 'deny',
    reason: code,
  })
  return new WardenError(
    code,
    code === 'app_disabled' ? 'the app is disabled' : 'the app is waiting for approval',
  )
}

/** What {@link runApp} runs. */
export interface AppRun {
  /** The app's id or name, as the caller named it. */
  app: string
  bearer: Bearer
  /** The action's input as JSON text, made once the token and the app passed. */
  input: () => string
  /** The build to run, when the caller holds it (the built-in agent); else loaded by digest. */
  component?: LoadedComponent
  /** Whose share of the pool the run counts against (`RunOptions.fairness`); default the app. */
  fairness?: 'app' | 'token-family'
  /**
   * The run is a built-in app's, through its own route (`POST /v1/runs` with `source`, under
   * that route's caps and fairness). Any other run of a built-in app is refused.
   */
  builtin?: true
}

/**
 * Run an approved action once under the bearer's token: `token_invalid` when the token is for
 * another app (or the app is unknown or decommissioned), `app_disabled` / `app_not_approved`
 * (audited) when it may not run. Sets the `x-warden-invocation` and `x-warden-fuel` headers.
 */
export async function runApp(
  c: Context<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
  run: AppRun,
): Promise<{ record: AppRecord; invocation: Invocation }> {
  const { warden, registry } = ctx
  const { token, claims } = run.bearer
  const found = registry.get(run.app)
  if (!found || found.id !== claims.app.id || found.status === 'decommissioned') {
    await ctx.refusals.record(c, 'token_invalid')
    throw new WardenError('token_invalid', 'the token is for another app')
  }
  const record = found
  if (record.status !== 'approved') {
    throw await refuseRun(warden, record, claims.jti)
  }
  if (record.kind !== 'action') {
    throw new WardenError('invalid_request', 'only an action is invoked; this is a micro-app')
  }
  if (record.publisher === BUILTIN_PUBLISHER && !run.builtin) {
    // The sandbox takes scripts as `source` on POST /v1/runs, under the source's own caps and
    // the per-tenant share; through invoke it would skip both.
    throw new WardenError(
      'invalid_request',
      'send JS to the built-in sandbox as `source` on POST /v1/runs',
    )
  }
  // A build: the caller's, else the runtime's in-memory cache (bounded), else the registry's.
  const component =
    run.component?.digest === record.digest ? run.component : await buildOf(ctx, record)
  const input = run.input()
  const invocation = await countedRun(c, ctx, record, (request) =>
    warden.run(component, input, {
      token,
      appId: record.id,
      verified: claims,
      outputCap: OUTPUT_CAP,
      ...(run.fairness ? { fairness: run.fairness } : {}),
      get signal() {
        return request.signal
      },
    }),
  )
  c.header('x-warden-fuel', String(invocation.report.fuelUsed ?? ''))
  return { record, invocation }
}

/**
 * One run of `record` as the control plane counts it (invoke, agent runs, micro-app requests):
 * its metrics, the app's last run, the recent reports and the `x-warden-invocation` header.
 * `start` gets the request, whose `signal` it passes on as a getter: a client that hangs up
 * while its run waits for a sandbox frees that place (`client_closed`), and a request whose run
 * starts at once never makes its signal (an AbortController and its listeners, ~20 µs).
 */
export async function countedRun(
  c: Context<ControlPlaneEnv>,
  ctx: ControlPlaneContext,
  record: Pick<AppRecord, 'id'>,
  start: (request: { readonly signal: AbortSignal }) => Promise<Invocation>,
): Promise<Invocation> {
  ctx.metrics.runStarted()
  let invocation: Invocation
  try {
    invocation = await start(c.req.raw)
  } catch (error) {
    ctx.metrics.runEnded(undefined, toWardenError(error).code)
    throw error
  }
  ctx.metrics.runEnded(invocation)
  ctx.registry.touchRun(record.id)
  ctx.recent.add(invocation.report)
  c.header('x-warden-invocation', invocation.report.invocationId)
  return invocation
}

/** A Warden error of a run, answered with its status, the report beside it. */
export function answerRunError(
  c: Context<ControlPlaneEnv>,
  error: WardenError,
  invocation: Invocation,
  extra: Record<string, unknown> = {},
): Response {
  const { report } = invocation
  return jsonAnswer(
    c,
    { error: error.toJSON(), ...extra, report, invocationId: report.invocationId },
    error.status,
  )
}
