/**
 * The sandbox pool: a fixed number of `worker_threads`, one run at a time each.
 *
 * - Compiled core modules reach workers by `postMessage` (V8 shares the compiled code).
 * - Host calls arrive over each worker's shared channel; the pool hands them to `onHostCall`
 *   and writes the answer back while the guest waits in `Atomics.wait`.
 * - Every run ends at its deadline with `timeout`. The guest ends it itself, at its first fuel
 *   check past the deadline (`../limits/refuel.ts`), and its worker takes the next run. A
 *   watchdog answers `timeout` at the deadline in any case; a worker that has not come back
 *   {@link DEADLINE_GRACE_MS} later (stuck in a host call, in the host's own work) is
 *   terminated and a fresh one started in the background. `cancel` ends chosen runs (an app's,
 *   when it is disabled) by terminating their workers at once, and drops them from the queue.
 * - A worker that dies mid-run ends that run with `internal`; the pool heals itself.
 * - Nothing a worker sends is trusted: a malformed or forged message (unknown tag, wrong
 *   length, deep nesting, wrong shape) retires that worker and ends its run with `internal`.
 */
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism, getPriority, setPriority } from 'node:os'
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads'
import type { MessagePort, ResourceLimits, Worker } from 'node:worker_threads'
import { tellDecision } from '../../host-capabilities/types.js'
import type { RunContext } from '../../host-capabilities/types.js'
import { toWardenError, WardenError } from '../errors.js'
import { startWorker } from '../internal/worker.js'
import type { SerializedError } from '../errors.js'
import type { ResolvedLimits } from '../limits/limits.js'
import { Channel, ON_PORT, SPIN, Spinner, stateSet } from './channel.js'
import { decode } from './codec.js'
import { CHANNEL, DEFAULT_CHANNEL_BYTES, liveDecisionCap } from './protocol.js'
import type {
  HostCallRequest,
  HostCallResponse,
  InvokeJob,
  LoadedComponentMessage,
  ToWorkerControl,
  WorkerGrant,
  WorkerMetering,
} from './protocol.js'
import { AppShares } from './fairness.js'
import type { AppShareOptions } from './fairness.js'
import { ended, enqueue, takeMatching } from './sandbox.js'
import type { CancelScope, RunMatch, Sandbox } from './sandbox.js'
import { checkFromWorker, checkHostCallRequest, checkLiveDecision } from './validate.js'
import type { SandboxWorkerData } from './worker.js'

/** STATE values the main thread acts on. */
const WORKER_SPOKE = stateSet(CHANNEL.REQUEST, CHANNEL.RESULT)

/**
 * How many vCPUs other processes keep busy at normal priority, sampled at most every 250 ms
 * from /proc/stat (niced work does not count: we take the CPU from it at once). 0 where
 * /proc/stat cannot be read.
 */
class OtherLoad {
  #at = 0
  #busy = 0
  #total = 0
  #ownUs = 0
  #vcpus = 0

  get vcpus(): number {
    const now = performance.now()
    if (now - this.#at < 250) {
      return this.#vcpus
    }
    this.#at = now
    let fields: number[]
    try {
      const line = readFileSync('/proc/stat', 'latin1').slice(0, 256).split('\n', 1)[0]!
      fields = line.trim().split(/\s+/).slice(1).map(Number)
    } catch {
      return 0
    }
    // user nice system idle iowait irq softirq steal: busy is all but nice, idle and iowait.
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
      fields
    const busy = user + system + irq + softirq + steal
    const total = busy + nice + idle + iowait
    const own = process.cpuUsage()
    const ownUs = own.user + own.system
    if (this.#total > 0 && total > this.#total) {
      // Ticks are 10 ms (USER_HZ 100); this process's own share is not "other".
      const others = busy - this.#busy - (ownUs - this.#ownUs) / 10_000
      this.#vcpus = Math.max(0, (others / (total - this.#total)) * availableParallelism())
    }
    this.#busy = busy
    this.#total = total
    this.#ownUs = ownUs
    return this.#vcpus
  }
}

/**
 * @internal `tid` if it is a thread of this process other than the main one, else undefined:
 * a worker's word is taken only for a thread it could be.
 */
export function ownThread(tid: number | undefined): number | undefined {
  if (tid === undefined || tid === process.pid || !existsSync(`/proc/self/task/${tid}`)) {
    return undefined
  }
  return tid
}

/**
 * Set the nice value of thread `tid` (Linux: setpriority on a thread id). Answers the value it
 * had, or undefined when it could not be read or set.
 */
