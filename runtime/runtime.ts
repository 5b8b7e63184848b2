/**
 * Warden's runtime: load a component, run it in a fresh sandboxed instance, get its output
 * and its metering report. Import it from `runtime/index.ts`, the front door.
 */
import { randomUUID } from 'node:crypto'
import { DEFAULT_CAPABILITIES } from '../host-capabilities/index.js'
import type { BrokerCapability, RunContext } from '../host-capabilities/types.js'
import { createBroker } from './broker/broker.js'
import type { BrokerRunContext } from './broker/broker.js'
import { WardenError } from './errors.js'
import type { SerializedError } from './errors.js'
import { DEFAULT_CEILINGS, PAGES_PER_MB, resolveLimits } from './limits/limits.js'
import type { LimitCeilings, Limits } from './limits/limits.js'
import { ComponentLoader } from './loader/load.js'
import type { LoadedComponent, LoadOptions } from './loader/load.js'
import type { TranspileBudget } from './loader/transpile.js'
import type { MeteringReport } from './report.js'
import { SandboxPool } from './sandbox/pool.js'
import { ProcessSandboxPool } from './sandbox/process/pool.js'
import type { Decision, HostCallRequest, LogLine } from './sandbox/protocol.js'
import type { Isolation, Sandbox } from './sandbox/sandbox.js'
import type { Telemetry } from './telemetry/telemetry.js'

/** Options of {@link createRuntime}. */
export interface RuntimeOptions {
  /** Where the transpile cache (and later the stores) live. */
  dataDir: string
  /** Sandbox workers. Default: the number of CPUs. */
  poolSize?: number
  /**
   * V8 heap of each sandbox worker, in MiB (guest memory is not counted: it has its own cap).
   * A worker past it is ended and replaced; its run answers `internal`. Default 256.
   */
  workerHeapMb?: number
  /** Ceilings no run may exceed. */
  ceilings?: LimitCeilings
  /**
   * The brokers of broker-side capabilities (`openWarden` builds one per capability of its list;
   * tests add `warden:test/echo`). Their interfaces load in addition to the platform's.
   */
  brokerCapabilities?: readonly BrokerCapability[]
  /** Budget of each transpilation. Default 20 s and 1 GiB of heap. */
  transpileBudget?: TranspileBudget
  /** Transpile child processes, shared fairly between uploaders. Default 2. */
  transpileWorkers?: number
  /** Loaded components kept in memory, in bytes (the disk cache keeps the rest). Default 256 MiB. */
  maxLoadedBytes?: number
  /**
   * Cap on one component's instantiation work: bytes of data and elements copied and table
   * entries (64 bytes each) allocated, over every core instance it makes. Default 128 MiB;
   * past it, the load is refused with `invalid_component`.
   */
  maxInstantiationBytes?: number
  /**
   * Where runs are contained. `thread`: worker threads of this process. `process`: those
   * threads in a child process under Node's permission model, with an empty environment and,
   * on Linux where allowed, no network; the broker, secrets and stores stay here, and host
   * calls cross a pipe. Default `thread`. See `runtime/sandbox/process/`.
   */
  isolation?: Isolation
  /** Resolution of guests' monotonic clocks, in nanoseconds. Default 100 µs. */
  clockResolutionNs?: number
  /**
   * After a run of a component that is slow to instantiate (a JS guest), prepare a fresh
   * instance for its next run off the critical path. Default true; `false` (thread isolation
   * only) measures the baseline in `bench/`.
   */
  prepareInstances?: boolean
  /** @internal bench/ only: `SandboxPoolOptions.prepareDelayMs`. */
  prepareDelayMs?: number
  /** @internal Tests only: `SandboxPoolOptions.prepareBelowMs`. */
  prepareBelowMs?: number
  /**
   * Runs of one app running at once (`context.appId`) while other apps' runs wait. Default:
   * every worker but one.
   */
  maxRunningPerApp?: number
  /** `AppShareOptions.borrowBelowMs`: when a lone app may borrow idle workers past that. */
  borrowBelowMs?: number
  /** Runs of one app waiting beyond those; past it, `limit_exceeded` at once. Default: 4 × the pool size. */
  maxQueuedPerApp?: number
  /**
   * The nice value of a worker thread while it runs an app that keeps running into its limits
   * (thread isolation, Linux); 0 turns it off. Default 19 (`SandboxPoolOptions.hogNice`).
   */
  hogNice?: number
  /** Host-call spans go to the traced run in whose context a run is started. Default: off. */
  telemetry?: Telemetry
}

