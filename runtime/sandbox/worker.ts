/**
 * A sandbox worker. It instantiates a fresh component per run (with a fresh memory, or the
 * memory of its component's last run here, zeroed: `memories.ts`), answers worker-side
 * capabilities (log, WASI baseline, early denials) in place, and turns every other import
 * call into one synchronous round trip to the broker over the shared channel.
 *
 * The worker never returns to its event loop: it blocks in `Atomics.wait` for the next job,
 * drains its control port synchronously (component loads), runs, writes the result, and
 * waits again. A wake-up through a futex is several times cheaper than a message.
 *
 * Nothing here trusts the guest: it only sees the guest through jco's glue and the
 * instrumented core modules, whose fuel and memory counters live in `warden:meter` globals.
 */
import { Buffer } from 'node:buffer'
import { readlinkSync } from 'node:fs'
import { hrtime } from 'node:process'
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import type { MessagePort } from 'node:worker_threads'
import { createLogImports, LOG_INTERFACE } from '../../host-capabilities/logging/index.js'
import type { WorkerRunState } from '../../host-capabilities/types.js'
import { createWasiImports } from '../../host-capabilities/wasi/worker.js'
import { WardenError } from '../errors.js'
import { payloadSize } from '../payload-size.js'
import type { SerializedError } from '../errors.js'
import {
  MEMORY_EXPORT_PREFIX,
  MEMORY_IMPORT,
  METER_MODULE,
  TRAP_DEADLINE,
  TRAP_FUEL,
  TRAP_MEMORY,
} from '../limits/instrument.js'
import { epochNow, FUEL_SLICE, FuelMeter } from '../limits/refuel.js'
import type { MeterImports } from '../limits/refuel.js'
import { MAX_RUN_LIFT_BYTES, PAGES_PER_MB } from '../limits/limits.js'
import type { ResolvedLimits } from '../limits/limits.js'
import { Channel, ON_PORT, Spinner, stateSet } from './channel.js'
import { adoptRealm } from './codec.js'
import { createGlueRealm } from './glue-realm.js'
import type { GlueRealm, RealmIntrinsics, RealmHost } from './glue-realm.js'
import { lockDownWorkerRealm } from './lockdown.js'
import { MemoryShelf } from './memories.js'
import { CHANNEL, liveDecisionCap } from './protocol.js'
import type {
  FromWorker,
  HostCallRequest,
  HostCallResponse,
  InvokeJob,
  LiveDecision,
  LoadedComponentMessage,
  ProvidedMemory,
  ToWorkerControl,
  WorkerMetering,
} from './protocol.js'

/** What the pool hands each worker at spawn. */
export interface SandboxWorkerData {
  channel: SharedArrayBuffer
  /** Answers too large for the channel. */
  responsePort: MessagePort
  /** Loads, unloads and jobs too large for the channel; drained before each job. */
  controlPort: MessagePort
  /** Where the worker posts its decisions during a live run ({@link LiveDecision}). */
  livePort: MessagePort
  /** Interface → function names, for the broker-side capabilities this host provides. */
  brokerInterfaces: Record<string, readonly string[]>
  /** Resolution of guests' monotonic clocks, in nanoseconds (see the WASI baseline). */
  clockResolutionNs?: number
  /** How long this worker watches the channel before parking, in µs (`channel.ts`). */
  spin?: { response: number; job: number }
  /** Prepare instances for next runs (see {@link prepareNext}). Default true. */
  prepareInstances?: boolean
  /** How long after a result a preparation waits, in ms (`pool.ts`, `PREPARE_DELAY_MS`). Default 0. */
  prepareDelayMs?: number
  /** @internal Tests only: {@link PREPARE_BELOW_MS} instead of its default. */
  prepareBelowMs?: number
  /** @internal Fuel per slice of a run's budget (`../limits/refuel.ts`). Default `FUEL_SLICE`. */
  fuelSlice?: number
}

// jco glue: `instantiate(getCoreModule, imports, instantiateCore)`; `any` is the ABI boundary.
type Instantiate = (
  getCoreModule: (name: string) => WebAssembly.Module,
  imports: Record<string, object>,
  instantiateCore: (
    module: WebAssembly.Module,
    imports: WebAssembly.Imports,
  ) => WebAssembly.Instance,
  // biome-ignore lint/suspicious/noExplicitAny: the ABI boundary (STYLE.md §7)
) => Record<string, any>

interface ReadyComponent {
  instantiate: Instantiate
  /** The built-ins of the glue's realm: values and errors the glue makes are branded by them. */
  realm: RealmIntrinsics
  modules: Record<string, WebAssembly.Module>
  minMemoryPages: number
  /** Its memory's limits, when the worker hands its module the memory (see `memories.ts`). */
  providedMemory?: ProvidedMemory
  /** What its last fresh instantiation cost: whether an instance is worth preparing. */
  instantiated?: { ms: number; fuel: bigint }
  /** Its instantiation made a host call: never prepared (see {@link prepareNext}). */
  unpreparable?: boolean
  /** Preparations that ran past their deadline; {@link MAX_PREPARE_OVERRUNS} make it unpreparable. */
  prepareOverruns?: number
}

