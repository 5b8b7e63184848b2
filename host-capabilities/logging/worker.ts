/**
 * The `log` capability, answered inside the worker: no round trip, no I/O. Lines are kept in
 * the run's report, bounded by `logLines` and `logBytes`; lines past either are dropped and
 * counted. Denied by default: without a grant every line is dropped and the denial recorded.
 */
import type { LogLine } from '../../runtime/sandbox/protocol.js'
import type { WorkerRunState } from '../types.js'
import { LOG_INTERFACE, MAX_LINE_BYTES } from './descriptor.js'

const LEVELS: readonly LogLine['level'][] = ['debug', 'info', 'warn', 'error']

/** Create the `warden:platform/log` import object for one run. */
export function createLogImports(state: WorkerRunState, granted: boolean) {
  const encoder = new TextEncoder()
  return {
    write(level: unknown, message: unknown): void {
      const lvl = LEVELS.includes(level as LogLine['level']) ? (level as LogLine['level']) : 'info'
      const decide = (decision: 'allow' | 'deny', bytesOut: number, reason?: string) =>
        state.decisions.push({
          call: state.hostCalls,
          capability: LOG_INTERFACE,
          fn: 'write',
          decision,
          target: lvl,
          bytesOut,
          ...(reason === undefined ? {} : { reason }),
        })
      if (!granted) {
        state.logsDropped++
        decide('deny', 0, 'not granted')
        return
      }
      const text = truncate(String(message), MAX_LINE_BYTES)
      const size = encoder.encode(text).length
      if (state.logs.length >= state.limits.logLines || state.logBytes + size > state.limits.logBytes) {
        state.logsDropped++
        decide('deny', 0, 'log budget spent')
        return
      }
      state.logBytes += size
      state.logs.push({ level: lvl, message: text })
      decide('allow', size)
    },
  }
}

function truncate(text: string, maxBytes: number): string {
  // NB: a UTF-16 length bound first keeps this O(maxBytes) for huge guest strings.
  if (text.length * 3 <= maxBytes) {
    return text
  }
  const bytes = new TextEncoder().encode(text.slice(0, maxBytes))
  if (bytes.length <= maxBytes) {
    return text.slice(0, maxBytes)
  }
  return new TextDecoder().decode(bytes.subarray(0, maxBytes)).replace(/\uFFFD$/, '') + '…'
}
