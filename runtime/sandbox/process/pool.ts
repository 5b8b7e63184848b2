/**
 * The sandbox pool in a child process: a second layer around the first (STYLE.md §12). The
 * child runs the same {@link SandboxPool} under Node's permission model, with an empty
 * environment and, where the platform allows it, no network; it holds no secret, key or store.
 * The broker stays here: host calls cross the pipe, are answered by `onHostCall`, and cross back.
 *
 * - Each component is sent to the child once (its core modules as bytes, compiled there) and
 *   kept there in an LRU that this side drives.
 * - Everything the child sends is checked (`protocol.ts`); anything unexpected retires it.
 * - A child that dies ends its in-flight runs with `internal` at once; a new one is started.
 * - Each run keeps a deadline here too (its `timeoutMs` plus a grace): past it the run ends
 *   with `timeout` and the child, hung, is replaced.
 * - `cancel` ends chosen runs here at once and tells the child, whose pool kills their workers
 *   as at a deadline; the child stays up for the other runs. A cancelled run holds its place
 *   in the child until the child reports it over; if it has not by the run's deadline, the
 *   child is hung and replaced.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import type { Socket } from 'node:net'
import { availableParallelism } from 'node:os'
import { tellDecision } from '../../../host-capabilities/types.js'
import type { RunContext } from '../../../host-capabilities/types.js'
import { toWardenError, WardenError } from '../../errors.js'
import type { SerializedError } from '../../errors.js'
import { decode, encode } from '../codec.js'
import { AppShares } from '../fairness.js'
import type { AppShareOptions } from '../fairness.js'
import { shareOf } from '../pool.js'
import type { PoolJob, PoolResult } from '../pool.js'
import { liveDecisionCap } from '../protocol.js'
import type { HostCallRequest, HostCallResponse } from '../protocol.js'
import { ended, enqueue, takeMatching } from '../sandbox.js'
import type { CancelScope, RunMatch, Sandbox } from '../sandbox.js'
import { checkChildBuilt, childCommand, childPaths, detectNetworkIsolation } from './launch.js'
import type { ChildPaths, NetworkIsolation } from './launch.js'
import {
  frame,
  FrameReader,
  MAX_CHILD_FRAME_BYTES,
  parseFromChild,
  PROCESS_PROTOCOL_VERSION,
} from './protocol.js'
import type { FromChild, ToChild } from './protocol.js'

/** Options of {@link ProcessSandboxPool}. */
export interface ProcessSandboxPoolOptions extends AppShareOptions {
  /** Resolution of guests' monotonic clocks, in nanoseconds. Default 100 µs. */
  clockResolutionNs?: number
  /** Worker threads in the child, and runs in flight at once. Default: the number of CPUs. */
  size?: number
  /** V8 heap of each worker in the child, in MiB. Default 256 (the thread pool's default). */
  workerHeapMb?: number
  /** V8 heap of the child's main thread, in MiB. Default 1024. */
  heapMb?: number
  /** Interface → functions answered by the broker (here, in the host). */
  brokerInterfaces: Record<string, readonly string[]>
  /** Answers one broker-side host call of the run `ctx`. */
  onHostCall: (
    ctx: RunContext,
    request: HostCallRequest,
  ) => HostCallResponse | Promise<HostCallResponse>
  /** Components kept loaded per worker in the child. Default 32. */
  componentsPerWorker?: number
  /** Components kept compiled in the child, least recently used dropped first. Default 64. */
  componentsPerChild?: number
  /** Added to each run's `timeoutMs` for this side's deadline, in ms. Default 2000. */
  graceMs?: number
  /** Added to that deadline while the child compiles the component, in ms. Default 30,000. */
  loadGraceMs?: number
  /** Longest wait for a new child's handshake, in ms. Default 30,000. */
  startTimeoutMs?: number
  /** Start the child without network when the platform allows it. Default true. */
  isolateNetwork?: boolean
  /** Test seam: another compiled entry and readable folders for the child. */
  childPaths?: ChildPaths
}

interface HostRun {
  id: number
  job: PoolJob
  resolve: (result: PoolResult) => void
  startedAt: number
  timer: NodeJS.Timeout
  hostCalls: number
  /** A host call of this run is being answered; the child may not send another. */
  answering: boolean
  /** The run has a listener: how many more decisions the child may send for it. */
  live?: { left: number }
}

