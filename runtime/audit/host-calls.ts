/**
 * How a run's host calls become audit records: one record per group of calls that differ in
 * nothing the record shows, so that a guest cannot turn its host-call budget into as many audit
 * records (outside attack 5, finding 06: 999 `warden.log("x")` were 1,000 records, ~625 KB per
 * request). No call is lost: a record standing for several carries their number (`calls`) and
 * the sums of their bytes and durations.
 *
 * Two calls of a run share a record when they have the same capability, function, decision,
 * reason and target; allowed writes to one output (`warden:platform/log` lines of any level,
 * `wasi:cli/stdout`, `wasi:cli/stderr`) share one whatever their level, the record's target
 * then listing the levels written. The records keep the order of each group's first call.
 * A run therefore writes at most one record per distinct (capability, function, decision,
 * reason, target) it produced: an early denial (`not granted`, no target) or a log line is one
 * record however often repeated, and only calls that each name another target (an http URL, a
 * data key, a secret name: work a grant allowed, or a denial worth reading) stay one record
 * each, bounded by the run's `hostCalls` limit.
 */
import type { Decision } from '../../core/decisions.js'

/** The outputs whose allowed writes are counted, not listed. */
const OUTPUTS = new Set(['warden:platform/log', 'wasi:cli/stdout', 'wasi:cli/stderr'])

/** The log levels in the order a merged target lists them. */
const LEVELS = ['debug', 'info', 'warn', 'error']

/** One audit record's worth of host calls: a decision standing for `calls` of them. */
export interface HostCallGroup {
  /** The first call's decision, with the summed bytes and duration, and the merged target. */
  decision: Decision
  /** How many calls (≥ 1). */
  calls: number
}

/**
 * The run's decisions (in call order) grouped as described in the module comment.
 *
 * @example
 * groupHostCalls(Array.from({ length: 999 }, (_, i) => logLine(i + 1)))
 * // [{ decision: { capability: 'warden:platform/log', fn: 'write', target: 'info',
 * //                bytesOut: 999, … }, calls: 999 }]
 */
export function groupHostCalls(decisions: readonly Decision[]): HostCallGroup[] {
  if (decisions.length < 2) {
    return decisions.map((decision) => ({ decision, calls: 1 }))
  }
  const groups = new Map<string, { decision: Decision; calls: number; levels?: Set<string> }>()
  for (const d of decisions) {
    const write = d.decision === 'allow' && d.fn === 'write' && OUTPUTS.has(d.capability)
    const key = JSON.stringify([
      d.capability,
      d.fn,
      d.decision,
      d.reason ?? null,
      write ? null : (d.target ?? null),
    ])
    const group = groups.get(key)
    if (!group) {
      groups.set(key, {
        decision: { ...d },
        calls: 1,
        ...(write ? { levels: new Set(d.target === undefined ? [] : [d.target]) } : {}),
      })
      continue
    }
    group.calls++
    const sum = group.decision
    for (const name of ['bytesOut', 'bytesIn', 'durationMs'] as const) {
      if (d[name] !== undefined) {
        sum[name] = (sum[name] ?? 0) + d[name]
      }
    }
    if (group.levels && d.target !== undefined) {
      group.levels.add(d.target)
    }
  }
  return [...groups.values()].map(({ decision, calls, levels }) => {
    if (levels && levels.size > 0) {
      decision.target = [...levels].sort(byLevel).join(',')
    }
    return { decision, calls }
  })
}

function byLevel(a: string, b: string): number {
  return LEVELS.indexOf(a) - LEVELS.indexOf(b) || (a < b ? -1 : a > b ? 1 : 0)
}
