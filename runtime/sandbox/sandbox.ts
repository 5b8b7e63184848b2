/**
 * What the runtime needs from a sandbox: `SandboxPool` (worker threads of the host process) and
 * `ProcessSandboxPool` (that pool in a child process) both provide it.
 */
import type { RunContext } from '../../host-capabilities/types.js'
import type { SerializedError } from '../errors.js'
import type { PoolJob, PoolResult } from './pool.js'

/** Where runs are contained: worker threads of the host, or those threads in a child process. */
export type Isolation = 'thread' | 'process'

/** Which runs {@link Sandbox.cancel} ends: every match (default), or only those not started. */
export type CancelScope = 'all' | 'queued'

/** Which runs {@link Sandbox.cancel} ends: called once per queued or running job. */
export type RunMatch = (context: RunContext) => boolean

/**
 * A pool that runs jobs in fresh sandboxed instances.
 *
 * @example
 * const pool: Sandbox = new SandboxPool({ size: 2, brokerInterfaces: {}, onHostCall })
 * const result = await pool.run(job)
 */
export interface Sandbox {
  /** Runs that may be in progress at once. */
  readonly size: number
  /** Sandboxes started to replace killed or crashed ones, since the pool began. */
  readonly replacements: number
  /** Resolves once the pool can start runs at once: useful before measuring. */
  warm(): Promise<void>
  /** Run one job. Never rejects: every failure is a `PoolResult` with a stable code. */
  run(job: PoolJob): Promise<PoolResult>
  /**
   * End every queued or running job whose context `match`es (with `scope` `'queued'`, only the
   * queued ones), at once, with `error`: queued jobs never start; a running one is ended as at its deadline (its sandbox is killed, even
   * in a host call, and replaced in the background). Other jobs go on undisturbed. Returns
   * how many jobs were ended. The pool does not own `context.signal`: whoever made the
   * context aborts it when the run's promise settles (the runtime does, for every run).
   *
   * @example
   * pool.cancel((ctx) => ctx.appId === 'shop', { code: 'app_disabled', message: 'the app was disabled' })
   */
  cancel(match: RunMatch, error: SerializedError, scope?: CancelScope): number
  /** Stop the pool. Queued and running jobs end with `internal`. */
  close(): Promise<void>
}

/** The failed result of a job that was ended on purpose (cancelled, timed out) after `wallMs`. */
export function ended(error: SerializedError, wallMs = 0): Extract<PoolResult, { ok: false }> {
  return { ok: false, error: { code: error.code, message: error.message }, metering: null, wallMs }
}

/** A queued job and how to answer it. */
interface Queued {
  job: PoolJob
  resolve: (result: PoolResult) => void
}

/**
 * What both pools' `run` do with an admitted job: queue it (its answer through `wrap`), start
 * what can start (`pump`), and, if it was left waiting, tell it (`PoolJob.onQueued`).
 */
export function enqueue(
  queue: Queued[],
  job: PoolJob,
  wrap: (resolve: (result: PoolResult) => void) => (result: PoolResult) => void,
  pump: () => void,
): Promise<PoolResult> {
  let entry: Queued | undefined
  const answer = new Promise<PoolResult>((resolve) => {
    entry = { job, resolve: wrap(resolve) }
    queue.push(entry)
    pump()
  })
  if (job.onQueued && entry && queue.includes(entry)) {
    job.onQueued()
  }
  return answer
}

/**
 * Remove the queued jobs that `match` from `queue` and return them; `match` is called on every
 * job before the queue changes, so a `match` that throws leaves the queue as it was.
 */
export function takeMatching<T extends { job: PoolJob }>(queue: T[], match: RunMatch): T[] {
  const matched = queue.map((queued) => match(queued.job.context))
  const taken = queue.filter((_, i) => matched[i])
  if (taken.length > 0) {
    const kept = queue.filter((_, i) => !matched[i])
    queue.splice(0, queue.length, ...kept)
  }
  return taken
}