/**
 * The largest string the glue may lift from guest memory in one piece: 16 MiB. A guest can
 * otherwise hand the glue a string as large as its memory cap, and V8 may end the whole
 * process (not only this worker) when such a string meets a large allocation near the heap
 * limit. jco's glue decodes every string with the global TextDecoder, so bounding it here
 * bounds them all; past it the run ends with `limit_exceeded`.
 */
const MAX_LIFT_BYTES = 16 * 1024 * 1024

/** The largest host call payload (strings and byte lists, summed), checked before encoding. */
const MAX_HOST_CALL_BYTES = 16 * 1024 * 1024

/**
 * The most values (strings, numbers, lists, records, …) a host call's arguments or a run's
 * answer may carry to the main thread, which decodes every one of them: a micro-app answering
 * a million empty headers held the main thread 1.3–2.1 s per request, and an `http.fetch` of a
 * million headers 0.5–0.6 s, before either was refused (twelfth outside attack). Real ones
 * carry tens; 16,384 decode in a few milliseconds.
 */
const MAX_PAYLOAD_VALUES = 16_384

/** The caps {@link payloadSize} stops at, for a host call's arguments and a run's answer. */
const PAYLOAD_STOP = { bytes: MAX_HOST_CALL_BYTES, values: MAX_PAYLOAD_VALUES }

/** What one lifted list element is charged against the run's lift budget. */
const LIFTED_ELEMENT_BYTES = 64

/**
 * Lift charges between two reads of the deadline and the kill switch: 256 KiB, 4,096 list
 * elements. Lifting is work the fuel does not pace (it runs in the glue, after or between the
 * guest's calls): a list of a million header tuples took ~1.5 s to lift, past the deadline and
 * the pool's grace (twelfth outside attack).
 */
const LIFT_CHECK_BYTES = 256 * 1024

/** What the current run may still lift (unbounded between runs), and its refusal if spent. */
const lift: { left: number; unchecked: number; exceeded: WardenError | undefined } = {
  left: Infinity,
  unchecked: 0,
  exceeded: undefined,
}

function chargeLift(bytes: number): void {
  lift.left -= bytes
  if (lift.left < 0) {
    // Kept, so that a glue catching the throw cannot hide it: the run ends with it regardless.
    lift.exceeded ??= new WardenError(
      'limit_exceeded',
      `the run copied more than ${MAX_RUN_LIFT_BYTES} bytes out of guest memory`,
    )
    throw lift.exceeded
  }
  lift.unchecked += bytes
  if (lift.unchecked >= LIFT_CHECK_BYTES) {
    lift.unchecked = 0
    if (fuelMeter.due()) {
      // As at a refuel: the run ends `timeout`; kept, so that a glue catching it cannot hide it.
      fuelMeter.trap.value = TRAP_DEADLINE
      lift.exceeded ??= new WardenError('timeout', 'the run passed its deadline')
      throw lift.exceeded
    }
  }
}

/** `ArrayBuffer.prototype.slice` of this realm, charging each copy to the run's lift budget. */
function meterBufferCopies(): void {
  const slice = ArrayBuffer.prototype.slice
  const at = (value: unknown, size: number): number => {
    const n = Math.trunc(Number(value)) || 0
    return n < 0 ? Math.max(size + n, 0) : Math.min(n, size)
  }
  Object.defineProperty(ArrayBuffer.prototype, 'slice', {
    value: function metered(this: ArrayBuffer, start?: number, end?: number): ArrayBuffer {
      const size = this.byteLength
      chargeLift(Math.max(0, at(end ?? size, size) - at(start ?? 0, size)))
      return slice.call(this, start, end)
    },
    writable: false,
    enumerable: false,
    configurable: false,
  })
}
meterBufferCopies()

const decoders: Record<string, TextDecoder> = {
  'utf-8': new TextDecoder('utf-8'),
  'utf-16le': new TextDecoder('utf-16le'),
}
const utf8 = new TextEncoder()

/**
 * What the glue realm's `TextDecoder` and `TextEncoder` do. jco's glue decodes every string it
 * lifts with its realm's TextDecoder, so bounding `decode` here bounds them all.
 */
const textCodec: RealmHost = {
  decode(label, input) {
    const view = input as AllowSharedBufferSource
    if (!ArrayBuffer.isView(view) && !(view instanceof ArrayBuffer)) {
      throw new WardenError('guest_trap', 'the glue decoded something that is not bytes')
    }
    if (view.byteLength > MAX_LIFT_BYTES) {
      throw new WardenError(
        'limit_exceeded',
        `the guest passed a string of ${view.byteLength} bytes; the limit is ${MAX_LIFT_BYTES}`,
      )
    }
    chargeLift(view.byteLength)
    return decoders[label]!.decode(view)
  },
  byteLength: (text) => Buffer.byteLength(text),
  encodeInto: (text, into) => utf8.encodeInto(text, into),
  // A lifted element is a JS value or object: charged as 64 bytes, so a run lifts at most
  // 1M elements. Lists of 16M borrowed handles (no fuel, no bytes) made V8 end the whole
  // process near the worker's heap limit (found by the second outside attack).
  chargeElements: (n) => chargeLift(n * LIFTED_ELEMENT_BYTES),
}

