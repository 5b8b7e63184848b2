/**
 * Per-app shares of a sandbox pool: how many runs of one app may run at once, and how many
 * more may wait. One app's burst (hostile or not) is refused at once past its share instead of
 * making every other app's runs wait behind it. Both pools (threads, process) schedule with it.
 *
 * A lone busy app may borrow the workers no one else wants, past its share, while its recent
 * runs are short and end well: another app's run that comes meanwhile waits for at most one of
 * its runs, never behind its queue (docs/design-changes.md, "Borrowed workers").
 */
import type { PoolResult } from './pool.js'

/** Caps of {@link AppShares}. */
export interface AppShareOptions {
  /**
   * Runs of one app running at once: its share, which it always has. Default: every worker but
   * one (one on a pool of one), so one app's runaway runs always leave a worker for the others.
   * Past it an app only borrows workers no other app's run is waiting for (`borrowBelowMs`).
   */
  maxRunningPerApp?: number
  /** Runs of one app waiting beyond those running. Default: 4 × the pool size. */
  maxQueuedPerApp?: number
  /**
   * An app may run past `maxRunningPerApp` on workers no other app's run is waiting for, while
   * its recent runs held their worker at most this long (ms) and it is not a hog
   * ({@link AppShares.isHog}). 0: never. Default {@link BORROW_BELOW_MS}.
   */
  borrowBelowMs?: number
}

/**
 * The default {@link AppShareOptions.borrowBelowMs}: what another app's run may have to wait
 * for when it comes while a borrowing app holds every worker (one run of it, at most).
 */
export const BORROW_BELOW_MS = 50

/** Outcomes that mean a run burnt the pool to its limits. */
const HOGS: ReadonlySet<string> = new Set(['timeout', 'memory_limit', 'fuel_exhausted'])

/** Most apps whose strikes (and, apart, whose runs' durations) are remembered. */
const MAX_TRACKED = 4096

/** Remember `value` for `app` in `map`, forgetting the oldest app past {@link MAX_TRACKED}. */
function remember(map: Map<string, number>, app: string, value: number): void {
  if (map.size >= MAX_TRACKED && !map.has(app)) {
    map.delete(map.keys().next().value!)
  }
  map.set(app, value)
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
  readonly borrowBelowMs: number
  readonly #running = new Map<string, number>()
  readonly #accepted = new Map<string, number>()
  /**
   * How much of the pool each app has recently burnt to its limits: a decaying count of runs
   * that ended at their deadline, memory cap or fuel budget. Cleared by runs that end well.
   */
  readonly #strikes = new Map<string, number>()
  /**
   * How long each app's recent runs held their worker (ms): the last run's time, or more while
   * an earlier long one fades (×0.75 a run). An app with none on record never borrows.
   */
  readonly #recentMs = new Map<string, number>()

  constructor(poolSize: number, options: AppShareOptions = {}) {
    this.maxRunning = options.maxRunningPerApp ?? Math.max(1, poolSize - 1)
    this.maxAccepted = this.maxRunning + (options.maxQueuedPerApp ?? 4 * poolSize)
    this.borrowBelowMs = options.borrowBelowMs ?? BORROW_BELOW_MS
    if (
      !Number.isInteger(this.maxRunning) ||
      this.maxRunning < 1 ||
      !Number.isInteger(this.maxAccepted)
    ) {
      throw new TypeError('per-app run caps must be positive integers')
    }
    if (!Number.isFinite(this.borrowBelowMs) || this.borrowBelowMs < 0) {
      throw new TypeError('borrowBelowMs must be a finite number of ms, 0 or more')
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

  /**
   * Whether a run of `app` may start on a free worker past its share, when no other app's run
   * may start instead (see {@link pickNext}): it is not a hog, it has no strike at all, and its
   * recent runs held their worker under `borrowBelowMs`. An app never seen to end a run may not.
   */
  mayBorrow(app: string): boolean {
    const recent = this.#recentMs.get(app)
    return recent !== undefined && recent < this.borrowBelowMs && !this.#strikes.has(app)
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
        remember(this.#strikes, app, strikes)
      }
      const ms = Number.isFinite(result.wallMs) ? Math.max(0, result.wallMs) : Infinity
      const recent = this.#recentMs.get(app)
      remember(this.#recentMs, app, recent === undefined ? ms : Math.max(ms, recent * 0.75))
    }
  }

  /**
   * Which queued run starts next: among runs whose app is under its cap, the one whose app has
   * the fewest runs going plus recent strikes (runs that ended at their limits), the oldest
   * first among equals. So a free worker goes to an app that is not using the pool, and an app
   * that keeps running into its limits waits behind the others: another app's hostile burst
   * cannot take the worker a well-behaved app is waiting for. Only when no run may start
   * within its app's share does a worker go to an app that may borrow it ({@link mayBorrow}),
   * the one running the fewest first. -1 when none may start.
   *
   * @example
   * const i = shares.pickNext(queue.map((q) => q.job.context.appId))
   */
  pickNext(apps: readonly string[]): number {
    let best = -1
    let bestKey = Number.POSITIVE_INFINITY
    let borrower = -1
    let borrowerKey = Number.POSITIVE_INFINITY
    for (let i = 0; i < apps.length; i++) {
      const app = apps[i]!
      const running = this.#running.get(app) ?? 0
      if (!this.canStart(app)) {
        if (running < borrowerKey && this.mayBorrow(app)) {
          borrower = i
          borrowerKey = running
        }
        continue
      }
      const key = running + (this.#strikes.get(app) ?? 0)
      if (key < bestKey) {
        best = i
        bestKey = key
      }
    }
    return best >= 0 ? best : borrower
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