function renice(tid: number | undefined, nice: number): number | undefined {
  if (tid === undefined) {
    return undefined
  }
  try {
    const was = getPriority(tid)
    setPriority(tid, nice)
    return was
  } catch {
    return undefined
  }
}

/** Options of {@link SandboxPool}. */
export interface SandboxPoolOptions extends AppShareOptions {
  /** Number of workers. Default: `os.availableParallelism()`. */
  size?: number
  /** Bytes of each worker's shared channel; larger host-call payloads go by message. Default 1 MiB. */
  channelBytes?: number
  /** V8 heap limits of each worker. Default: 256 MiB old generation. */
  resourceLimits?: ResourceLimits
  /** Interface → functions answered by the broker (on the main thread). */
  brokerInterfaces: Record<string, readonly string[]>
  /** Answers one broker-side host call of the run `ctx` (synchronously when it can). */
  onHostCall: (
    ctx: RunContext,
    request: HostCallRequest,
  ) => HostCallResponse | Promise<HostCallResponse>
  /** Components kept loaded per worker before the least recently used is dropped. Default 32. */
  componentsPerWorker?: number
  /** Resolution of guests' monotonic clocks, in nanoseconds. Default 100 µs. */
  clockResolutionNs?: number
  /**
   * The nice value (1–19) a worker thread runs at while it runs an app that keeps running into
   * its limits (`AppShares.isHog`), so that its loops take the CPU only when no one else wants
   * it; restored after the run, or the worker is replaced when it cannot be. Linux only
   * (elsewhere nothing changes); 0 turns it off. Default {@link HOG_NICE}.
   */
  hogNice?: number
  /**
   * Prepare the next run's fresh instance of a slow-to-instantiate component after a run
   * answers (`worker.ts`, `prepareNext`). Default true; false measures the baseline.
   */
  prepareInstances?: boolean
  /**
   * @internal How long a worker waits after a result before it prepares, in ms. Default
   * {@link PREPARE_DELAY_MS}; bench/ compares settings.
   */
  prepareDelayMs?: number
  /**
   * @internal Tests only: prepare components whose fresh instantiation took at most this, in
   * ms (`worker.ts`, `PREPARE_BELOW_MS`, default 50): a test of a preparation's giving way to a
   * job lifts it.
   */
  prepareBelowMs?: number
  /** @internal Tests only: start this module instead of `./worker` (a forged worker). */
  workerModule?: { from: string; name: string }
  /** How long past its deadline a run's worker has to come back. Default {@link DEADLINE_GRACE_MS}. */
  deadlineGraceMs?: number
  /** @internal Fuel per slice of a run's budget (`../limits/refuel.ts`); tests use small ones. */
  fuelSlice?: number
}

/** The default {@link SandboxPoolOptions.hogNice}: the lowest priority there is. */
export const HOG_NICE = 19

/**
 * How long past a run's deadline its worker has to come back before it is terminated, in ms
 * (the run has answered `timeout` already). A guest notices the deadline within one fuel
 * slice of work (~2 ms of CPU, `../limits/refuel.ts`); a hog's worker runs at nice 19 and, on
 * a busy machine, gets a small share of a vCPU, so it may need many times that in wall time.
 * Until then its worker takes no other run.
 */
export const DEADLINE_GRACE_MS = 500

/**
 * How long a worker waits after posting a result before it prepares the next instance
 * (`worker.ts`, `prepareNext`), in ms, unless a job comes first (which then runs on a fresh
 * instance). The main thread still has the answer to finish (through the API: the audit
 * record, the HTTP response), and it shares two vCPUs with the worker and V8's helper
 * threads: a preparation started at once (its instance, page faults and the GC it sets off)
 * slowed `POST /v1/runs` by a third (bench/README.md, issue 10).
 */
export const PREPARE_DELAY_MS = 10

/** One run for the pool. */
export interface PoolJob {
  component: LoadedComponentMessage
  /** Export to call: `run`, or `handler.handle` for an interface export. */
  exportName: string
  args: unknown[]
  limits: ResolvedLimits
  grant: WorkerGrant
  context: RunContext
  /**
   * Whose share of the pool this run counts against (`fairness.ts`): the app id by default. The
   * built-in JS sandbox is one app for every tenant, so its runs are shared per token family.
   */
  shareKey?: string
  /**
   * Called once, before `run` returns, when the job could not start at once and waits in the
   * queue for a sandbox (or the pool's fair share): the caller watches for a hang-up only then.
   */
  onQueued?: () => void
}

/** The key a job's share of the pool is counted under (both sandboxes: threads and process). */
export function shareOf(job: PoolJob): string {
  return job.shareKey ?? job.context.appId
}