/** Captured before the lockdown, which leaves the worker realm no clock. */
const now = performance.now.bind(performance)
const port = parentPort!
const data = workerData as SandboxWorkerData
const tid = threadId()
// Everything this worker needs is imported or captured above; from here on the realm holds
// no ambient authority (see lockdown.ts), before any guest-derived code exists.
lockDownWorkerRealm()
const channel = new Channel(data.channel)
const components = new Map<string, ReadyComponent | Error>()

/** Any STATE but REQUEST: the broker answered. */
const ANSWERED = ~stateSet(CHANNEL.REQUEST)
const JOB = stateSet(CHANNEL.JOB)
const responseSpinner = new Spinner(data.spin?.response ?? 0)
const jobSpinner = new Spinner(data.spin?.job ?? 0)

/** `spinner`, when the pool says there is a vCPU to spare for watching the channel. */
function roomy(spinner: Spinner): Spinner | undefined {
  return spinner.us > 0 && Atomics.load(channel.header, CHANNEL.ROOMY) === 1 ? spinner : undefined
}

/** One synchronous round trip to the broker. The guest is blocked until it returns. */
function callBroker(request: HostCallRequest): HostCallResponse {
  channel.send(CHANNEL.REQUEST, request, (payload) =>
    post({ type: 'host-call-large', bytes: payload.slice() }),
  )
  channel.waitFor(ANSWERED, roomy(responseSpinner))
  let response = channel.read() as HostCallResponse | typeof ON_PORT
  if (response === ON_PORT) {
    const received = receiveMessageOnPort(data.responsePort)
    response = received
      ? (received.message as HostCallResponse)
      : { ok: false, fatal: { code: 'internal', message: 'host call answer lost' } }
  }
  channel.settle(CHANNEL.IDLE)
  return response
}

interface RunState extends WorkerRunState {
  /** Set when the host ends the run; wins over whatever the guest does next. */
  fatal?: WardenError
  /**
   * The denial thrown by the last host call, until the next one. A function with no
   * `result`, or whose `err` type has no `denied` case, cannot carry it to the guest: the
   * throw then unwinds the guest, and the run ends with `capability_denied`, not a trap.
   */
  denial?: { thrown: object; capability: string }
}

/**
 * What the imports of one instance read when they are called: its run's state and grant. An
 * instance prepared before its run (see {@link prepareNext}) gets its run's grant, limits and
 * clock here when the run starts; until then every host call aborts the preparation.
 */
interface RunSlot {
  state: RunState
  granted: ReadonlySet<string>
  /** The start of the guest's monotonic clock (see the WASI baseline's `epoch`). */
  epoch: { ns: bigint }
  preparing: boolean
  /**
   * A host call was attempted while preparing. Kept apart from the throw: glue that turns a
   * thrown value into the guest's `err` could swallow it.
   */
  calledWhilePreparing?: boolean
  /**
   * The run has a listener ({@link InvokeJob.live}): its run id, how many more decisions it
   * may post, and how many of the run's decisions have been seen by {@link announce}.
   */
  live?: { id: number; left: number; seen: number }
}

function newSlot(limits: ResolvedLimits, granted: readonly string[]): RunSlot {
  return {
    state: { limits, logs: [], logsDropped: 0, logBytes: 0, decisions: [], hostCalls: 0 },
    granted: new Set(granted),
    epoch: { ns: hrtime.bigint() },
    preparing: false,
  }
}

/**
 * Post the decisions the run recorded since the last call to its listener, on the live port,
 * while the run's live budget lasts. Nothing at all for a run without a listener. A message
 * from a worker is delivered while the worker goes on, so the listener hears a log line while
 * the guest still runs, even while it waits in a broker call.
 */
function announce(slot: RunSlot): void {
  const live = slot.live
  if (live === undefined) {
    return
  }
  const { decisions } = slot.state
  for (; live.seen < decisions.length && live.left > 0; live.seen++, live.left--) {
    const message: LiveDecision = { id: live.id, decision: decisions[live.seen]! }
    data.livePort.postMessage(message)
  }
}

/** Thrown by a host call during a preparation: the instance is dropped, never used. */
const PREPARING = new Error('host call while the instance was prepared')

/**
 * Takes `fuel` from the run's budget (a WASI call's fee, `WASI_CALL_FUEL`): the guest flushed its
 * count to the global before the call and reloads it after, so its next check sees the charge.
 */
function chargeFuel(fuel: number): void {
  fuelMeter.fuel.value = (fuelMeter.fuel.value as bigint) - BigInt(fuel)
}

/** Count one host call of the slot's run (see {@link countHostCall}). */
function countCall(slot: RunSlot): void {
  if (slot.preparing) {
    slot.calledWhilePreparing = true
    throw PREPARING
  }
  // Before the limit check: a call refused for being one too many was still made.
  Atomics.store(channel.header, CHANNEL.CALLS, slot.state.hostCalls + 1)
  countHostCall(slot.state)
}

/**
 * Build the import object of one instance: exactly the interfaces the component imports. The
 * functions read the grant from `slot` when called, so an instance may be made before its run.
 */