interface Child {
  process: ChildProcess
  pipe: Socket
  ready: boolean
  dead: boolean
  /** Component key → whether the child has compiled it yet, least recently used first. */
  loaded: Map<string, { compiled: boolean }>
  runs: Map<number, HostRun>
  /** Runs ended here by `cancel` that the child has not reported over yet, by id. */
  cancelled: Map<number, HostRun>
  /** Workers the child's pool replaced, as it last reported. */
  workerReplacements: number
  stderr: string
  startTimer: NodeJS.Timeout | undefined
  exited: Promise<void>
}

/**
 * Consecutive failed starts after which the pool stops retrying on its own: queued runs and
 * `warm()` fail, and the next `run()` or `warm()` makes one new attempt.
 */
const START_ATTEMPTS = 3
const STDERR_TAIL_CHARS = 4096

/**
 * A sandbox pool in a child process.
 *
 * @example
 * const pool = new ProcessSandboxPool({ size: 2, brokerInterfaces: {}, onHostCall: broker.call })
 * const result = await pool.run(job)  // job.component.moduleBytes must be set
 * await pool.close()
 */
export class ProcessSandboxPool implements Sandbox {
  readonly size: number
  /** Whether the child runs in a network namespace with no interfaces. */
  readonly networkIsolated: boolean
  readonly #options: ProcessSandboxPoolOptions
  readonly #paths: ChildPaths
  readonly #network: NetworkIsolation
  readonly #queue: { job: PoolJob; resolve: (r: PoolResult) => void }[] = []
  /** Per-app caps, applied here: the child sees runs, not apps. */
  readonly #shares: AppShares
  #child: Child | undefined
  #nextId = 1
  #closed = false
  #restarts = 0
  #liveDecisions = 0
  #pastWorkerReplacements = 0
  #startFailures = 0
  #lastStartError: unknown
  #respawnTimer: NodeJS.Timeout | undefined
  #warmWaiters: { resolve: () => void; reject: (error: Error) => void }[] = []

