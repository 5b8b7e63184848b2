/**
 * Per-app shares of a sandbox pool: how many runs of one app may run at once, and how many
 * more may wait. One app's burst (hostile or not) is refused at once past its share instead of
 * making every other app's runs wait behind it. Both pools (threads, process) schedule with it.
 */
import type { PoolResult } from './pool.js'

/** Caps of {@link AppShares}. */
export interface AppShareOptions {
  /**
   * Runs of one app running at once. Default: every worker but one (one on a pool of one), so
   * one app's runaway runs always leave a worker for the others.
   */
  maxRunningPerApp?: number
  /** Runs of one app waiting beyond those running. Default: 4 × the pool size. */
  maxQueuedPerApp?: number
}

function decrement(counts: Map<string, number>, app: string): void {
  const n = (counts.get(app) ?? 1) - 1
  if (n > 0) {
    counts.set(app, n)
  } else {
    counts.delete(app)
  }
}

/**
 * Counts of running and accepted runs per app.
 *
 * @example
 * const shares = new AppShares(poolSize, options)
 * const refusal = shares.admit(appId)          // a PoolResult to answer at once, or undefined
 * if (shares.canStart(appId)) { shares.start(appId); ...; shares.finish(appId) }
 */
export class AppShares {
  readonly maxRunning: number
  readonly maxAccepted: number
  readonly #running = new Map<string, number>()
  readonly #accepted = new Map<string, number>()

  constructor(poolSize: number, options: AppShareOptions = {}) {
    this.maxRunning = options.maxRunningPerApp ?? Math.max(1, poolSize - 1)
    this.maxAccepted = this.maxRunning + (options.maxQueuedPerApp ?? 4 * poolSize)
    if (
      !Number.isInteger(this.maxRunning) ||
      this.maxRunning < 1 ||
      !Number.isInteger(this.maxAccepted)
    ) {
      throw new TypeError('per-app run caps must be positive integers')
    }
  }

  /** Accept one run of `app`, or return the `limit_exceeded` result to answer at once. */
  admit(app: string): PoolResult | undefined {
    const accepted = this.#accepted.get(app) ?? 0
    if (accepted >= this.maxAccepted) {
      return {
        ok: false,
        error: {
          code: 'limit_exceeded',
          message: `too many concurrent runs of this app (at most ${this.maxRunning} running and ${this.maxAccepted - this.maxRunning} waiting)`,
        },
        metering: null,
        wallMs: 0,
      }
    }
    this.#accepted.set(app, accepted + 1)
    return undefined
  }

  /** Whether a run of `app` may start now. */
  canStart(app: string): boolean {
    return (this.#running.get(app) ?? 0) < this.maxRunning
  }

  /** A run of `app` started. */
  start(app: string): void {
    this.#running.set(app, (this.#running.get(app) ?? 0) + 1)
  }

  /** A run of `app` that had started ended. */
  finish(app: string): void {
    decrement(this.#running, app)
  }

  /** A run of `app` that was admitted ended (started or not). */
  release(app: string): void {
    decrement(this.#accepted, app)
  }

  /** `resolve`, releasing the admitted run of `app` first: what a pool queues for it. */
  releasing(app: string, resolve: (result: PoolResult) => void): (result: PoolResult) => void {
    return (result) => {
      this.release(app)
      resolve(result)
    }
  }
}