function buildImports(imported: readonly string[], slot: RunSlot): Record<string, object> {
  const { state } = slot
  const imports: Record<string, object> = {}
  let wasi: Record<string, object> | undefined
  for (const name of imported) {
    if (name === LOG_INTERFACE) {
      const allowed = createLogImports(state, true)
      const denied = createLogImports(state, false)
      imports[name] = {
        write(level: unknown, message: unknown) {
          countCall(slot)
          ;(slot.granted.has(name) ? allowed : denied).write(level, message)
          announce(slot)
        },
      }
    } else if (name.startsWith('wasi:')) {
      wasi ??= createWasiImports(
        state,
        (stream, bytes) => {
          countCall(slot)
          state.decisions.push({
            call: state.hostCalls,
            capability: stream,
            fn: 'write',
            decision: 'allow',
            bytesOut: bytes,
          })
          announce(slot)
        },
        { clockResolutionNs: data.clockResolutionNs, epoch: slot.epoch, charge: chargeFuel },
      )
      imports[name] = wasi[name] ?? {}
    } else if (name in data.brokerInterfaces) {
      const fns: Record<string, (...args: unknown[]) => unknown> = {}
      for (const fn of data.brokerInterfaces[name]!) {
        fns[fn] = (...args: unknown[]) => bridgeCall(slot, name, fn, args)
      }
      imports[name] = fns
    } else {
      // Types-only interfaces (and anything the loader let through) get an empty object.
      imports[name] = {}
    }
  }
  return imports
}

function countHostCall(state: RunState): void {
  state.hostCalls++
  if (state.fatal) {
    throw state.fatal
  }
  if (state.hostCalls > state.limits.hostCalls) {
    state.fatal = new WardenError(
      'limit_exceeded',
      `the run made more than ${state.limits.hostCalls} host calls`,
    )
    throw state.fatal
  }
}

function bridgeCall(slot: RunSlot, capability: string, fn: string, args: unknown[]): unknown {
  countCall(slot)
  const { state } = slot
  state.denial = undefined
  if (!slot.granted.has(capability)) {
    // Early denial: decided here, recorded with the run, no round trip.
    state.decisions.push({
      call: state.hostCalls,
      capability,
      fn,
      decision: 'deny',
      reason: 'not granted',
    })
    announce(slot)
    const thrown = { payload: { tag: 'denied', val: `${capability} is not granted to this run` } }
    state.denial = { thrown, capability }
    throw thrown
  }
  const size = payloadSize(args, PAYLOAD_STOP)
  if (size.bytes > MAX_HOST_CALL_BYTES || size.values > MAX_PAYLOAD_VALUES) {
    state.fatal = new WardenError(
      'limit_exceeded',
      `a host call carried more than ${MAX_HOST_CALL_BYTES} bytes or ${MAX_PAYLOAD_VALUES} values`,
    )
    throw state.fatal
  }
  const response = callBroker({ call: state.hostCalls, capability, fn, args })
  if (response.ok) {
    return response.value
  }
  if ('hostError' in response) {
    throw { payload: response.hostError }
  }
  state.fatal = WardenError.fromJSON(response.fatal)
  throw state.fatal
}

function load(component: LoadedComponentMessage): ReadyComponent {
  // NB: a function compiled from the glue, not a dynamic import: loading stays synchronous,
  // so the worker can stay in its Atomics.wait loop. See `loader/glue.ts` for the checks.
  // Each component gets a realm of its own: components never share built-ins.
  const realm: GlueRealm = createGlueRealm(textCodec)
  adoptRealm(realm.intrinsics)
  let instantiate: unknown
  try {
    instantiate = realm.evaluate(component.glueSource, component.glueFile)
  } catch (error) {
    // The glue is generated from the component: glue that does not evaluate is its fault.
    throw new WardenError('invalid_component', 'the generated bindings do not evaluate', {
      cause: error,
    })
  }
  if (typeof instantiate !== 'function') {
    throw new WardenError(
      'invalid_component',
      'the generated bindings have no instantiate function',
    )
  }
  return {
    instantiate: instantiate as Instantiate,
    realm: realm.intrinsics,
    modules: component.modules,
    minMemoryPages: component.minMemoryPages,
    ...(component.providedMemory ? { providedMemory: component.providedMemory } : {}),
  }
}

/** `error instanceof <name>` in the worker's realm or in the glue's. */
function isA(
  error: unknown,
  realm: RealmIntrinsics | undefined,
  name: 'Error' | 'TypeError' | 'RangeError',
): error is Error {
  return error instanceof globalThis[name] || (realm !== undefined && error instanceof realm[name])
}

/** The same for WebAssembly's error classes. */
function isWasmError(
  error: unknown,
  realm: RealmIntrinsics | undefined,
  name: 'RuntimeError' | 'LinkError' | 'CompileError',
): boolean {
  return (
    error instanceof WebAssembly[name] ||
    (realm !== undefined && error instanceof realm.WebAssembly[name])
  )
}

