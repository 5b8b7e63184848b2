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

/** Outcomes that mean a run burnt the pool to its limits. */
const HOGS: ReadonlySet<string> = new Set(['timeout', 'memory_limit', 'fuel_exhausted'])

/** Most apps whose strikes are remembered. */
const MAX_TRACKED = 4096

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
  /**
   * How much of the pool each app has recently burnt to its limits: a decaying count of runs
   * that ended at their deadline, memory cap or fuel budget. Cleared by runs that end well.
   */
  readonly #strikes = new Map<string, number>()

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

  /**
   * Whether a run of `app` may start now: under its own cap and, for an app that keeps running
   * into its limits (a hog: strikes ≥ 1), while all hogs together hold fewer workers than one
   * app may. So however many apps turn hostile at once, a worker stays free for the others.
   */
  canStart(app: string): boolean {
    if ((this.#running.get(app) ?? 0) >= this.maxRunning) {
      return false
    }
    if (!this.isHog(app)) {
      return true
    }
    let hogsRunning = 0
    for (const [other, n] of this.#running) {
      if (this.isHog(other)) {
        hogsRunning += n
      }
    }
    return hogsRunning < this.maxRunning
  }

  /** Whether `app` keeps running into its limits (recent strikes ≥ 1). */
  isHog(app: string): boolean {
    return (this.#strikes.get(app) ?? 0) >= 1
  }

  /** A run of `app` started. */
  start(app: string): void {
    this.#running.set(app, (this.#running.get(app) ?? 0) + 1)
  }

  /** A run of `app` that had started ended, with `result` when there is one. */
  finish(app: string, result?: PoolResult): void {
    decrement(this.#running, app)
    if (result) {
      const burnt = !result.ok && HOGS.has(result.error.code)
      const strikes = (this.#strikes.get(app) ?? 0) * 0.8 + (burnt ? 1 : 0)
      if (strikes < 0.05) {
        this.#strikes.delete(app)
      } else {
        if (this.#strikes.size >= MAX_TRACKED && !this.#strikes.has(app)) {
          this.#strikes.delete(this.#strikes.keys().next().value!)
        }
        this.#strikes.set(app, strikes)
      }
    }
  }

  /**
   * Which queued run starts next: among runs whose app is under its cap, the one whose app has
   * the fewest runs going plus recent strikes (runs that ended at their limits), the oldest
   * first among equals. So a free worker goes to an app that is not using the pool, and an app
   * that keeps running into its limits waits behind the others: another app's hostile burst
   * cannot take the worker a well-behaved app is waiting for. -1 when none may start.
   *
   * @example
   * const i = shares.pickNext(queue.map((q) => q.job.context.appId))
   */
  pickNext(apps: readonly string[]): number {
    let best = -1
    let bestKey = Number.POSITIVE_INFINITY
    for (let i = 0; i < apps.length; i++) {
      const app = apps[i]!
      if (!this.canStart(app)) {
        continue
      }
      const key = (this.#running.get(app) ?? 0) + (this.#strikes.get(app) ?? 0)
      if (key < bestKey) {
        best = i
        bestKey = key
      }
    }
    return best
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
