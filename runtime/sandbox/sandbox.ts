/**
 * What the runtime needs from a sandbox: `SandboxPool` (worker threads of the host process) and
 * `ProcessSandboxPool` (that pool in a child process) both provide it.
 */
import type { PoolJob, PoolResult } from './pool.js'

/** Where runs are contained: worker threads of the host, or those threads in a child process. */
export type Isolation = 'thread' | 'process'

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
  /** Stop the pool. Queued and running jobs end with `internal`. */
  close(): Promise<void>
}