function classify(
  error: unknown,
  state: RunState,
  trap: number,
  realm: RealmIntrinsics | undefined,
): SerializedError {
  if (state.fatal) {
    return state.fatal.toJSON()
  }
  if (trap === TRAP_FUEL) {
    return {
      code: 'fuel_exhausted',
      message: `the run used its ${state.limits.fuel} units of fuel`,
    }
  }
  if (trap === TRAP_MEMORY) {
    return {
      code: 'memory_limit',
      message: `the guest grew its memory past the ${state.limits.memoryMb} MiB cap`,
    }
  }
  if (trap === TRAP_DEADLINE) {
    // What the pool's watchdog answers (`pool.ts`, `#onDeadline`): the same error either way.
    return {
      code: 'timeout',
      message: `the run passed its ${state.limits.timeoutMs} ms deadline`,
    }
  }
  if (error instanceof WardenError) {
    return error.toJSON()
  }
  if (state.denial && (error === state.denial.thrown || isA(error, realm, 'TypeError'))) {
    return {
      code: 'capability_denied',
      message: `${state.denial.capability} is not granted to this run`,
    }
  }
  if (isA(error, realm, 'RangeError') && /call stack/i.test(error.message)) {
    return { code: 'guest_trap', message: 'the guest overflowed its stack' }
  }
  if (isWasmError(error, realm, 'RuntimeError')) {
    return { code: 'guest_trap', message: `the guest trapped: ${(error as Error).message}` }
  }
  if (isWasmError(error, realm, 'LinkError') || isWasmError(error, realm, 'CompileError')) {
    // The glue and the modules both come from the component: a mismatch is the component's.
    return { code: 'invalid_component', message: 'the component could not be linked' }
  }
  if (error instanceof Error && error.name === 'GuestExit') {
    return { code: 'guest_trap', message: error.message }
  }
  // Errors thrown by the glue while lifting guest values are the guest's fault.
  return { code: 'guest_trap', message: 'the guest produced an invalid value' }
}

// One run at a time per worker, so the meter is reset, not recreated, per run: a prepared
// instance holds the same imports and meets the budget and deadline of the run it serves.
const fuelMeter = new FuelMeter(
  data.fuelSlice ? BigInt(data.fuelSlice) : FUEL_SLICE,
  epochNow,
  // A cancelled run (the kill switch) ends at its next refuel, as at its deadline. A
  // preparation serves no run yet: it gives way to a job as soon as one is waiting, within a
  // slice of its work (eighth outside attack: a start function made it hide seconds of work
  // in front of another app's run, whose deadline had started).
  () =>
    running
      ? Atomics.load(channel.header, CHANNEL.STOP) !== 0
      : Atomics.load(channel.header, CHANNEL.STATE) === CHANNEL.JOB,
)

/** A job's run is in flight (not a preparation): `CHANNEL.STOP` concerns it. */
let running = false
const capGlobals = new Map<number, WebAssembly.Global>()

/**
 * The meter's imports for a run of `fuel`, ended in the guest at its first fuel check past
 * `deadline` (epoch ms, `refuel.ts`); the pool's watchdog ends it otherwise.
 */
function meterFor(
  limits: ResolvedLimits,
  fuel: bigint = BigInt(limits.fuel),
  deadline = Number.POSITIVE_INFINITY,
  slice?: bigint,
): MeterImports {
  const capPages = limits.memoryMb * PAGES_PER_MB
  let cap = capGlobals.get(capPages)
  if (!cap) {
    cap = new WebAssembly.Global({ value: 'i32', mutable: false }, capPages)
    capGlobals.set(capPages, cap)
  }
  fuelMeter.start(fuel, deadline, slice)
  return fuelMeter.imports(cap)
}

/** A fresh component instance and the memories its core modules defined. */
interface Made {
  // biome-ignore lint/suspicious/noExplicitAny: the ABI boundary (STYLE.md §7)
  instance: Record<string, any>
  memories: Set<WebAssembly.Memory>
  /** The memory the worker handed it (`ReadyComponent.providedMemory`), back on the shelf after its run. */
  provided?: WebAssembly.Memory
}

/** Memories of earlier runs, kept for the next instance of the same component (`memories.ts`). */
const shelf = new MemoryShelf<ReadyComponent>()

/** The memory the last run was handed, for {@link shelveUsed} once its result is posted. */
let used: { ready: ReadyComponent; memory: WebAssembly.Memory } | undefined

/**
 * After a run's result was posted: keep its memory for the next instance of its component,
 * which zeroes it when it takes it (`memories.ts` says why no later run can see what it held).
 */
function shelveUsed(): void {
  if (used !== undefined) {
    shelf.give(used.ready, used.ready.providedMemory!, used.memory)
    used = undefined
  }
}

/** Instantiate `ready` with imports that read `slot`, metered by `meter`. */
function instantiate(
  ready: ReadyComponent,
  imported: readonly string[],
  slot: RunSlot,
  meter: MeterImports,
): Made {
  const memories = new Set<WebAssembly.Memory>()
  let definedMemories = 0
  const provided = ready.providedMemory ? shelf.take(ready, ready.providedMemory) : undefined
  const meterImports = provided ? { ...meter, [MEMORY_IMPORT]: provided } : meter
  const instance = ready.instantiate(
    (name) => ready.modules[name]!,
    buildImports(imported, slot),
    (module, moduleImports) => {
      // Making a core instance (tables, element and data segments) is work the fuel does not
      // pace, and a component may make hundreds: the deadline, the kill switch and, for a
      // preparation, a waiting job are read before each one (eleventh outside attack).
      if (fuelMeter.due()) {
        meter.trap.value = TRAP_DEADLINE
        throw new WebAssembly.RuntimeError('the run passed its deadline while instantiating')
      }
      const core = new WebAssembly.Instance(module, {
        ...moduleImports,
        [METER_MODULE]: meterImports,
      })
      for (const [name, value] of Object.entries(core.exports)) {
        if (value instanceof WebAssembly.Memory) {
          memories.add(value)
          // The instrumenter exports every memory a module defines as `warden:memory:N`.
          // Each is capped on its own, so a module with a memory instantiated twice would
          // hold twice the cap (found by the outside attack): one memory per run.
          if (name.startsWith(MEMORY_EXPORT_PREFIX) && ++definedMemories > 1) {
            throw new WardenError(
              'invalid_component',
              'the component instantiates more than one memory (a module that defines one is instantiated twice), which Warden does not run',
            )
          }
        }
      }
      return core
    },
  )
  return provided ? { instance, memories, provided } : { instance, memories }
}

