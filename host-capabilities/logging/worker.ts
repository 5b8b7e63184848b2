/**
 * The `log` capability, answered inside the worker: no round trip, no I/O. Lines are kept in
 * the run's report, bounded by `logLines` and `logBytes`; lines past either are dropped and
 * counted. Denied by default: without a grant every line is dropped and the denial recorded.
 */
import { Buffer } from 'node:buffer'
import type { Decision, LogLine } from '../../core/decisions.js'
import type { WorkerRunState } from '../types.js'
import { LOG_INTERFACE, MAX_LINE_BYTES } from './descriptor.js'

const LEVELS: readonly LogLine['level'][] = ['debug', 'info', 'warn', 'error']

/**
 * Keep one log line in the run's report if the run's log budget allows; count it as dropped
 * otherwise. Returns the line's size in bytes when kept, -1 when dropped.
 */
export function keepLogLine(
  state: WorkerRunState,
  level: LogLine['level'],
  message: string,
): number {
  if (logBudgetSpent(state)) {
    state.logsDropped++
    return -1
  }
  const text = truncate(message, MAX_LINE_BYTES)
  const size = Buffer.byteLength(text)
  if (state.logBytes + size > state.limits.logBytes) {
    state.logsDropped++
    return -1
  }
  state.logBytes += size
  state.logs.push({ level, message: text })
  return size
}

/** Whether the run's log budget can keep no more lines: its line count or its bytes are spent. */
export function logBudgetSpent(state: WorkerRunState): boolean {
  return state.logs.length >= state.limits.logLines || state.logBytes >= state.limits.logBytes
}

/** Create the `warden:platform/log` import object for one run. */
export function createLogImports(state: WorkerRunState, granted: boolean) {
  return {
    write(level: unknown, message: unknown): void {
      const lvl = LEVELS.includes(level as LogLine['level']) ? (level as LogLine['level']) : 'info'
      const decide = (decision: 'allow' | 'deny', bytesOut: number, reason: string | undefined) => {
        const entry: Decision = {
          call: state.hostCalls,
          capability: LOG_INTERFACE,
          fn: 'write',
          decision,
          target: lvl,
          bytesOut,
        }
        if (reason !== undefined) {
          entry.reason = reason
        }
        state.decisions.push(entry)
      }
      if (!granted) {
        state.logsDropped++
        decide('deny', 0, 'not granted')
        return
      }
      const size = keepLogLine(state, lvl, String(message))
      if (size < 0) {
        decide('deny', 0, 'log budget spent')
      } else {
        decide('allow', size, undefined)
      }
    },
  }
}

function truncate(text: string, maxBytes: number): string {
  // NB: a line longer than maxBytes UTF-16 units is over maxBytes bytes too; this keeps the
  // work O(maxBytes) however large the guest's string.
  if (text.length <= maxBytes && Buffer.byteLength(text) <= maxBytes) {
    return text
  }
  const head = Buffer.from(text.slice(0, maxBytes)).subarray(0, maxBytes - 3)
  return `${head.toString('utf8').replace(/\uFFFD$/, '')}…`
}
