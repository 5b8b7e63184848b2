/**
 * Audit records of refused credentials, bounded. Every refused credential is on the record, but
 * a client sending forged tokens or wrong keys as fast as it can must not grow the audit log
 * without bound (found by the outside attacks): past `perClient` refusals a second from one
 * address, or `overall` from all of them, refusals are counted instead, and the count is written
 * as one record a second (`target: "+N refusals …"`), so none vanishes from the record.
 */
import { isIPv4, isIPv6 } from 'node:net'
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

/**
 * The client of a request as budgets count it, or `unknown`: an IPv4 address (an IPv4-mapped
 * IPv6 address as its IPv4 form), or an IPv6 address's /64 network, since one IPv6 client
 * commonly holds a whole /64 (a budget per address would be a budget per request).
 */
export function clientOf(c: Context): string {
  let address: string | undefined
  try {
    address = getConnInfo(c).remote.address
  } catch {
    return 'unknown'
  }
  return address === undefined ? 'unknown' : clientKey(address)
}

/** See {@link clientOf}: `::ffff:1.2.3.4` → `1.2.3.4`, `2001:db8::1` → `2001:db8:0:0::/64`. */
export function clientKey(address: string): string {
  const plain = address.replace(/%.*$/, '')
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain)
  if (mapped && isIPv4(mapped[1]!)) {
    return mapped[1]!
  }
  if (!isIPv6(plain)) {
    return plain
  }
  // Expand `::` and an IPv4 tail to eight groups, then keep the first four.
  let text = plain.toLowerCase()
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (tail) {
    const [a, b, c, d] = tail[1]!.split('.').map(Number) as [number, number, number, number]
    text = `${text.slice(0, -tail[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head, rest] = text.split('::') as [string, string | undefined]
  const front = head === '' ? [] : head.split(':')
  const back = rest === undefined || rest === '' ? [] : rest.split(':')
  const groups =
    rest === undefined
      ? front
      : [...front, ...Array(8 - front.length - back.length).fill('0'), ...back]
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`
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