/** Options of one run. */
export interface InvokeOptions {
  /** Limits asked for; clamped to the ceilings. */
  limits?: Limits
  /**
   * Interfaces this run may call, unversioned (`warden:platform/log`). The effective grant is
   * this ∩ the component's imports. Default: none: every imported capability answers `denied`.
   */
  interfaces?: readonly string[]
  /**
   * Compiled grants of the granted capabilities, keyed by interface (see `RunContext.grants`).
   * Not a token's `grants` claim: `openWarden` compiles that claim into these.
   */
  compiledGrants?: Readonly<Record<string, unknown>>
  appId?: string
  tokenJti?: string
  /** Whose share of the pool the run counts against (`PoolJob.shareKey`); default the app id. */
  shareKey?: string
  /**
   * Told each host call as soon as it is decided, during the run: the broker's (http, secrets,
   * data) once answered, the worker's (log, WASI, early denials) as the worker records them, in
   * call order. The worker reports at most the run's `limits.logLines` of its own; those past
   * that, and a call still in flight when the run ends, are only in {@link Invocation.decisions}.
   * Every call told is told before the run answers. Values are as recorded: `openWarden`
   * redacts secrets before its own listener sees them. Without it the worker reports nothing.
   */
  onDecision?: (decision: Decision) => void
  /**
   * The caller's interest in the answer (an HTTP request's: aborted when its client hangs up).
   * Aborted while the run still waits for a sandbox, the run never starts and answers
   * `client_closed`; a run already running goes on to its end, within its limits (killing its
   * sandbox would cost more than letting it finish). Read only if the run has to wait (a getter
   * may make it then).
   */
  signal?: AbortSignal
}

/** The outcome of one run. Never thrown: a failed run is a value with a stable code. */
export interface Invocation {
  ok: boolean
  /** The export's return value (an action's `ok` string). */
  output?: unknown
  /** An action's `err` value: the guest's own failure, not Warden's. */
  guestError?: unknown
  /** Warden's failure, with a stable code. */
  error?: SerializedError
  report: MeteringReport
  logs: LogLine[]
  /** One per host call, in call order. */
  decisions: Decision[]
}

/** A running Warden runtime. */
export interface WardenRuntime {
  /** Validate, transpile, instrument and compile a component (cached by digest). */
  load(bytes: Uint8Array, options?: LoadOptions): Promise<LoadedComponent>
  /** The component of `digest` if it is in the in-memory cache (or loading), else undefined. */
  loaded(digest: string): Promise<LoadedComponent> | undefined
  /** Run an `action` component's `run(input)` once, in a fresh instance. */
  invoke(component: LoadedComponent, input: string, options?: InvokeOptions): Promise<Invocation>
  /** Call any export (`run`, `handler.handle`) with jco-shaped arguments. */
  call(
    component: LoadedComponent,
    exportName: string,
    args: unknown[],
    options?: InvokeOptions,
  ): Promise<Invocation>
  /**
   * End every queued and running run of `appId` at once with `error` (default
   * {@link APP_DISABLED}): queued runs never start, running ones have their sandbox killed and
   * replaced (even in a host call) and their `signal` aborted. Other apps' runs go on. Returns
   * how many runs were ended. Refusing the app's new runs is the caller's part (`openWarden`).
   *
   * @example
   * runtime.cancelApp('shop') // 2: both in-flight runs answered `app_disabled`
   */
  cancelApp(appId: string, error?: SerializedError): number
  /** The pool, for health and tests. */
  readonly pool: Sandbox
  /** How runs are contained, for health output and docs. */
  readonly isolation: IsolationInfo
  close(): Promise<void>
}

/** What the runs of a disabled app end with (the kill switch). */
export const APP_DISABLED: Readonly<SerializedError> = Object.freeze({
  code: 'app_disabled',
  message: 'the app was disabled',
})