/**
 * A fresh instance made after a run answered, for the next run of the same component in this
 * worker: never called before that run, used by one run only, dropped when another component
 * runs or the component is unloaded. It saves the next run the instantiation (for a
 * componentize-js guest, most of a run). Its imports read the run's grant, limits and clock
 * from its slot, set when the run starts; the fuel its instantiation spent is charged to that
 * run, so a run costs the same fuel either way.
 */
interface Prepared extends Made {
  key: string
  capPages: number
  slot: RunSlot
  fuelSpent: bigint
}

let prepared: Prepared | undefined

/** Below this, a fresh instantiation is cheap enough: nothing is prepared. */
const PREPARE_ABOVE_MS = 0.5

/**
 * Above this, a fresh instantiation is the component's own business: it is paid in its runs,
 * never prepared in the worker's idle time, where the pool does not count it (a JS guest's is
 * 1–10 ms). So a preparation lasts at most four times this.
 */
const PREPARE_BELOW_MS = data.prepareBelowMs ?? 50

/** Fuel per slice of a preparation: its deadline and a waiting job are read at each refuel. */
const PREPARE_SLICE = 1n << 14n

/** The shortest deadline a preparation gets, in ms (see {@link prepareNext}). */
const PREPARE_MIN_MS = 100

/** Preparations of one component past their deadline before it is not prepared again. */
const MAX_PREPARE_OVERRUNS = 3

/** How long a preparation waits after its result is posted (`SandboxPool`, `PREPARE_DELAY_MS`). */
const prepareDelayMs = data.prepareDelayMs ?? 0

/**
 * After a run of `ready` answered: prepare an instance for its next run, when instantiating it
 * is worth it and no job is waiting. Its instantiation may spend at most four times the fuel
 * the last fresh one spent; a host call (a log line, a stdout write, a broker call) while it is
 * made drops it, and the component is not prepared again, since such calls belong to a run.
 */
function prepareNext(ready: ReadyComponent, job: InvokeJob): void {
  const cost = ready.instantiated
  if (!worthPreparing(ready) || cost === undefined || channel.state === CHANNEL.JOB) {
    return
  }
  prepared = undefined
  const slot = newSlot(job.limits, [])
  slot.preparing = true
  const budget = cost.fuel * 4n + 1_000_000n
  // No watchdog watches a preparation (the pool sees the slot free), so it has a deadline of its
  // own: four times the last fresh instantiation, at least PREPARE_MIN_MS (so at most
  // 4 × PREPARE_BELOW_MS). Not the run's timeout: a tenant of a shared app (`js`) with a 1 ms
  // timeout would make its preparations overrun, and the app unpreparable for every tenant.
  const ms = Math.max(PREPARE_MIN_MS, cost.ms * 4)
  // Small slices: the preparation's deadline, and a job that comes, are noticed within ~16k
  // fuel of work (its whole budget often fits in one run's slice; ninth outside attack).
  const meter = meterFor(job.limits, budget, epochNow() + ms, PREPARE_SLICE)
  lift.left = MAX_RUN_LIFT_BYTES
  try {
    const made = instantiate(ready, job.grant.imported, slot, meter)
    const left = fuelMeter.left()
    if (slot.calledWhilePreparing) {
      ready.unpreparable = true
    } else if (left >= 0n && (meter.trap.value as number) === 0) {
      prepared = {
        ...made,
        key: job.key,
        capPages: job.limits.memoryMb * PAGES_PER_MB,
        slot,
        fuelSpent: budget - left,
      }
    }
  } catch {
    // A trap, fuel spent, a refusal: the next run instantiates afresh and meets it there. One
    // that made a host call or ran past its deadline is not prepared again.
    if (slot.calledWhilePreparing) {
      ready.unpreparable = true
    } else if (
      (meter.trap.value === TRAP_DEADLINE &&
        Atomics.load(channel.header, CHANNEL.STATE) !== CHANNEL.JOB) ||
      meter.trap.value === TRAP_FUEL
    ) {
      // Past its deadline, not ended by a job that came (that is not the component's fault), or
      // past four times the fuel of its last fresh instantiation. A GC pause or a busy vCPU can
      // stretch one; a start function that keeps doing either is not prepared again.
      ready.prepareOverruns = (ready.prepareOverruns ?? 0) + 1
      ready.unpreparable = ready.prepareOverruns >= MAX_PREPARE_OVERRUNS
    }
  } finally {
    slot.preparing = false
    lift.left = Infinity
    lift.exceeded = undefined
  }
}

