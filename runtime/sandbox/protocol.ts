/**
 * The typed messages between the pool (main thread) and a sandbox worker, and the layout of
 * the shared channel.
 *
 * Component loads travel by `postMessage` on the control port. Jobs, results and host calls
 * travel through a SharedArrayBuffer (framing in `channel.ts`): the worker blocks in
 * `Atomics.wait`; the main thread, woken by `Atomics.waitAsync`, answers in place. Payloads
 * too large for it fall back to a message.
 */
import type { SerializedError } from '../errors.js'
import type { ResolvedLimits } from '../limits/limits.js'
import type { Decision, HostErrorPayload, LogLine } from '../../core/decisions.js'

export type { Decision, HostErrorPayload, LogLine } from '../../core/decisions.js'

/** What the worker needs to instantiate one component: its glue and its compiled core modules. */
export interface LoadedComponentMessage {
  /** Cache key: digest + transpiler + cost model. */
  key: string
  /**
   * The jco glue as a function body returning `instantiate` (see `loader/glue.ts`), evaluated
   * synchronously in the worker. `glueFile` names it in stack traces.
   */
  glueSource: string
  glueFile: string
  /** Instrumented core modules by the file name the glue asks for. */
  modules: Record<string, WebAssembly.Module>
  /**
   * The same modules as bytes, for a sandbox in another process (a `WebAssembly.Module` cannot
   * cross one). Set when the loader keeps them (`keepModuleBytes`).
   */
  moduleBytes?: Record<string, Uint8Array>
  /** Minimum pages of each defined memory, to refuse a run whose cap is below them. */
  minMemoryPages: number
  /**
   * The component's memory, when its module imports it from `warden:meter` (the loader's
   * instrumenter always does this for the one memory a component may define): the worker
   * hands each instance a memory of these limits, fresh or reset to zeros.
   */
  providedMemory?: ProvidedMemory
}

/** The limits of a memory the sandbox hands a core module, in 64 KiB pages. */
export interface ProvidedMemory {
  minPages: number
  maxPages: number
}

/** The per-run view of the grant that the worker may apply without a round trip. */
export interface WorkerGrant {
  /** Interfaces (unversioned, as jco keys them) that this run may call. */
  granted: readonly string[]
  /** Interfaces the component imports; the worker provides exactly these. */
  imported: readonly string[]
}

/** Main thread → worker, on the control port (drained synchronously before each job). */
export type ToWorkerControl =
  | { type: 'load'; component: LoadedComponentMessage }
  | { type: 'unload'; key: string }

/** Main thread → worker, through the shared channel (state JOB). */
export interface InvokeJob {
  type: 'invoke'
  id: number
  key: string
  exportName: string
  args: unknown[]
  limits: ResolvedLimits
  grant: WorkerGrant
  /**
   * When the run's `timeoutMs` runs out, in epoch ms (`performance.timeOrigin +
   * performance.now()`, comparable across threads): past it, the guest ends the run with
   * `timeout` at its next refuel (`../limits/refuel.ts`) and the worker lives on. Absent: no
   * deadline in the guest (the pool's watchdog only).
   */
  deadline?: number
  /**
   * The run has a listener (`RunContext.onDecision`): the worker posts each decision it makes
   * on its live port as it records it ({@link LiveDecision}), at most
   * {@link liveDecisionCap} of them. Absent otherwise, and then the worker posts nothing.
   */
  live?: true
}

/**
 * Worker → main thread on the live port, during a live run: one decision the worker just
 * recorded (a log line, a stdout/stderr write, an early denial), for the run's listener.
 */
export interface LiveDecision {
  /** The run's {@link InvokeJob.id}. */
  id: number
  decision: Decision
}

/**
 * Most decisions a worker posts live in one run: the run's `logLines`, the budget that already
 * bounds what a guest may log. Past it, a guest writing line after line makes no more messages;
 * those decisions come only with the run's result. Whoever receives checks it too.
 */
export function liveDecisionCap(limits: ResolvedLimits): number {
  return limits.logLines
}

/** Counters the worker reports for every run, success or not. */
export interface WorkerMetering {
  fuelUsed: number
  memoryPeakBytes: number
  hostCalls: number
  logs: LogLine[]
  logsDropped: number
  decisions: Decision[]
}

/** Worker → main thread. */
export type FromWorker =
  | {
      type: 'ready'
      /**
       * The worker thread's Linux thread id (from /proc/thread-self, read before any guest code
       * exists), so the pool can lower the priority of runs of apps that hog their limits.
       */
      tid?: number
    }
  | {
      type: 'result'
      id: number
      ok: true
      /** `err` when a `result<_, E>` export returned its error case; `value` is then E. */
      outcome: 'ok' | 'err'
      value: unknown
      metering: WorkerMetering
      /** The worker prepares an instance for the next run before it takes one (a hint). */
      preparing?: boolean
    }
  | {
      type: 'result'
      id: number
      ok: false
      /** A Warden error code, or the guest's own `err` value for `result<_, E>` exports. */
      error: SerializedError
      guestError?: unknown
      metering: WorkerMetering
      preparing?: boolean
    }
  | { type: 'host-call-large'; bytes: Uint8Array }

/** A host call as it crosses the channel. */
export interface HostCallRequest {
  /** 1-based index of the host call within the run (see {@link Decision}). */
  call: number
  capability: string
  fn: string
  args: unknown[]
}

/** The broker's answer to a host call. */
export type HostCallResponse =
  | { ok: true; value: unknown }
  /** An error the guest sees as the WIT `err` case; the run goes on. */
  | { ok: false; hostError: HostErrorPayload }
  /** An error that ends the run (budget spent, kill switch). */
  | { ok: false; fatal: SerializedError }

/**
 * Shared channel layout: an Int32 header followed by a byte area.
 * A run starts with IDLE → JOB (main) → IDLE (worker). During it, STATE moves IDLE → REQUEST
 * (worker) → RESPONSE (main) → IDLE (worker), once per host call. At its end, IDLE → RESULT
 * (worker) → IDLE (main). LENGTH_ON_PORT in LENGTH means the payload came by message instead
 * of through the area: a job on the control port, a host call as `host-call-large`, an answer
 * on the response port. A result too large for the area comes as a `result` message and
 * leaves STATE alone.
 */
export const CHANNEL = {
  STATE: 0,
  LENGTH: 1,
  /**
   * 1 when the pool found a vCPU for this worker to watch the channel on (its busy workers and
   * the main thread fit the machine), 0 when spinning would take one from a thread with work.
   */
  ROOMY: 2,
  /**
   * Host calls of the run in flight as the worker counts them (set to 0 by the pool with each
   * job): what a run ended before its worker could report (deadline, cancel) still shows.
   */
  CALLS: 3,
  /**
   * Set to 1 by the pool when the run in flight is cancelled (a kill switch), to 0 with each
   * job: the worker's `refuel` then ends the run in the guest at its next slice, as at a
   * deadline, and the worker lives on (`../limits/refuel.ts`).
   */
  STOP: 4,
  HEADER_BYTES: 32,
  IDLE: 0,
  REQUEST: 1,
  RESPONSE: 2,
  /** The worker finished a run; the serialised `result` message is in the area. */
  RESULT: 4,
  /** The main thread put a serialised {@link InvokeJob} in the area (or on the control port). */
  JOB: 5,
  /** LENGTH value meaning "the payload came by message" (host-call-large, or a large job). */
  LENGTH_ON_PORT: -1,
} as const

/** Default size of each worker's channel. Larger payloads fall back to message passing. */
export const DEFAULT_CHANNEL_BYTES = 1024 * 1024