/** What a run produced. `metering` is null when the worker was killed before it could report. */
export type PoolResult =
  | { ok: true; outcome: 'ok' | 'err'; value: unknown; metering: WorkerMetering; wallMs: number }
  | {
      ok: false
      error: SerializedError
      metering: WorkerMetering | null
      wallMs: number
      /**
       * A run ended before its worker reported (deadline, cancel): the host calls the worker had
       * counted by then, from the shared channel. The calls' own decisions are lost with it.
       */
      hostCalls?: number
    }

interface ActiveRun {
  id: number
  job: PoolJob
  startedAt: number
  timer: NodeJS.Timeout
  /** Answers the caller. */
  resolve: (result: PoolResult) => void
  /**
   * Gives the run's place in its app's share back: when its worker is free again (or killed),
   * which for a run answered at its deadline is later than its answer (see {@link overdue}).
   */
  freed: (result: PoolResult) => void
  /** How the main thread watches for the worker's next move after answering a host call. */
  calls?: Spinner
  /** The run has a listener: how many more decisions its worker may post live. */
  live?: { left: number }
  /**
   * The run answered before its worker came back (`timeout` at its deadline, or a cancel's
   * error): the slot takes no other run, host calls are refused, and the worker is terminated if
   * it has not come back within the grace (`#answerEarly`). The app's share stays taken
   * meanwhile, so an app cannot hold more workers than its share by running into its deadline
   * (seventh outside attack).
   */
  overdue?: PoolResult
}

/**
 * A run's end: its share back (with the `timeout` it answered, if it answered at its deadline:
 * that is what counts against its app) and its answer, unless it answered already.
 */
function settle(run: ActiveRun, result: PoolResult): void {
  run.freed(run.overdue ?? result)
  run.resolve(result)
}

interface Slot {
  worker: Worker
  channel: Channel
  responsePort: MessagePort
  controlPort: MessagePort
  /** The worker's decisions during a live run ({@link LiveDecision}). */
  livePort: MessagePort
  ready: boolean
  dead: boolean
  /**
   * Keys loaded in the worker, least recently used first, each with how the main thread
   * watches for the result of its runs.
   */
  loaded: Map<string, Spinner>
  current?: ActiveRun
  /** When its last run ended (`performance.now()`); 0 before any. */
  freedAt?: number
  /** Its last result said it prepares an instance before it takes the next run (a hint). */
  preparing?: boolean
  /** A `waitAsync` on STATE is pending. */
  waiting: boolean
  /** `#arm` is on the stack: a nested call leaves the work to it. */
  arming: boolean
  largeRequests: ((request: HostCallRequest) => void)[]
  pendingLarge: HostCallRequest[]
  /** The worker's thread id, as its first `ready` said (checked to be a thread of ours). */
  tid?: number
  /** The nice value to restore after a hog's run lowered it; undefined when not lowered. */
  niced?: number
}

/**
 * A pool of sandbox workers.
 *
 * @example
 * const pool = new SandboxPool({ size: 2, brokerInterfaces: {}, onHostCall: broker.call })
 * const result = await pool.run(job)
 * await pool.close()
 */
export class SandboxPool implements Sandbox {
  readonly size: number
  readonly #options: SandboxPoolOptions
  readonly #slots = new Set<Slot>()
  readonly #queue: { job: PoolJob; resolve: (r: PoolResult) => void }[] = []
  #nextId = 1
  #closed = false
  #replacements = 0
  #liveDecisions = 0
  /** Per-app caps (`context.appId`): running, and waiting; see `fairness.ts`. */
  readonly #shares: AppShares
  /** Spin bounds, read once: see `channel.ts`. */
  readonly #spin = { ...SPIN }
  readonly #cpus = availableParallelism()
  readonly #otherLoad = new OtherLoad()

  constructor(options: SandboxPoolOptions) {
    this.#options = options
    this.size = options.size ?? availableParallelism()
    if (!Number.isInteger(this.size) || this.size < 1) {
      throw new TypeError('pool size must be a positive integer')
    }
    this.#shares = new AppShares(this.size, options)
    const nice = options.hogNice
    if (nice !== undefined && (!Number.isInteger(nice) || nice < 0 || nice > 19)) {
      throw new TypeError('hogNice must be an integer from 0 to 19')
    }
    for (let i = 0; i < this.size; i++) {
      this.#spawn()
    }
  }

  /** Workers started to replace killed or crashed ones, since the pool began. */
  get replacements(): number {
    return this.#replacements
  }