/** What a run ends with when its caller hung up before it started (`InvokeOptions.signal`). */
export const CLIENT_CLOSED: Readonly<SerializedError> = Object.freeze({
  code: 'client_closed',
  message: 'the client hung up before the run started',
})

/** How a runtime contains its runs. */
export interface IsolationInfo {
  mode: Isolation
  /** True when the sandbox process has no network (its own network namespace). */
  networkIsolated: boolean
}

/**
 * Start a runtime: a loader and a warm pool of sandbox workers.
 *
 * @example
 * const warden = await createRuntime({ dataDir: '.warden' })
 * const app = await warden.load(bytes)
 * const run = await warden.invoke(app, '{"name":"Ada"}', {
 *   limits: { fuel: 1e7 },
 *   interfaces: ['warden:platform/log'],
 * })
 * console.log(run.output, run.report.fuelUsed)
 * await warden.close()
 */
export async function createRuntime(options: RuntimeOptions): Promise<WardenRuntime> {
  const ceilings = options.ceilings ?? DEFAULT_CEILINGS
  const isolation = options.isolation ?? 'thread'
  if (isolation !== 'thread' && isolation !== 'process') {
    throw new TypeError(`isolation must be 'thread' or 'process', got ${String(isolation)}`)
  }
  const extra = options.brokerCapabilities ?? []
  const loader = new ComponentLoader({
    dataDir: options.dataDir,
    capabilities: [...DEFAULT_CAPABILITIES, ...extra.map((c) => c.descriptor)],
    maxMemoryPages: ceilings.maxMemoryMb * PAGES_PER_MB,
    ...(options.transpileBudget ? { budget: options.transpileBudget } : {}),
    ...(options.transpileWorkers ? { transpileWorkers: options.transpileWorkers } : {}),
    ...(options.maxLoadedBytes ? { maxMemoBytes: options.maxLoadedBytes } : {}),
    ...(options.maxInstantiationBytes !== undefined
      ? { maxInstantiationBytes: options.maxInstantiationBytes }
      : {}),
    keepModuleBytes: isolation === 'process',
  })
  const brokerInterfaces: Record<string, readonly string[]> = {}
  for (const d of DEFAULT_CAPABILITIES) {
    if (d.side === 'broker') {
      brokerInterfaces[d.interface] = d.functions
    }
  }
  for (const c of extra) {
    brokerInterfaces[c.descriptor.interface] = c.descriptor.functions
  }
  const onHostCall = createBroker(extra)
  const telemetry = options.telemetry?.enabled ? options.telemetry : undefined
  const poolOptions = {
    ...(options.poolSize ? { size: options.poolSize } : {}),
    ...(options.clockResolutionNs ? { clockResolutionNs: options.clockResolutionNs } : {}),
    ...(options.maxRunningPerApp ? { maxRunningPerApp: options.maxRunningPerApp } : {}),
    ...(options.maxQueuedPerApp ? { maxQueuedPerApp: options.maxQueuedPerApp } : {}),
    ...(options.borrowBelowMs !== undefined ? { borrowBelowMs: options.borrowBelowMs } : {}),
    brokerInterfaces,
    onHostCall: (ctx: RunContext, request: HostCallRequest) =>
      onHostCall(ctx as BrokerRunContext, request),
  }
  let pool: Sandbox
  let networkIsolated = false
  if (isolation === 'process') {
    const processPool = new ProcessSandboxPool({
      ...poolOptions,
      ...(options.workerHeapMb ? { workerHeapMb: options.workerHeapMb } : {}),
    })
    networkIsolated = processPool.networkIsolated
    pool = processPool
  } else {
    pool = new SandboxPool({
      ...poolOptions,
      ...(options.prepareInstances === false ? { prepareInstances: false } : {}),
      ...(options.prepareDelayMs !== undefined ? { prepareDelayMs: options.prepareDelayMs } : {}),
      ...(options.prepareBelowMs !== undefined ? { prepareBelowMs: options.prepareBelowMs } : {}),
      ...(options.workerHeapMb
        ? { resourceLimits: { maxOldGenerationSizeMb: options.workerHeapMb } }
        : {}),
      ...(options.hogNice !== undefined ? { hogNice: options.hogNice } : {}),
    })
  }

  async function call(
    component: LoadedComponent,
    exportName: string,
    args: unknown[],
    opts: InvokeOptions = {},
  ): Promise<Invocation> {
    const limits = resolveLimits(opts.limits, ceilings)
    const granted = new Set<string>()
    for (const g of opts.interfaces ?? []) {
      if (component.imports.includes(g)) {
        granted.add(g)
      }
    }
    // NB: created on first use: an AbortController plus its abort() costs ~25 µs per run.
    let abort: AbortController | undefined
    const context: BrokerRunContext = {
      invocationId: randomUUID(),
      appId: opts.appId ?? component.digest,
      digest: component.digest,
      limits,
      granted,
      grants: opts.compiledGrants ?? {},
      counters: { brokerCalls: 0, egressBytes: 0 },
      get signal() {
        abort ??= new AbortController()
        return abort.signal
      },
      decisions: [],
      trace: telemetry?.hostCalls(opts.appId ?? component.digest, component.digest),
      onDecision: opts.onDecision,
    }
    const startedAt = new Date()
    const enqueued = performance.now()
    const hungUp = () => pool.cancel((ctx) => ctx === context, CLIENT_CLOSED, 'queued')
    // NB: `opts.signal` is read only when the run waits for a sandbox, the one time a hang-up
    // changes anything: an HTTP request's signal is made when first read (~20 µs per request).
    let signal: AbortSignal | undefined
    const running = pool.run({
      component: component.sandbox,
      exportName,
      args,
      limits,
      grant: { imported: component.imports, granted: [...granted] },
      context,
      ...(opts.shareKey !== undefined ? { shareKey: opts.shareKey } : {}),
      onQueued() {
        signal = opts.signal
        if (signal?.aborted) {
          hungUp()
        } else {
          signal?.addEventListener('abort', hungUp, { once: true })
        }
      },
    })
    const result = await running
    signal?.removeEventListener('abort', hungUp)
    abort?.abort()
    const metering = result.metering
    const report: MeteringReport = {
      invocationId: context.invocationId,
      appId: context.appId,
      digest: component.digest,
      tokenJti: opts.tokenJti ?? null,
      startedAt: startedAt.toISOString(),
      wallMs: Math.round(result.wallMs * 1000) / 1000,
      queuedMs: Math.round(Math.max(0, performance.now() - enqueued - result.wallMs) * 1000) / 1000,
      fuelUsed: metering?.fuelUsed ?? null,
      fuelLimit: limits.fuel,
      memoryPeakBytes: metering?.memoryPeakBytes ?? null,
      memoryLimitBytes: limits.memoryMb * 1024 * 1024,
      hostCalls: metering?.hostCalls ?? (result.ok ? null : (result.hostCalls ?? null)),
      egressBytes: context.counters.egressBytes,
      outcome: result.ok ? result.outcome : result.error.code,
      ...(result.ok ? {} : { error: result.error }),
      logsDropped: metering?.logsDropped ?? 0,
    }
    // The worker's decisions come in call order; the broker's interleave with them.
    const decisions =
      context.decisions.length === 0
        ? (metering?.decisions ?? [])
        : [...(metering?.decisions ?? []), ...context.decisions].sort((a, b) => a.call - b.call)
    const logs = metering?.logs ?? []
    if (!result.ok) {
      return { ok: false, error: result.error, report, logs, decisions }
    }
    return result.outcome === 'ok'
      ? { ok: true, output: result.value, report, logs, decisions }
      : { ok: false, guestError: result.value, report, logs, decisions }
  }

  return {
    pool,
    isolation: { mode: isolation, networkIsolated },
    load: (bytes, loadOptions) => loader.load(bytes, loadOptions),
    loaded: (digest) => loader.loaded(digest),
    call,
    cancelApp(appId, error = APP_DISABLED) {
      // The pool settles each run at once; `call` then aborts its signal, as after any run.
      return pool.cancel((ctx) => ctx.appId === appId, error)
    },
    invoke(component, input, opts) {
      if (component.kind !== 'action') {
        return Promise.reject(
          new WardenError('invalid_request', 'this component is not an action (it exports no run)'),
        )
      }
      return call(component, 'run', [input], opts)
    },
    async close() {
      await Promise.all([pool.close(), loader.close()])
    },
  }
}