/** Whether an instance of `ready` is prepared after its runs (the result says so to the pool). */
function worthPreparing(ready: ReadyComponent): boolean {
  return (
    data.prepareInstances !== false &&
    !ready.unpreparable &&
    ready.instantiated !== undefined &&
    ready.instantiated.ms >= PREPARE_ABOVE_MS &&
    ready.instantiated.ms <= PREPARE_BELOW_MS
  )
}

/** The prepared instance for this job, if one fits it (taken: it serves this run only). */
function takePrepared(msg: InvokeJob): Prepared | undefined {
  const p = prepared
  prepared = undefined
  if (
    p === undefined ||
    p.key !== msg.key ||
    p.capPages !== msg.limits.memoryMb * PAGES_PER_MB ||
    p.fuelSpent > BigInt(msg.limits.fuel)
  ) {
    return undefined
  }
  return p
}

function invoke(ready: ReadyComponent, msg: InvokeJob): FromWorker {
  lift.left = MAX_RUN_LIFT_BYTES
  lift.unchecked = 0
  lift.exceeded = undefined
  try {
    const result = invokeOnce(ready, msg)
    // NB: read through a cast: the compiler cannot see that the run set it.
    const exceeded = lift.exceeded as WardenError | undefined
    if (exceeded && result.type === 'result') {
      return {
        type: 'result',
        id: msg.id,
        ok: false,
        error: exceeded.toJSON(),
        metering: result.metering,
      }
    }
    return result
  } finally {
    lift.left = Infinity
    lift.exceeded = undefined
  }
}

function invokeOnce(ready: ReadyComponent, msg: InvokeJob): FromWorker {
  const limits: ResolvedLimits = msg.limits
  const capPages = limits.memoryMb * PAGES_PER_MB
  const made = takePrepared(msg)
  let slot: RunSlot
  let meter: MeterImports
  const deadline = msg.deadline ?? Number.POSITIVE_INFINITY
  if (made) {
    // The run starts now: its grant, limits and clock; its budget less what instantiating spent.
    slot = made.slot
    slot.state.limits = limits
    slot.granted = new Set(msg.grant.granted)
    slot.epoch.ns = hrtime.bigint()
    meter = meterFor(limits, BigInt(limits.fuel) - made.fuelSpent, deadline)
  } else {
    slot = newSlot(limits, msg.grant.granted)
    meter = meterFor(limits, BigInt(limits.fuel), deadline)
  }
  slot.live = msg.live ? { id: msg.id, left: liveDecisionCap(limits), seen: 0 } : undefined
  const { state } = slot
  let memories: ReadonlySet<WebAssembly.Memory> = made?.memories ?? new Set()
  const metering = (): WorkerMetering => {
    let memoryPeakBytes = 0
    for (const memory of memories) {
      memoryPeakBytes += memory.buffer.byteLength
    }
    const left = fuelMeter.left()
    const used = BigInt(limits.fuel) - left
    return {
      fuelUsed: Number(used > BigInt(limits.fuel) ? BigInt(limits.fuel) : used),
      memoryPeakBytes,
      hostCalls: state.hostCalls,
      logs: state.logs,
      logsDropped: state.logsDropped,
      decisions: state.decisions,
    }
  }
  try {
    if (ready.minMemoryPages > capPages) {
      throw new WardenError(
        'memory_limit',
        `the component needs ${ready.minMemoryPages} pages at start, above the ${limits.memoryMb} MiB cap`,
      )
    }
    let instance: Made['instance']
    if (made) {
      instance = made.instance
      used = made.provided ? { ready, memory: made.provided } : undefined
    } else {
      const started = now()
      const fresh = instantiate(ready, msg.grant.imported, slot, meter)
      ready.instantiated = {
        ms: now() - started,
        fuel: BigInt(limits.fuel) - fuelMeter.left(),
      }
      instance = fresh.instance
      memories = fresh.memories
      used = fresh.provided ? { ready, memory: fresh.provided } : undefined
    }
    let target: unknown = instance
    for (const part of msg.exportName.split('.')) {
      // Own properties only: `constructor.constructor` must not reach Function.
      target =
        target !== null && typeof target === 'object' && Object.hasOwn(target, part)
          ? (target as Record<string, unknown>)[part]
          : undefined
    }
    if (typeof target !== 'function') {
      throw new WardenError('invalid_request', `the component does not export ${msg.exportName}`)
    }
    let value: unknown
    let outcome: 'ok' | 'err' = 'ok'
    try {
      value = (target as (...args: unknown[]) => unknown)(...msg.args)
    } catch (error) {
      // A `result<_, E>` export returning `err` surfaces as jco's ComponentError with a payload.
      if (!state.fatal && isA(error, ready.realm, 'Error') && Object.hasOwn(error, 'payload')) {
        value = (error as Error & { payload: unknown }).payload
        outcome = 'err'
      } else {
        throw error
      }
    }
    if (state.fatal) {
      throw state.fatal
    }
    // Checks sit at function entries and loop headers; a run that overdrew its fuel on the
    // way out fails too, so the budget is exact: a run succeeds iff its cost fits.
    if (fuelMeter.left() < 0n) {
      meter.trap.value = TRAP_FUEL
      throw new WebAssembly.RuntimeError('fuel exhausted')
    }
    if (payloadSize(value, PAYLOAD_STOP).values > MAX_PAYLOAD_VALUES) {
      throw new WardenError(
        'limit_exceeded',
        `the guest answered more than ${MAX_PAYLOAD_VALUES} values (strings, numbers, list elements, fields)`,
      )
    }
    return { type: 'result', id: msg.id, ok: true, outcome, value, metering: metering() }
  } catch (error) {
    const serialized = classify(error, state, meter.trap.value as number, ready.realm)
    const spent = metering()
    // The engine stopped the guest inside a function (a trap, a stack overflow), where the
    // fuel count lives in a local the host cannot read: the run is charged its whole budget,
    // so that trapping on purpose never reports less than was spent. Deterministic still.
    const engineStop =
      (meter.trap.value as number) === 0 &&
      (isWasmError(error, ready.realm, 'RuntimeError') ||
        (isA(error, ready.realm, 'RangeError') && /call stack/i.test(error.message)))
    if (engineStop) {
      spent.fuelUsed = limits.fuel
    }
    return { type: 'result', id: msg.id, ok: false, error: serialized, metering: spent }
  }
}