  /**
   * @internal Messages workers have posted on their live ports since the pool began, forged
   * ones included: tests check that a run without a listener makes none.
   */
  get liveDecisions(): number {
    return this.#liveDecisions
  }

  /** Resolves once every worker is ready: useful before measuring. */
  async warm(): Promise<void> {
    while ([...this.#slots].some((s) => !s.ready)) {
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  /** Run one job. Never rejects: every failure is a `PoolResult` with a stable code. */
  run(job: PoolJob): Promise<PoolResult> {
    if (this.#closed) {
      return Promise.resolve({
        ok: false,
        error: { code: 'internal', message: 'the sandbox pool is closed' },
        metering: null,
        wallMs: 0,
      })
    }
    const app = shareOf(job)
    const refusal = this.#shares.admit(app)
    if (refusal) {
      return Promise.resolve(refusal)
    }
    return enqueue(
      this.#queue,
      job,
      (resolve) => this.#shares.releasing(app, resolve),
      () => this.#pump(),
    )
  }

  /**
   * End every queued or running job whose context `match`es with `error`: queued ones never
   * start; running ones answer `error` now and end as at their deadline: the guest at its next
   * refuel (`CHANNEL.STOP`), after which its worker takes the next run, or, if the worker is
   * not back within the grace (a host call in flight, work the fuel does not pace), by
   * terminating it. Returns how many jobs were ended.
   */
  cancel(match: RunMatch, error: SerializedError, scope: CancelScope = 'all'): number {
    const running: [Slot, ActiveRun][] = []
    for (const slot of scope === 'all' ? this.#slots : []) {
      // An overdue run has answered already; its worker goes at the end of its grace.
      if (slot.current && !slot.current.overdue && match(slot.current.job.context)) {
        running.push([slot, slot.current])
      }
    }
    const queued = takeMatching(this.#queue, match)
    for (const { resolve } of queued) {
      resolve(ended(error))
    }
    for (const [slot, run] of running) {
      clearTimeout(run.timer)
      Atomics.store(slot.channel.header, CHANNEL.STOP, 1)
      this.#answerEarly(slot, run, this.#endedNow(slot, run, error))
    }
    return queued.length + running.length
  }

  /** Stop every worker. Queued runs end with `internal`. */
  async close(): Promise<void> {
    this.#closed = true
    for (const { resolve } of this.#queue.splice(0)) {
      resolve({
        ok: false,
        error: { code: 'internal', message: 'pool closed' },
        metering: null,
        wallMs: 0,
      })
    }
    const slots = [...this.#slots]
    this.#slots.clear()
    for (const slot of slots) {
      this.#endRun(slot, {
        ok: false,
        error: { code: 'internal', message: 'pool closed' },
        metering: null,
        wallMs: 0,
      })
      slot.dead = true
      slot.responsePort.close()
      slot.controlPort.close()
      slot.livePort.close()
    }
    await Promise.all(slots.map((s) => s.worker.terminate()))
  }

  #spawn(): void {
    const channel = Channel.allocate(this.#options.channelBytes ?? DEFAULT_CHANNEL_BYTES)
    const response = new MessageChannel()
    const control = new MessageChannel()
    const live = new MessageChannel()
    const workerData: SandboxWorkerData = {
      channel,
      responsePort: response.port2,
      controlPort: control.port2,
      livePort: live.port2,
      brokerInterfaces: this.#options.brokerInterfaces,
      ...(this.#options.clockResolutionNs
        ? { clockResolutionNs: this.#options.clockResolutionNs }
        : {}),
      spin: { response: this.#spin.response, job: this.#spin.job },
      ...(this.#options.prepareInstances === false ? { prepareInstances: false } : {}),
      prepareDelayMs: this.#options.prepareDelayMs ?? PREPARE_DELAY_MS,
      ...(this.#options.prepareBelowMs !== undefined
        ? { prepareBelowMs: this.#options.prepareBelowMs }
        : {}),
      ...(this.#options.fuelSlice ? { fuelSlice: this.#options.fuelSlice } : {}),
    }
    const entry = this.#options.workerModule ?? { from: import.meta.url, name: './worker' }
    const worker = startWorker(entry.from, entry.name, {
      workerData,
      transferList: [response.port2, control.port2, live.port2],
      env: {},
      resourceLimits: this.#options.resourceLimits ?? { maxOldGenerationSizeMb: 256 },
    })
    const slot: Slot = {
      worker,
      channel: new Channel(channel),
      responsePort: response.port1,
      controlPort: control.port1,
      livePort: live.port1,
      ready: false,
      dead: false,
      loaded: new Map(),
      waiting: false,
      arming: false,
      largeRequests: [],
      pendingLarge: [],
    }
    this.#slots.add(slot)
    worker.unref()
    worker.on('message', (msg: unknown) => this.#guard(slot, () => this.#onMessage(slot, msg)))
    // While the worker runs on (or waits in a broker call), its decisions arrive here; at each
    // broker call and at the result, `#drainLive` takes those still queued first, in order.
    live.port1.on('message', (msg: unknown) => this.#guard(slot, () => this.#onLive(slot, msg)))
    live.port1.unref()
    worker.on('error', () => this.#onCrash(slot))
    worker.on('exit', () => this.#onCrash(slot))
    this.#guard(slot, () => this.#arm(slot))
  }

  /**
   * Run `fn`, which reads what the worker sent; if that throws, the worker is not to be
   * trusted any more: retire it and end its run with `internal`. Never lets an error escape
   * (an unhandled rejection would end the host).
   */
  #guard(slot: Slot, fn: () => void): void {
    try {
      fn()
    } catch {
      this.#onCrash(slot, 'the sandbox worker sent a malformed message')
    }
  }

  #onMessage(slot: Slot, received: unknown): void {
    const msg = checkFromWorker(received)
    if (!msg) {
      throw new TypeError('malformed message from a worker')
    }
    switch (msg.type) {
      case 'ready':
        if (!slot.ready) {
          slot.ready = true
          slot.tid = ownThread(msg.tid)
        }
        this.#pump()
        return
      case 'host-call-large': {
        const request = checkHostCallRequest(decode(msg.bytes))
        if (!request) {
          throw new TypeError('malformed host call from a worker')
        }
        const waiter = slot.largeRequests.shift()
        if (waiter) {
          waiter(request)
        } else {
          slot.pendingLarge.push(request)
        }
        return
      }
      case 'result': {
        const run = slot.current
        if (!run || run.id !== msg.id) {
          return
        }
        // Every decision the run posted is queued by now: told before the run answers, so a
        // listener never hears of a call after the run's result.
        this.#drainLive(slot, run)
        const wallMs = performance.now() - run.startedAt
        slot.preparing = msg.preparing === true
        this.#endRun(
          slot,
          msg.ok
            ? { ok: true, outcome: msg.outcome, value: msg.value, metering: msg.metering, wallMs }
            : msg.error.code === 'timeout'
              ? // Ended in the guest at its deadline: answered as the watchdog answers.
                this.#timedOut(run, msg.metering.hostCalls)
              : { ok: false, error: msg.error, metering: msg.metering, wallMs },
        )
        if (slot.niced !== undefined && renice(slot.tid, slot.niced) === undefined) {
          // Left at a low priority, it would slow every app's runs: replace it.
          this.#retire(slot, { deferred: true })
        }
        slot.niced = undefined
        this.#pump()
        return
      }
    }
  }

  #endRun(slot: Slot, result: PoolResult): void {
    const run = slot.current
    if (!run) {
      return
    }
    clearTimeout(run.timer)
    slot.current = undefined
    slot.freedAt = performance.now()
    settle(run, result)
  }

  #onCrash(slot: Slot, message = 'the sandbox worker stopped unexpectedly'): void {
    if (slot.dead) {
      return
    }
    const run = slot.current
    this.#retire(slot)
    if (run) {
      settle(run, {
        ok: false,
        error: { code: 'internal', message },
        metering: null,
        wallMs: performance.now() - run.startedAt,
      })
    }
  }

  /**
   * The deadline passed and the worker has not answered: the run answers `timeout` now, and
   * the worker, which ends the run at its next fuel check, has the grace to come back before
   * it is terminated.
   */
  #onDeadline(slot: Slot, run: ActiveRun): void {
    if (slot.current !== run || run.overdue) {
      return
    }
    this.#answerEarly(
      slot,
      run,
      this.#timedOut(run, Atomics.load(slot.channel.header, CHANNEL.CALLS)),
    )
  }

  /**
   * `run` answers `result` now, before its worker is back (a deadline, a cancel): the worker
   * ends the run in the guest at its next refuel and takes the next one, or is terminated if it
   * is not back within the grace. Until then the slot takes no other run and the app's share
   * stays taken (`ActiveRun.overdue`).
   */
  #answerEarly(slot: Slot, run: ActiveRun, result: Extract<PoolResult, { ok: false }>): void {
    run.overdue = result
    // A hog's worker at nice 19 would wait long for the vCPU it needs to reach its next fuel
    // check on a busy machine: give it back its priority (if that fails, the result retries
    // and replaces the worker, as after any run).
    if (slot.niced !== undefined && renice(slot.tid, slot.niced) !== undefined) {
      slot.niced = undefined
    }
    // Answered now; its share is given back when the worker is (`settle`).
    const answer = run.resolve
    run.resolve = () => {}
    answer(result)
    run.timer = setTimeout(
      () => this.#abandon(slot, run, result.error),
      this.#options.deadlineGraceMs ?? DEADLINE_GRACE_MS,
    )
  }

  /**
   * The answer of a run ended at its deadline, by the guest or the watchdog alike: `timeout`,
   * no metering (the worker's records of the run are dropped, as when it is killed) and the
   * host calls it counted, clamped, since a worker's word is not proof.
   */
  #timedOut(run: ActiveRun, counted: number): Extract<PoolResult, { ok: false }> {
    const error: SerializedError = {
      code: 'timeout',
      message: `the run passed its ${run.job.limits.timeoutMs} ms deadline`,
    }
    const hostCalls = Math.min(Math.max(counted, 0), run.job.limits.hostCalls + 1)
    return { ...ended(error, performance.now() - run.startedAt), hostCalls }
  }

  /** End `run` with `error` now, whatever its worker is doing: the worker is killed. */
  #abandon(slot: Slot, run: ActiveRun, error: SerializedError): void {
    if (slot.current !== run) {
      return
    }
    clearTimeout(run.timer)
    // Read before the worker is killed.
    const result = this.#endedNow(slot, run, error)
    slot.current = undefined
    // Answer first; killing and replacing the worker happens off this run's critical path.
    this.#retire(slot, { deferred: true })
    settle(run, result)
  }

  /** `run` ended with `error` now: no metering, the host calls its worker counted, clamped. */
  #endedNow(
    slot: Slot,
    run: ActiveRun,
    error: SerializedError,
  ): Extract<PoolResult, { ok: false }> {
    // A worker's word is not proof: clamped to what the run may make.
    const counted = Atomics.load(slot.channel.header, CHANNEL.CALLS)
    const hostCalls = Math.min(Math.max(counted, 0), run.job.limits.hostCalls + 1)
    return { ...ended(error, performance.now() - run.startedAt), hostCalls }
  }

  /** Kill a worker and start its replacement, now or right after the current task. */
  #retire(slot: Slot, options: { deferred?: boolean } = {}): void {
    slot.dead = true
    this.#slots.delete(slot)
    clearTimeout(slot.current?.timer)
    slot.current = undefined
    const replace = () => {
      // Wake the waitAsync loop so it sees `dead` and stops.
      Atomics.notify(slot.channel.header, CHANNEL.STATE)
      slot.responsePort.close()
      slot.controlPort.close()
      slot.livePort.close()
      void slot.worker.terminate()
      if (!this.#closed) {
        this.#spawn()
      }
    }
    if (!this.#closed) {
      this.#replacements++
    }
    if (options.deferred) {
      setImmediate(replace)
    } else {
      replace()
    }
  }

