/**
 * Audit records of refused credentials, bounded. Every refused credential is on the record, but
 * a client sending forged tokens or wrong keys as fast as it can must not grow the audit log
 * without bound (found by the outside attacks): past `perClient` refusals a second from one
 * address, or `overall` from all of them, refusals are counted instead, and the count is written
 * as one record a second (`target: "+N refusals …"`), so none vanishes from the record.
 */
import { getConnInfo } from '@hono/node-server/conninfo'
import type { Context } from 'hono'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import type { AuditLog } from '../runtime/index.js'

/** Default refusals recorded one by one per client address and second. */
export const DEFAULT_REFUSALS_PER_CLIENT = 10

/** Default refusals recorded one by one per second, from every client together. */
export const DEFAULT_REFUSALS_OVERALL = 50

/** The refusal recorder. */
export interface RefusalAudit {
  /** Record a refused credential (`code`) from the client of `c`. */
  record(c: Context, code: string): Promise<void>
  /** Write what was counted and stop the timer. */
  close(): Promise<void>
}

/** The client address of a request, or `unknown`. */
export function clientOf(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

/**
 * @example
 * const refusals = createRefusalAudit(warden.audit)
 * await refusals.record(c, 'token_invalid')
 */
export function createRefusalAudit(
  audit: AuditLog,
  limits: { perClient?: number; overall?: number } = {},
): RefusalAudit {
  const perClient = new RateLimiterMemory({
    points: limits.perClient ?? DEFAULT_REFUSALS_PER_CLIENT,
    duration: 1,
  })
  const overall = new RateLimiterMemory({
    points: limits.overall ?? DEFAULT_REFUSALS_OVERALL,
    duration: 1,
  })
  let counted = 0
  let clients = new Set<string>()
  const flush = async () => {
    if (counted === 0) {
      return
    }
    const n = counted
    const from = clients.size
    counted = 0
    clients = new Set()
    await audit
      .append({
        kind: 'run',
        op: 'run',
        actor: 'client:*',
        decision: 'deny',
        reason: 'refused credentials',
        target: `+${n} refusals from ${from} client address${from === 1 ? '' : 'es'}, counted`,
      })
      .catch(() => undefined)
  }
  const timer = setInterval(() => void flush(), 1000)
  timer.unref()
  return {
    async record(c, code) {
      const client = clientOf(c)
      const allowed =
        (await perClient.consume(client).then(
          () => true,
          () => false,
        )) &&
        (await overall.consume('all').then(
          () => true,
          () => false,
        ))
      if (!allowed) {
        counted++
        if (clients.size < 10_000) {
          clients.add(client)
        }
        return
      }
      await audit.append({
        kind: 'run',
        op: 'run',
        actor: `client:${client}`,
        decision: 'deny',
        reason: code,
      })
    },
    async close() {
      clearInterval(timer)
      await flush()
    },
  }
}