function post(message: FromWorker): void {
  port.postMessage(message)
}

/** A run's result goes through the shared channel when it fits: cheaper than a message. */
function postResult(message: FromWorker): void {
  const records =
    message.type === 'result' ? message.metering.logs.length + message.metering.decisions.length : 0
  if (!channel.send(CHANNEL.RESULT, message, undefined, { native: records > 32 })) {
    post(message)
  }
}

function handleControl(msg: ToWorkerControl): void {
  switch (msg.type) {
    case 'unload': {
      const ready = components.get(msg.key)
      if (ready !== undefined && !(ready instanceof Error)) {
        shelf.drop(ready)
      }
      components.delete(msg.key)
      if (prepared?.key === msg.key) {
        prepared = undefined
      }
      return
    }
    case 'load': {
      const key = msg.component.key
      try {
        components.set(key, load(msg.component))
      } catch (error) {
        components.set(key, error instanceof Error ? error : new Error(String(error)))
      }
      return
    }
  }
}

function drainControl(): void {
  for (
    let m = receiveMessageOnPort(data.controlPort);
    m;
    m = receiveMessageOnPort(data.controlPort)
  ) {
    handleControl(m.message as ToWorkerControl)
  }
}

function readJob(): InvokeJob | undefined {
  const payload = channel.read()
  if (payload !== ON_PORT) {
    return payload as InvokeJob
  }
  // A job too large for the channel was queued on the control port after its loads.
  let job: InvokeJob | undefined
  for (
    let m = receiveMessageOnPort(data.controlPort);
    m;
    m = receiveMessageOnPort(data.controlPort)
  ) {
    const msg = m.message as ToWorkerControl | InvokeJob
    if (msg.type === 'invoke') {
      job = msg
    } else {
      handleControl(msg)
    }
  }
  return job
}

function runJob(job: InvokeJob): FromWorker {
  const ready = components.get(job.key)
  if (ready === undefined || ready instanceof Error) {
    return {
      type: 'result',
      id: job.id,
      ok: false,
      error:
        ready instanceof WardenError
          ? ready.toJSON()
          : { code: 'internal', message: 'the component could not be loaded in the sandbox' },
      metering: emptyMetering(),
    }
  }
  return invoke(ready, job)
}

function emptyMetering(): WorkerMetering {
  return { fuelUsed: 0, memoryPeakBytes: 0, hostCalls: 0, logs: [], logsDropped: 0, decisions: [] }
}

/** This thread's Linux thread id (`/proc/thread-self` → `/proc/<pid>/task/<tid>`), if any. */
function threadId(): number | undefined {
  try {
    const tid = Number(/\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1])
    return Number.isSafeInteger(tid) && tid > 0 ? tid : undefined
  } catch {
    return undefined
  }
}

post(tid === undefined ? { type: 'ready' } : { type: 'ready', tid })
let ran = false
for (;;) {
  // Sleeps until the main thread changes STATE and notifies (RESULT → IDLE does not notify).
  // After a result, the next job is often on its way (runs queue): watch before parking.
  channel.waitFor(JOB, ran ? roomy(jobSpinner) : undefined)
  // A job too large for the channel waits on the control port behind its loads: readJob
  // drains both in order. Otherwise the loads are drained first, then the job read in place.
  if (Atomics.load(channel.header, CHANNEL.LENGTH) !== CHANNEL.LENGTH_ON_PORT) {
    drainControl()
  }
  const job = readJob()
  channel.settle(CHANNEL.IDLE)
  ran = job !== undefined
  if (job) {
    running = true
    const result = runJob(job)
    running = false
    const ready = components.get(job.key)
    const prepare = ready !== undefined && !(ready instanceof Error) && worthPreparing(ready)
    if (prepare && result.type === 'result') {
      result.preparing = true
    }
    postResult(result)
    shelveUsed()
    if (prepare) {
      if (prepareDelayMs > 0) {
        // A job arriving meanwhile ends the wait; prepareNext then leaves it to run fresh.
        channel.waitFor(JOB, undefined, prepareDelayMs)
      }
      prepareNext(ready, job)
    }
  }
}
