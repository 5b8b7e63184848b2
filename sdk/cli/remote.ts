/**
 * The remote half of `warden`: with `--server <url>` (or `WARDEN_SERVER`) the commands talk to
 * a Warden server through {@link WardenClient}, with the API key of `WARDEN_KEY`. Pure helpers
 * here; `program.ts` branches on {@link connectRemote}.
 */
import { WardenError } from '../../runtime/index.js'
import { WardenClient } from '../client/index.js'
import type { App, AppDetail, AuditRecord, AuditVerifyAnswer, Route } from '../client/index.js'
import { terminalSafe } from './terminal.js'

/**
 * The client of the server named by `--server` or `WARDEN_SERVER`, or undefined (a local
 * command). `invalid_request` for a server that is not an http(s) URL.
 */
export function connectRemote(
  server: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  fetchImpl?: typeof fetch,
): WardenClient | undefined {
  const url = server ?? (env.WARDEN_SERVER || undefined)
  if (url === undefined) {
    return undefined
  }
  try {
    return new WardenClient({
      server: url,
      ...(env.WARDEN_KEY ? { key: env.WARDEN_KEY } : {}),
      ...(fetchImpl ? { fetch: fetchImpl } : {}),
    })
  } catch (error) {
    throw new WardenError('invalid_request', `--server: ${(error as Error).message}`, {
      cause: error,
    })
  }
}

/** One line per app: `id  name  status  tier  owner`. */
export function formatAppLine(app: App): string {
  const safe = (s: string) => terminalSafe(s, false)
  return `${app.id}  ${app.name}  ${app.status.padEnd(14)}  ${app.riskTier.padEnd(6)}  ${safe(app.owner)}`
}

/** A micro-app's route binding for a terminal: where it is served, under which token. */
export function formatRoute(route: Route, server: string): string[] {
  const safe = (s: string) => terminalSafe(s, false)
  return [
    `app:      ${route.name} (${route.appId})`,
    `serves:   ${safe(server.replace(/\/+$/, ''))}${route.path}`,
    `token:    ${route.jti} (expires ${new Date(route.exp * 1000).toISOString()})`,
    `bound:    ${route.boundAt} by ${safe(route.boundBy)}`,
  ]
}

/** An app for a terminal: its facts, versions and tokens. */
export function formatAppDetail(app: AppDetail): string[] {
  const safe = (s: string) => terminalSafe(s, false)
  return [
    `app:      ${app.name} (${app.id})`,
    `status:   ${app.status}`,
    `owner:    ${safe(app.owner)}`,
    `purpose:  ${safe(app.purpose)}`,
    ...(app.reviewBy ? [`review:   ${app.reviewBy}`] : []),
    `risk:     ${app.riskTier}${app.riskReasons.length ? ` (${app.riskReasons.map(safe).join('; ')})` : ''}`,
    `digest:   ${app.digest}`,
    `imports:  ${app.imports.join(', ') || '(none)'}`,
    `versions: ${app.versions.length}`,
    ...app.versions.map(
      (v) =>
        `  ${v.digest}  ${v.riskTier}  uploaded ${v.uploadedAt} by ${v.uploadedBy}` +
        (v.approvedAt ? `, approved by ${v.approvedBy}` : ', pending'),
    ),
    `tokens:   ${app.tokens.length}`,
    ...app.tokens.map(
      (t) =>
        `  ${t.jti}  exp ${new Date(t.exp * 1000).toISOString()}${t.revokedAt ? '  revoked' : ''}`,
    ),
  ]
}

/** Options of {@link tailRemoteAudit}. */
export interface RemoteTailOptions {
  /** How many records, default 20. */
  limit?: number
  app?: string
  invocation?: string
}

/** The page size of the API's audit query, at most. */
const PAGE = 1000

/**
 * The last `limit` matching records, oldest first. The API reads forward from a seq, so this
 * reads windows of {@link PAGE} seqs backwards from the head until it has enough: a window
 * holds at most {@link PAGE} records, so one query per window sees all of it.
 */
export async function tailRemoteAudit(
  client: WardenClient,
  options: RemoteTailOptions,
): Promise<AuditRecord[]> {
  const limit = options.limit ?? 20
  const filter = {
    ...(options.app === undefined ? {} : { app: options.app }),
    ...(options.invocation === undefined ? {} : { invocation: options.invocation }),
  }
  let end = (await client.audit.head()).seq
  let found: AuditRecord[] = []
  while (end >= 1 && found.length < limit) {
    const start = Math.max(1, end - PAGE + 1)
    const page = await client.audit.query({ ...filter, cursor: start, limit: PAGE })
    found = [...page.records.filter((r) => r.seq <= end), ...found]
    end = start - 1
  }
  return found.slice(-limit)
}

/** What `audit verify --server` prints, in the words of the local `audit verify`. */
export function formatRemoteVerify(answer: AuditVerifyAnswer): string[] {
  if (!answer.ok) {
    return [`first bad seq ${answer.firstBad} (${answer.reason})`]
  }
  const last = answer.lastCheckpoint
  const unsigned = answer.unsigned ?? 0
  const after =
    unsigned === 0
      ? 'no record after it'
      : `${unsigned} records after it, covered by the hash chain only`
  return [
    answer.records === 0
      ? 'ok: the audit log is empty'
      : `ok: ${answer.records} records, last seq ${answer.lastSeq}, last hash ${answer.lastHash}`,
    last
      ? `last signed checkpoint: seq ${last.seq} at ${last.ts}; ${after}`
      : 'no signed checkpoint: a rebuilt chain is only caught against a head kept elsewhere',
  ]
}