  constructor(options: ProcessSandboxPoolOptions) {
    this.#options = options
    this.size = options.size ?? availableParallelism()
    if (!Number.isInteger(this.size) || this.size < 1) {
      throw new TypeError('pool size must be a positive integer')
    }
    this.#shares = new AppShares(this.size, options)
    this.#paths = options.childPaths ?? childPaths()
    checkChildBuilt(this.#paths)
    this.#network = options.isolateNetwork === false ? { kind: 'none' } : detectNetworkIsolation()
    this.networkIsolated = this.#network.kind === 'namespace'
    this.#spawn()
  }

  /** Sandboxes started to replace dead ones: child processes, and workers inside them. */
  get replacements(): number {
    return this.#restarts + this.#pastWorkerReplacements + (this.#child?.workerReplacements ?? 0)
  }

  /**
   * @internal Decisions the child has sent live since the pool began: tests check that a run
   * without a listener makes none.
   */
  get liveDecisions(): number {
    return this.#liveDecisions
  }

  /** The current child's process id (for health checks and tests); undefined between children. */
  get pid(): number | undefined {
    return this.#child?.process.pid
  }

  /** Resolves once the child and its workers are ready. Rejects when the child cannot start. */
  warm(): Promise<void> {
    if (this.#child?.ready) {
      return Promise.resolve()
    }
    if (this.#closed) {
      return Promise.reject(this.#startError())
    }
    this.#ensureChild()
    return new Promise((resolve, reject) => this.#warmWaiters.push({ resolve, reject }))
  }

  /** Run one job. Never rejects: every failure is a `PoolResult` with a stable code. */
  run(job: PoolJob): Promise<PoolResult> {
    if (this.#closed) {
      return Promise.resolve(failure('internal', 'the sandbox pool is closed'))
    }
    if (!job.component.moduleBytes) {
      return Promise.resolve(
        failure('internal', 'the component was loaded without its module bytes'),
      )
    }
    const app = shareOf(job)
    const refusal = this.#shares.admit(app)
    if (refusal) {
      return Promise.resolve(refusal)
    }
    this.#ensureChild()
    return enqueue(
      this.#queue,
      job,
      (resolve) => this.#shares.releasing(app, resolve),
      () => this.#pump(),
    )
  }

  /**
   * End every queued or running job whose context `match`es with `error`: queued ones never
   * start; running ones answer at once, and the child kills their workers (even in a host
   * call) and starts new ones. Returns how many jobs were ended.
   */
  cancel(match: RunMatch, error: SerializedError, scope: CancelScope = 'all'): number {
    const child = this.#child
    const running =
      child && scope === 'all'
        ? [...child.runs.values()].filter((run) => match(run.job.context))
        : []
    const queued = takeMatching(this.#queue, match)
    for (const { resolve } of queued) {
      resolve(ended(error))
    }
    for (const run of running) {
      const host = child!
      // The deadline stays armed: the child must report the run over before it.
      host.runs.delete(run.id)
      host.cancelled.set(run.id, run)
      run.resolve(ended(error, performance.now() - run.startedAt))
      try {
        this.#send(host, { type: 'cancel', id: run.id, error: { ...error } })
      } catch {
        this.#retire(host, 'the sandbox process could not be told to cancel a run')
      }
    }
    return queued.length + running.length
  }

  /** Stop the child. Queued and running jobs end with `internal`. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#respawnTimer)
    for (const { resolve } of this.#queue.splice(0)) {
      resolve(failure('internal', 'pool closed'))
    }
    for (const waiter of this.#warmWaiters.splice(0)) {
      waiter.reject(new WardenError('internal', 'pool closed'))
    }
    const child = this.#child
    if (child) {
      // NB: the child is unref'd so that it never keeps the host alive; while closing, the
      // host must wait for its exit, or a script that awaits close() ends with it unsettled.
      child.process.ref()
      this.#retire(child, 'pool closed')
      await child.exited
    }
  }

  /** After the pool gave up starting a child on its own, try once more. */
  #ensureChild(): void {
    if (!this.#child && this.#respawnTimer === undefined) {
      this.#restarts++
      this.#spawn()
    }
  }

  #spawn(): void {
    this.#respawnTimer = undefined
    const { command, args } = childCommand({
      heapMb: this.#options.heapMb ?? 1024,
      network: this.#network,
      paths: this.#paths,
    })
    let proc: ChildProcess
    try {
      proc = spawn(command, args, {
        cwd: this.#paths.root,
        env: {},
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      })
    } catch (error) {
      // Out of file descriptors or processes: Node throws instead of emitting 'error'.
      this.#startFailed(new Error('the sandbox process could not be spawned', { cause: error }))
      return
    }
    const pipe = proc.stdio[3] as Socket
    const child: Child = {
      process: proc,
      pipe,
      ready: false,
      dead: false,
      loaded: new Map(),
      runs: new Map(),
      cancelled: new Map(),
      workerReplacements: 0,
      stderr: '',
      startTimer: undefined,
      exited: new Promise((resolve) => {
        proc.once('exit', () => resolve())
        proc.once('error', () => resolve())
      }),
    }
    this.#child = child
    const reader = new FrameReader(MAX_CHILD_FRAME_BYTES, (bytes) => this.#onFrame(child, bytes))
    pipe.on('data', (chunk: Buffer) => {
      if (child.dead) {
        return
      }
      try {
        reader.push(chunk)
      } catch {
        this.#retire(child, 'the sandbox process sent an oversized message')
      }
    })
    pipe.on('error', () => this.#retire(child, 'the sandbox process pipe failed'))
    pipe.on('close', () => this.#retire(child, 'the sandbox process stopped unexpectedly'))
    proc.stderr?.setEncoding('utf8')
    proc.stderr?.on('data', (text: string) => {
      child.stderr = (child.stderr + text).slice(-STDERR_TAIL_CHARS)
    })
    proc.on('error', () => this.#retire(child, 'the sandbox process could not start'))
    proc.on('exit', () => this.#retire(child, 'the sandbox process stopped unexpectedly'))
    proc.unref()
    pipe.unref()
    ;(proc.stderr as Socket | null)?.unref()
    child.startTimer = setTimeout(
      () => this.#retire(child, 'the sandbox process did not start in time'),
      this.#options.startTimeoutMs ?? 30_000,
    )
    this.#send(child, {
      type: 'init',
      version: PROCESS_PROTOCOL_VERSION,
      size: this.size,
      workerHeapMb: this.#options.workerHeapMb ?? null,
      componentsPerWorker: this.#options.componentsPerWorker ?? null,
      clockResolutionNs: this.#options.clockResolutionNs ?? null,
      brokerInterfaces: this.#options.brokerInterfaces,
    })
  }

  #send(child: Child, message: ToChild): void {
    child.pipe.write(frame(encode(message)))
  }

  #onFrame(child: Child, bytes: Uint8Array): void {
    if (child.dead) {
      return
    }
    let message: FromChild | undefined
    try {
      message = parseFromChild(
        decode(bytes),
        (id) => (child.runs.get(id) ?? child.cancelled.get(id))?.job,
      )
    } catch {
      message = undefined
    }
    if (!message) {
      this.#retire(child, 'the sandbox process sent a malformed message')
      return
    }
    switch (message.type) {
      case 'ready':
        if (child.ready || message.version !== PROCESS_PROTOCOL_VERSION) {
          this.#retire(child, 'the sandbox process repeated or mismatched its handshake')
          return
        }
        child.ready = true
        clearTimeout(child.startTimer)
        this.#startFailures = 0
        for (const waiter of this.#warmWaiters.splice(0)) {
          waiter.resolve()
        }
        this.#pump()
        return
      case 'loaded': {
        const entry = child.loaded.get(message.key)
        if (entry) {
          entry.compiled = true
        }
        return
      }
      case 'host-call': {
        const run = child.runs.get(message.id)
        if (!run) {
          // Sent before the child heard of the cancel; its worker is being killed.
          return
        }
        if (run.answering || ++run.hostCalls > run.job.limits.hostCalls) {
          this.#retire(child, 'the sandbox process made a host call out of turn')
          return
        }
        run.answering = true
        this.#answer(child, run, message.request)
        return
      }
      case 'decision': {
        this.#liveDecisions++
        const run = child.runs.get(message.id)
        if (!run) {
          // Cancelled: answered already, nobody is listening.
          return
        }
        if (!run.live || run.live.left-- <= 0) {
          this.#retire(child, 'the sandbox process sent a decision out of turn')
          return
        }
        tellDecision(run.job.context, message.decision)
        return
      }
      case 'result': {
        child.workerReplacements = Math.max(child.workerReplacements, message.replacements)
        const cancelled = child.cancelled.get(message.id)
        if (cancelled) {
          // Answered already: the child has only freed its place.
          clearTimeout(cancelled.timer)
          child.cancelled.delete(message.id)
          this.#pump()
          return
        }
        const run = child.runs.get(message.id)!
        const wallMs = performance.now() - run.startedAt
        if (message.ok) {
          const { outcome, value, metering } = message
          this.#endRun(child, run, { ok: true, outcome, value, metering, wallMs })
        } else {
          const { error, metering, hostCalls } = message
          this.#endRun(child, run, {
            ok: false,
            error,
            metering,
            wallMs,
            ...(hostCalls === undefined ? {} : { hostCalls }),
          })
        }
        this.#pump()
        return
      }
    }
  }

  #answer(child: Child, run: HostRun, request: HostCallRequest): void {
    let response: HostCallResponse | Promise<HostCallResponse>
    try {
      response = this.#options.onHostCall(run.job.context, request)
    } catch (error) {
      response = { ok: false, fatal: toWardenError(error).toJSON() }
    }
    if (response instanceof Promise) {
      void response.then(
        (answer) => this.#reply(child, run, answer),
        (error: unknown) => {
          this.#reply(child, run, { ok: false, fatal: toWardenError(error).toJSON() })
        },
      )
    } else {
      this.#reply(child, run, response)
    }
  }

