/**
 * The sandbox pool: a fixed number of `worker_threads`, one run at a time each.
 *
 * - Compiled core modules reach workers by `postMessage` (V8 shares the compiled code).
 * - Host calls arrive over each worker's shared channel; the pool hands them to `onHostCall`
 *   and writes the answer back while the guest waits in `Atomics.wait`.
 * - A watchdog ends every run at its deadline: the worker is terminated, the run answers
 *   `timeout` at once, and a fresh worker is started in the background.
 * - A worker that dies mid-run ends that run with `internal`; the pool heals itself.
 * - Nothing a worker sends is trusted: a malformed or forged message (unknown tag, wrong
 *   length, deep nesting, wrong shape) retires that worker and ends its run with `internal`.
 */
import { availableParallelism } from 'node:os'
import { MessageChannel } from 'node:worker_threads'
import type { MessagePort, ResourceLimits, Worker } from 'node:worker_threads'
import type { RunContext } from '../../host-capabilities/types.js'
import { toWardenError, WardenError } from '../errors.js'
import { startWorker } from '../internal/worker.js'
import type { SerializedError } from '../errors.js'
import type { ResolvedLimits } from '../limits/limits.js'
import { decode, encode } from './codec.js'
import { CHANNEL, DEFAULT_CHANNEL_BYTES } from './protocol.js'
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
import { checkFromWorker, checkHostCallRequest } from './validate.js'
import type { SandboxWorkerData } from './worker.js'

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
  /** @internal Tests only: start this module instead of `./worker` (a forged worker). */
  workerModule?: { from: string; name: string }
}

/** One run for the pool. */
export interface PoolJob {
  component: LoadedComponentMessage
  /** Export to call: `run`, or `handler.handle` for an interface export. */
  exportName: string
  args: unknown[]
  limits: ResolvedLimits
  grant: WorkerGrant
  context: RunContext
}

/** What a run produced. `metering` is null when the worker was killed before it could report. */
export type PoolResult =
  | { ok: true; outcome: 'ok' | 'err'; value: unknown; metering: WorkerMetering; wallMs: number }
  | { ok: false; error: SerializedError; metering: WorkerMetering | null; wallMs: number }

interface ActiveRun {
  id: number
  job: PoolJob
  startedAt: number
  timer: NodeJS.Timeout
  resolve: (result: PoolResult) => void
}

interface Slot {
  worker: Worker
  header: Int32Array
  area: Uint8Array
  responsePort: MessagePort
  controlPort: MessagePort
  ready: boolean
  dead: boolean
  loaded: Map<string, true>
  current?: ActiveRun
  largeRequests: ((request: HostCallRequest) => void)[]
  pendingLarge: HostCallRequest[]
}


/**
 * A pool of sandbox workers.
 *
 * @example
 * const pool = new SandboxPool({ size: 2, brokerInterfaces: {}, onHostCall: broker.call })
 * const result = await pool.run(job)
 * await pool.close()
 */
export class SandboxPool {
  readonly size: number
  readonly #options: SandboxPoolOptions
  readonly #slots = new Set<Slot>()
  readonly #queue: { job: PoolJob; resolve: (r: PoolResult) => void }[] = []
  #nextId = 1
  #closed = false
  #replacements = 0
  /** Per-app caps (`context.appId`): running, and waiting; see `fairness.ts`. */
  readonly #shares: AppShares

  constructor(options: SandboxPoolOptions) {
    this.#options = options
    this.size = options.size ?? availableParallelism()
    if (!Number.isInteger(this.size) || this.size < 1) {
      throw new TypeError('pool size must be a positive integer')
    }
    this.#shares = new AppShares(this.size, options)
    for (let i = 0; i < this.size; i++) {
      this.#spawn()
    }
  }