  /** Start queued runs while workers are free, fairest first (see `AppShares.pickNext`). */
  #pump(): void {
    while (this.#queue.length > 0) {
      const i = this.#shares.pickNext(this.#queue.map((q) => shareOf(q.job)))
      if (i < 0) {
        return
      }
      const { job, resolve } = this.#queue[i]!
      const app = shareOf(job)
      const slot = this.#pickSlot(job.component.key)
      if (!slot) {
        return
      }
      this.#queue.splice(i, 1)
      this.#shares.start(app)
      this.#start(slot, job, resolve, (result) => {
        this.#shares.finish(app, result)
        // A worker may be free while runs of this app wait behind its cap.
        if (this.#queue.length > 0) {
          queueMicrotask(() => this.#pump())
        }
      })
    }
  }

  #pickSlot(key: string): Slot | undefined {
    let fallback: Slot | undefined
    let loaded: Slot | undefined
    for (const slot of this.#slots) {
      if (slot.ready && !slot.dead && !slot.current) {
        // Of the free workers holding the component, the first not preparing an instance
        // (`worker.ts`, `prepareNext`); of those preparing, the one free longest, likeliest done.
        if (slot.loaded.has(key)) {
          if (
            !loaded ||
            (loaded.preparing && !slot.preparing) ||
            (loaded.preparing && (slot.freedAt ?? 0) < (loaded.freedAt ?? 0))
          ) {
            loaded = slot
          }
        } else if (!fallback || (fallback.preparing && !slot.preparing)) {
          // Another component's run: a worker that is not preparing takes it at once (one that
          // is gives way at its next refuel, `worker.ts`).
          fallback = slot
        }
      }
    }
    return loaded ?? fallback
  }

  #start(
    slot: Slot,
    job: PoolJob,
    resolve: (r: PoolResult) => void,
    freed: (r: PoolResult) => void,
  ): void {
    const key = job.component.key
    let spinner = slot.loaded.get(key)
    if (spinner) {
      slot.loaded.delete(key)
    } else {
      spinner = new Spinner(this.#spin.run)
      this.#control(slot, { type: 'load', component: job.component })
      const max = this.#options.componentsPerWorker ?? 32
      if (slot.loaded.size >= max) {
        const oldest = slot.loaded.keys().next().value!
        slot.loaded.delete(oldest)
        this.#control(slot, { type: 'unload', key: oldest })
      }
    }
    slot.loaded.set(key, spinner)
    const id = this.#nextId++
    const startedAt = performance.now()
    const run: ActiveRun = {
      id,
      job,
      resolve,
      freed,
      startedAt,
      timer: setTimeout(() => this.#onDeadline(slot, run), job.limits.timeoutMs),
      ...(this.#spin.call > 0 ? { calls: new Spinner(this.#spin.call) } : {}),
      ...(job.context.onDecision ? { live: { left: liveDecisionCap(job.limits) } } : {}),
    }
    slot.current = run
    const nice = this.#options.hogNice ?? HOG_NICE
    if (nice > 0 && this.#shares.isHog(shareOf(job))) {
      // A hog's loop takes a vCPU only when no one else wants it (CFS weight 15 against 1024).
      const was = renice(slot.tid, nice)
      if (was !== undefined) {
        slot.niced = was
      }
    }
    // Spinning pays only on a spare vCPU: with as many busy threads as vCPUs (ours and other
    // processes'), a spinner takes the CPU from the thread it waits for.
    let busy = 1
    for (const other of this.#slots) {
      busy += other.current ? 1 : 0
    }
    const roomy = busy + Math.round(this.#otherLoad.vcpus) <= this.#cpus
    Atomics.store(slot.channel.header, CHANNEL.ROOMY, roomy ? 1 : 0)
    const invoke: InvokeJob = {
      type: 'invoke',
      id,
      key,
      exportName: job.exportName,
      args: job.args,
      limits: job.limits,
      grant: job.grant,
      deadline: performance.timeOrigin + startedAt + job.limits.timeoutMs,
      ...(run.live ? { live: true } : {}),
    }
    // A job too large for the area follows its loads on the control port.
    Atomics.store(slot.channel.header, CHANNEL.CALLS, 0)
    Atomics.store(slot.channel.header, CHANNEL.STOP, 0)
    slot.channel.send(CHANNEL.JOB, invoke, () => slot.controlPort.postMessage(invoke))
    if (roomy && spinner.us > 0) {
      // Watch for the result on this thread rather than park (a parked vCPU wakes slowly),
      // once the event loop has caught up; `spinner` backs off when this component's runs are
      // not tiny.
      setImmediate(() => {
        if (slot.current === run) {
          this.#guard(slot, () => this.#arm(slot, spinner))
        }
      })
    } else {
      this.#guard(slot, () => this.#arm(slot))
    }
  }

  #control(slot: Slot, msg: ToWorkerControl): void {
    slot.controlPort.postMessage(msg)
  }

  /**
   * Follow the worker of `slot` while a run is on it: serve its host calls and take its result;
   * when it has nothing to say yet, wait without blocking the event loop. With `watch`, first
   * watch the channel for a while (see `channel.ts`): the worker is expected to speak soon.
   */
  #arm(slot: Slot, watch?: Spinner): void {
    if (slot.arming) {
      return
    }
    slot.arming = true
    try {
      this.#follow(slot, watch)
    } finally {
      slot.arming = false
    }
  }

  #follow(slot: Slot, watch: Spinner | undefined): void {
    for (;;) {
      if (slot.dead) {
        return
      }
      const state = slot.channel.state
      if (state === CHANNEL.REQUEST) {
        const answered = this.#serve(slot)
        if (!answered) {
          return
        }
        watch = this.#watchCalls(slot)
        continue
      }
      if (state === CHANNEL.RESULT) {
        const message = slot.channel.read()
        if (message === ON_PORT) {
          // A result too large for the area comes as a message, and never announces itself.
          throw new RangeError('bad length on the channel')
        }
        slot.channel.settle(CHANNEL.IDLE)
        this.#onMessage(slot, message)
        watch = undefined
        continue
      }
      const run = slot.current
      if (!run) {
        return
      }
      if (watch) {
        const spoke = slot.channel.watch(WORKER_SPOKE, watch)
        watch = undefined
        if (spoke) {
          continue
        }
      }
      if (slot.waiting) {
        return
      }
      const wait = Atomics.waitAsync(slot.channel.header, CHANNEL.STATE, state)
      if (wait.async) {
        slot.waiting = true
        void wait.value.then(() => {
          slot.waiting = false
          this.#guard(slot, () => this.#arm(slot))
        })
        return
      }
    }
  }

  /** How to watch for the worker's next move after answering a host call, if at all. */
  #watchCalls(slot: Slot): Spinner | undefined {
    const roomy = Atomics.load(slot.channel.header, CHANNEL.ROOMY) === 1
    return roomy ? slot.current?.calls : undefined
  }

  /** Answer the host call in the area. True when the answer went at once, false if later. */
  #serve(slot: Slot): boolean {
    const run = slot.current
    const payload = slot.channel.read()
    if (payload === ON_PORT) {
      void this.#nextLargeRequest(slot).then((request) =>
        this.#guard(slot, () => {
          if (this.#answer(slot, run, request)) {
            this.#arm(slot, this.#watchCalls(slot))
          }
        }),
      )
      return false
    }
    const request = checkHostCallRequest(payload)
    if (!request) {
      throw new TypeError('malformed host call from a worker')
    }
    return this.#answer(slot, run, request)
  }

  /** True when the answer went at once; otherwise it goes later and follows the worker again. */
  #answer(slot: Slot, run: ActiveRun | undefined, request: HostCallRequest): boolean {
    let response: HostCallResponse | Promise<HostCallResponse>
    // The worker's decisions made before this call are told before it: in call order.
    this.#drainLive(slot, run)
    try {
      if (!run) {
        throw new WardenError('internal', 'host call outside of a run')
      }
      if (run.overdue && !run.overdue.ok) {
        // The run has answered (a deadline, a cancel): nothing more happens on its behalf.
        throw WardenError.fromJSON(run.overdue.error)
      }
      response = this.#options.onHostCall(run.job.context, request)
    } catch (error) {
      response = { ok: false, fatal: toWardenError(error).toJSON() }
    }
    if (response instanceof Promise) {
      const later = (answer: HostCallResponse) => {
        if (this.#reply(slot, run, answer)) {
          this.#arm(slot, this.#watchCalls(slot))
        }
      }
      void response.then(
        (answer) => this.#guard(slot, () => later(answer)),
        (error: unknown) =>
          this.#guard(slot, () => later({ ok: false, fatal: toWardenError(error).toJSON() })),
      )
      return false
    }
    return this.#reply(slot, run, response)
  }

  /** Send the answer, unless its run is over. */
  #reply(slot: Slot, run: ActiveRun | undefined, response: HostCallResponse): boolean {
    if (slot.dead || slot.current !== run) {
      return false
    }
    const overflow = () => slot.responsePort.postMessage(response)
    try {
      slot.channel.send(CHANNEL.RESPONSE, response, overflow)
    } catch (error) {
      // The broker's answer cannot cross (a host bug, not the guest's): end the run.
      response = { ok: false, fatal: toWardenError(error).toJSON() }
      slot.channel.send(CHANNEL.RESPONSE, response, overflow)
    }
    return true
  }

  /**
   * One decision a worker posted live: told to its run's listener. A message for no live run,
   * for another run, or past the run's cap is forged: it throws, and `#guard` retires the worker.
   */
  #onLive(slot: Slot, received: unknown): void {
    this.#liveDecisions++
    if (slot.dead) {
      // Its run has answered already (a deadline, a cancel): nobody is listening.
      return
    }
    const msg = checkLiveDecision(received)
    const run = slot.current
    if (run?.overdue && msg?.id === run.id) {
      // Its run has answered at its deadline: the listener hears of nothing after the result.
      return
    }
    if (!msg || !run?.live || run.id !== msg.id || run.live.left-- <= 0) {
      throw new TypeError('a forged live decision from a worker')
    }
    tellDecision(run.job.context, msg.decision)
  }

  /** Tell the decisions `run`'s worker has posted and the event loop has not delivered yet. */
  #drainLive(slot: Slot, run: ActiveRun | undefined): void {
    if (!run?.live) {
      return
    }
    for (let m = receiveMessageOnPort(slot.livePort); m; m = receiveMessageOnPort(slot.livePort)) {
      this.#onLive(slot, m.message)
    }
  }

  #nextLargeRequest(slot: Slot): Promise<HostCallRequest> {
    const ready = slot.pendingLarge.shift()
    if (ready) {
      return Promise.resolve(ready)
    }
    return new Promise((resolve) => slot.largeRequests.push(resolve))
  }
}