  #reply(child: Child, run: HostRun, response: HostCallResponse): void {
    if (child.dead || child.runs.get(run.id) !== run) {
      return
    }
    run.answering = false
    try {
      this.#send(child, { type: 'answer', id: run.id, response })
    } catch (error) {
      // An answer the channel cannot carry ends the run, as it would in the thread pool.
      const fatal = toWardenError(error).toJSON()
      this.#send(child, { type: 'answer', id: run.id, response: { ok: false, fatal } })
    }
  }

  #pump(): void {
    const child = this.#child
    if (!child?.ready || child.dead) {
      return
    }
    // A cancelled run holds its place until the child has let it go.
    const busy = () => child.runs.size + child.cancelled.size
    while (this.#queue.length > 0 && busy() < this.size) {
      const i = this.#shares.pickNext(this.#queue.map((q) => shareOf(q.job)))
      if (i < 0) {
        return
      }
      const { job, resolve } = this.#queue[i]!
      const app = shareOf(job)
      this.#queue.splice(i, 1)
      this.#shares.start(app)
      this.#start(child, job, (result) => {
        this.#shares.finish(app, result)
        resolve(result)
        queueMicrotask(() => this.#pump())
      })
    }
  }

  #start(child: Child, job: PoolJob, resolve: (r: PoolResult) => void): void {
    const component = job.component
    const key = component.key
    const now = performance.now()
    let entry = child.loaded.get(key)
    if (entry) {
      child.loaded.delete(key)
    } else {
      try {
        this.#send(child, {
          type: 'load',
          component: {
            key,
            glueSource: component.glueSource,
            glueFile: component.glueFile,
            moduleBytes: component.moduleBytes!,
            minMemoryPages: component.minMemoryPages,
            ...(component.providedMemory ? { providedMemory: component.providedMemory } : {}),
          },
        })
      } catch {
        resolve(failure('internal', 'the component could not be sent to the sandbox process'))
        return
      }
      entry = { compiled: false }
      const max = this.#options.componentsPerChild ?? 64
      if (child.loaded.size >= max) {
        const oldest = child.loaded.keys().next().value!
        child.loaded.delete(oldest)
        this.#send(child, { type: 'unload', key: oldest })
      }
    }
    child.loaded.set(key, entry)
    const id = this.#nextId++
    const loadGraceMs = entry.compiled ? 0 : (this.#options.loadGraceMs ?? 30_000)
    const run: HostRun = {
      id,
      job,
      resolve,
      startedAt: now,
      hostCalls: 0,
      answering: false,
      ...(job.context.onDecision ? { live: { left: liveDecisionCap(job.limits) } } : {}),
      timer: setTimeout(
        () => this.#onDeadline(child, run),
        job.limits.timeoutMs + (this.#options.graceMs ?? 2000) + loadGraceMs,
      ),
    }
    child.runs.set(id, run)
    try {
      this.#send(child, {
        type: 'run',
        id,
        key,
        exportName: job.exportName,
        args: job.args,
        limits: job.limits,
        grant: job.grant,
        ...(run.live ? { live: true } : {}),
      })
    } catch {
      // Arguments the channel cannot carry (a function, a symbol): the caller's mistake.
      const error = failure('internal', 'the run arguments cannot cross to the sandbox process')
      this.#endRun(child, run, error)
    }
  }

  #endRun(child: Child, run: HostRun, result: PoolResult): void {
    clearTimeout(run.timer)
    child.runs.delete(run.id)
    run.resolve(result)
  }

  #onDeadline(child: Child, run: HostRun): void {
    if (child.cancelled.get(run.id) === run) {
      this.#retire(child, 'the sandbox process did not end a cancelled run')
      return
    }
    if (child.runs.get(run.id) !== run) {
      return
    }
    this.#endRun(child, run, {
      ...failure('timeout', `the run passed its ${run.job.limits.timeoutMs} ms deadline`),
      wallMs: performance.now() - run.startedAt,
    })
    // The child's own watchdog should have answered first: it is hung.
    this.#retire(child, 'the sandbox process stopped answering')
  }

  /** Kill a child, end its runs with `internal`, and start its replacement. */
  #retire(child: Child, reason: string): void {
    if (child.dead) {
      return
    }
    child.dead = true
    clearTimeout(child.startTimer)
    if (this.#child === child) {
      this.#child = undefined
    }
    this.#pastWorkerReplacements += child.workerReplacements
    const message = this.#closed ? 'pool closed' : 'the sandbox process stopped unexpectedly'
    for (const run of [...child.runs.values()]) {
      this.#endRun(child, run, {
        ...failure('internal', message),
        wallMs: performance.now() - run.startedAt,
      })
    }
    for (const run of child.cancelled.values()) {
      clearTimeout(run.timer)
    }
    child.cancelled.clear()
    child.pipe.destroy()
    child.process.kill('SIGKILL')
    if (this.#closed) {
      return
    }
    if (child.ready) {
      this.#restarts++
      this.#respawnTimer = setTimeout(() => this.#spawn(), 0)
    } else {
      this.#startFailed(new Error(reason, { cause: child.stderr }))
    }
  }

  /** Retry a child that did not start, backing off; after a few attempts, fail who waits. */
  #startFailed(error: Error): void {
    this.#startFailures++
    this.#lastStartError = error
    if (this.#startFailures % START_ATTEMPTS === 0) {
      const startError = this.#startError()
      for (const waiter of this.#warmWaiters.splice(0)) {
        waiter.reject(startError)
      }
      for (const { resolve } of this.#queue.splice(0)) {
        resolve(failure('internal', 'the sandbox process could not start'))
      }
      return
    }
    // Back off while the child cannot start (a broken build, a refused flag).
    const delayMs = 100 * 2 ** ((this.#startFailures % START_ATTEMPTS) - 1)
    this.#restarts++
    this.#respawnTimer = setTimeout(() => this.#spawn(), delayMs)
  }

  #startError(): WardenError {
    return new WardenError(
      'internal',
      this.#closed ? 'pool closed' : 'the sandbox process could not start',
      { cause: this.#lastStartError },
    )
  }
}

function failure(code: SerializedError['code'], message: string): PoolResult {
  return { ok: false, error: { code, message }, metering: null, wallMs: 0 }
}
