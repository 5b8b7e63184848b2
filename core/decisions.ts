/**
 * What a host call decided and what a guest logged: the records every capability produces and
 * the runtime reports and audits. A leaf: imports nothing of Warden's.
 */

/** A WIT `host-error` variant as jco represents it: `{ tag: 'denied', val: 'why' }`. */
export interface HostErrorPayload {
  tag: 'denied' | 'limit-exceeded' | 'invalid' | 'upstream'
  val: string
}

/** One guest log line, kept in the run's report. */
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error'
  message: string
}

/**
 * One host call's decision, made in the worker (a log line, an early denial) or in the broker.
 * Every host call gets one; `call` orders them within the run. The audit log accounts for each:
 * calls that differ in nothing a record shows share one record that counts them
 * (`runtime/audit/host-calls.ts`).
 */
export interface Decision {
  /** 1-based index of the host call within the run. */
  call: number
  capability: string
  fn: string
  decision: 'allow' | 'deny'
  /** Why, for a denial or an error answer: a short code-like phrase, never guest data. */
  reason?: string
  /** What was reached: a URL (before secret substitution), a secret name, a data key, a log level. */
  target?: string
  durationMs?: number
  bytesOut?: number
  bytesIn?: number
}