  /** Workers started to replace killed or crashed ones, since the pool began. */
  get replacements(): number {
    return this.#replacements
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
    const app = job.context.appId
    const refusal = this.#shares.admit(app)
    if (refusal) {
      return Promise.resolve(refusal)
    }
    return new Promise((resolve) => {
      this.#queue.push({
        job,
        resolve: (result) => {
          this.#shares.release(app)
          resolve(result)
        },
      })
      this.#pump()
    })
  }

  /** Stop every worker. Queued runs end with `internal`. */
  async close(): Promise<void> {
    this.#closed = true
    for (const { resolve } of this.#queue.splice(0)) {
      resolve({ ok: false, error: { code: 'internal', message: 'pool closed' }, metering: null, wallMs: 0 })
    }
    const slots = [...this.#slots]
    this.#slots.clear()
    for (const slot of slots) {
      this.#endRun(slot, { ok: false, error: { code: 'internal', message: 'pool closed' }, metering: null, wallMs: 0 })
      slot.dead = true
      slot.responsePort.close()
      slot.controlPort.close()
    }
    await Promise.all(slots.map((s) => s.worker.terminate()))
  }

  #spawn(): void {
    const channel = new SharedArrayBuffer(
      CHANNEL.HEADER_BYTES + (this.#options.channelBytes ?? DEFAULT_CHANNEL_BYTES),
    )
    const response = new MessageChannel()
    const control = new MessageChannel()
    const workerData: SandboxWorkerData = {
      channel,
      responsePort: response.port2,
      controlPort: control.port2,
      brokerInterfaces: this.#options.brokerInterfaces,
      ...(this.#options.clockResolutionNs ? { clockResolutionNs: this.#options.clockResolutionNs } : {}),
    }
    const entry = this.#options.workerModule ?? { from: import.meta.url, name: './worker' }
    const worker = startWorker(entry.from, entry.name, {
      workerData,
      transferList: [response.port2, control.port2],
      env: {},
      resourceLimits: this.#options.resourceLimits ?? { maxOldGenerationSizeMb: 256 },
    })
    const slot: Slot = {
      worker,
      header: new Int32Array(channel, 0, CHANNEL.HEADER_BYTES / 4),
      area: new Uint8Array(channel, CHANNEL.HEADER_BYTES),
      responsePort: response.port1,
      controlPort: control.port1,
      ready: false,
      dead: false,
      loaded: new Map(),
      largeRequests: [],
      pendingLarge: [],
    }
    this.#slots.add(slot)
    worker.unref()
    worker.on('message', (msg: unknown) => this.#guard(slot, () => this.#onMessage(slot, msg)))
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

  /** Decode a payload the worker wrote into the shared area, checking its length first. */
  #readArea(slot: Slot): unknown {
    const length = Atomics.load(slot.header, CHANNEL.LENGTH)
    if (!Number.isInteger(length) || length < 0 || length > slot.area.length) {
      throw new RangeError('bad length on the channel')
    }
    return decode(slot.area.subarray(0, length))
  }

  #onMessage(slot: Slot, received: unknown): void {
    const msg = checkFromWorker(received)
    if (!msg) {
      throw new TypeError('malformed message from a worker')
    }
    switch (msg.type) {
      case 'ready':
        slot.ready = true
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
        const wallMs = performance.now() - run.startedAt
        this.#endRun(
          slot,
          msg.ok
            ? { ok: true, outcome: msg.outcome, value: msg.value, metering: msg.metering, wallMs }
            : { ok: false, error: msg.error, metering: msg.metering, wallMs },
        )
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
    run.resolve(result)
  }

  #onCrash(slot: Slot, message = 'the sandbox worker stopped unexpectedly'): void {
    if (slot.dead) {
      return
    }
    const run = slot.current
    this.#retire(slot)
    if (run) {
      run.resolve({
        ok: false,
        error: { code: 'internal', message },
        metering: null,
        wallMs: performance.now() - run.startedAt,
      })
    }
  }

  #onTimeout(slot: Slot, run: ActiveRun): void {
    if (slot.current !== run) {
      return
    }
    slot.current = undefined
    // Answer first; killing and replacing the worker happens off this run's critical path.
    this.#retire(slot, { deferred: true })
    run.resolve({
      ok: false,
      error: { code: 'timeout', message: `the run passed its ${run.job.limits.timeoutMs} ms deadline` },
      metering: null,
      wallMs: performance.now() - run.startedAt,
    })
  }

  /** Kill a worker and start its replacement, now or right after the current task. */
  #retire(slot: Slot, options: { deferred?: boolean } = {}): void {
    slot.dead = true
    this.#slots.delete(slot)
    clearTimeout(slot.current?.timer)
    slot.current = undefined
    const replace = () => {
      // Wake the waitAsync loop so it sees `dead` and stops.
      Atomics.notify(slot.header, CHANNEL.STATE)
      slot.responsePort.close()
      slot.controlPort.close()
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

  /** Start queued runs, in order, skipping those whose app already runs its cap. */
  #pump(): void {
    for (let i = 0; i < this.#queue.length; ) {
      const { job, resolve } = this.#queue[i]!
      const app = job.context.appId
      if (!this.#shares.canStart(app)) {
        i++
        continue
      }
      const slot = this.#pickSlot(job.component.key)
      if (!slot) {
        return
      }
      this.#queue.splice(i, 1)
      this.#shares.start(app)
      this.#start(slot, job, (result) => {
        this.#shares.finish(app)
        resolve(result)
        // A worker may be free while runs of this app wait behind its cap.
        queueMicrotask(() => this.#pump())
      })
    }
  }

  #pickSlot(key: string): Slot | undefined {
    let fallback: Slot | undefined
    for (const slot of this.#slots) {
      if (slot.ready && !slot.dead && !slot.current) {
        if (slot.loaded.has(key)) {
          return slot
        }
        fallback ??= slot
      }
    }
    return fallback
  }

  #start(slot: Slot, job: PoolJob, resolve: (r: PoolResult) => void): void {
    const key = job.component.key
    if (slot.loaded.has(key)) {
      slot.loaded.delete(key)
    } else {
      this.#control(slot, { type: 'load', component: job.component })
      const max = this.#options.componentsPerWorker ?? 32
      if (slot.loaded.size >= max) {
        const oldest = slot.loaded.keys().next().value!
        slot.loaded.delete(oldest)
        this.#control(slot, { type: 'unload', key: oldest })
      }
    }
    slot.loaded.set(key, true)
    const id = this.#nextId++
    const run: ActiveRun = {
      id,
      job,
      resolve,
      startedAt: performance.now(),
      timer: setTimeout(() => this.#onTimeout(slot, run), job.limits.timeoutMs),
    }
    slot.current = run
    const invoke: InvokeJob = {
      type: 'invoke',
      id,
      key,
      exportName: job.exportName,
      args: job.args,
      limits: job.limits,
      grant: job.grant,
    }
    const bytes = encode(invoke)
    if (bytes.length <= slot.area.length) {
      slot.area.set(bytes)
      Atomics.store(slot.header, CHANNEL.LENGTH, bytes.length)
    } else {
      slot.controlPort.postMessage(invoke)
      Atomics.store(slot.header, CHANNEL.LENGTH, CHANNEL.LENGTH_ON_PORT)
    }
    Atomics.store(slot.header, CHANNEL.STATE, CHANNEL.JOB)
    Atomics.notify(slot.header, CHANNEL.STATE)
  }

  #control(slot: Slot, msg: ToWorkerControl): void {
    slot.controlPort.postMessage(msg)
  }

  /** Wait, without blocking the event loop, for the worker's next host call. */
  #arm(slot: Slot): void {
    for (;;) {
      if (slot.dead) {
        return
      }
      const state = Atomics.load(slot.header, CHANNEL.STATE)
      if (state === CHANNEL.REQUEST) {
        this.#serve(slot)
        return
      }
      if (state === CHANNEL.RESULT) {
        const message = this.#readArea(slot)
        Atomics.store(slot.header, CHANNEL.STATE, CHANNEL.IDLE)
        this.#onMessage(slot, message)
        continue
      }
      const wait = Atomics.waitAsync(slot.header, CHANNEL.STATE, state)
      if (wait.async) {
        void wait.value.then(() => this.#guard(slot, () => this.#arm(slot)))
        return
      }
    }
  }

  #serve(slot: Slot): void {
    const run = slot.current
    if (Atomics.load(slot.header, CHANNEL.LENGTH) === CHANNEL.LENGTH_ON_PORT) {
      void this.#nextLargeRequest(slot).then((request) =>
        this.#guard(slot, () => this.#answer(slot, run, request)),
      )
      return
    }
    const request = checkHostCallRequest(this.#readArea(slot))
    if (!request) {
      throw new TypeError('malformed host call from a worker')
    }
    this.#answer(slot, run, request)
  }

  #answer(slot: Slot, run: ActiveRun | undefined, request: HostCallRequest): void {
    let response: HostCallResponse | Promise<HostCallResponse>
    try {
      if (!run) {
        throw new WardenError('internal', 'host call outside of a run')
      }
      response = this.#options.onHostCall(run.job.context, request)
    } catch (error) {
      response = { ok: false, fatal: toWardenError(error).toJSON() }
    }
    if (response instanceof Promise) {
      void response.then(
        (answer) => this.#guard(slot, () => this.#reply(slot, run, answer)),
        (error: unknown) =>
          this.#guard(slot, () =>
            this.#reply(slot, run, { ok: false, fatal: toWardenError(error).toJSON() }),
          ),
      )
    } else {
      this.#reply(slot, run, response)
    }
  }

  #reply(slot: Slot, run: ActiveRun | undefined, response: HostCallResponse): void {
    if (slot.dead || slot.current !== run) {
      return
    }
    let bytes: Uint8Array
    try {
      bytes = encode(response)
    } catch (error) {
      // The broker's answer cannot cross (a host bug, not the guest's): end the run.
      response = { ok: false, fatal: toWardenError(error).toJSON() }
      bytes = encode(response)
    }
    if (bytes.length <= slot.area.length) {
      slot.area.set(bytes)
      Atomics.store(slot.header, CHANNEL.LENGTH, bytes.length)
      Atomics.store(slot.header, CHANNEL.STATE, CHANNEL.RESPONSE)
    } else {
      slot.responsePort.postMessage(response)
      Atomics.store(slot.header, CHANNEL.STATE, CHANNEL.RESPONSE_ON_PORT)
    }
    Atomics.notify(slot.header, CHANNEL.STATE)
    this.#arm(slot)
  }

  #nextLargeRequest(slot: Slot): Promise<HostCallRequest> {
    const ready = slot.pendingLarge.shift()
    if (ready) {
      return Promise.resolve(ready)
    }
    return new Promise((resolve) => slot.largeRequests.push(resolve))
  }
}
