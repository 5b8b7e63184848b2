/**
 * The metering report: one per run, whatever its outcome (DESIGN.md "Metering report").
 */
import type { SerializedError, WardenErrorCode } from './errors.js'

/** How a run ended: `ok`, `err` (the guest returned its own error case), or a Warden error code. */
export type RunOutcome = 'ok' | 'err' | WardenErrorCode

/** One run's costs. Figures the host could not read (the worker was killed) are null. */
export interface MeteringReport {
  invocationId: string
  appId: string
  digest: string
  tokenJti: string | null
  /** ISO 8601. */
  startedAt: string
  /** Time in the sandbox, from the start of the run to its answer. */
  wallMs: number
  /**
   * Time spent waiting for a worker before the run started (other runs held them), in ms: a
   * caller sees `queuedMs + wallMs`.
   */
  queuedMs: number
  fuelUsed: number | null
  fuelLimit: number
  memoryPeakBytes: number | null
  memoryLimitBytes: number
  hostCalls: number | null
  egressBytes: number
  outcome: RunOutcome
  error?: SerializedError
  logsDropped: number
}
