/**
 * Audit records of refused credentials, bounded per client address. Every refused token is on
 * the record, but a client sending forged tokens as fast as it can must not grow the audit log
 * without bound (found by the outside attack): past `perSecond` refusals from one address, they
 * are counted, and the count is written as one record (`target: "+N suppressed"`) with that
 * address's next recorded refusal.
 */
import { getConnInfo } from '@hono/node-server/conninfo'
import type { Context } from 'hono'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import type { AuditLog } from '../runtime/index.js'

/** Default refusals recorded one by one per client address and second. */
export const DEFAULT_REFUSALS_PER_SECOND = 10

/** Most addresses whose suppressed refusals are counted at once. */
const MAX_COUNTED = 10_000

/** The refusal recorder. */
export interface RefusalAudit {
  /** Record a refused credential (`code`) from the client of `c`. */
  record(c: Context, code: string): Promise<void>
}

function clientOf(c: Context): string {
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
  perSecond = DEFAULT_REFUSALS_PER_SECOND,
): RefusalAudit {
  const limiter = new RateLimiterMemory({ points: perSecond, duration: 1 })
  const suppressed = new Map<string, number>()
  return {
    async record(c, code) {
      const client = clientOf(c)
      const allowed = await limiter.consume(client).then(
        () => true,
        () => false,
      )
      if (!allowed) {
        if (suppressed.size >= MAX_COUNTED && !suppressed.has(client)) {
          suppressed.delete(suppressed.keys().next().value!)
        }
        suppressed.set(client, (suppressed.get(client) ?? 0) + 1)
        return
      }
      const before = suppressed.get(client) ?? 0
      suppressed.delete(client)
      await audit.append({
        kind: 'run',
        op: 'run',
        actor: `client:${client}`,
        decision: 'deny',
        reason: code,
        ...(before > 0 ? { target: `+${before} suppressed` } : {}),
      })
    },
  }
}
