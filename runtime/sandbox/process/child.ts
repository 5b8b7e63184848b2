/**
 * The sandbox process: a {@link SandboxPool} in a child process that holds no secret, key or
 * store, started under Node's permission model (see `launch.ts`). It compiles the components
 * the host sends, runs jobs, and forwards every broker-side host call to the host over the
 * pipe on fd 3.
 *
 * Run only as the entry of the child, from `dist/`.
 */
import { Socket } from 'node:net'
import type { RunContext } from '../../../host-capabilities/types.js'
import type { SerializedError } from '../../errors.js'
import { decode, encode } from '../codec.js'
import { SandboxPool } from '../pool.js'
import type { PoolResult } from '../pool.js'
import { ended } from '../sandbox.js'
import type { HostCallRequest, HostCallResponse, LoadedComponentMessage } from '../protocol.js'
import { frame, FrameReader, PROCESS_PROTOCOL_VERSION } from './protocol.js'
import type { ComponentBytesMessage, FromChild, ToChild } from './protocol.js'

const pipe = new Socket({ fd: 3, readable: true, writable: true })
let pool: SandboxPool | undefined
const components = new Map<string, Promise<LoadedComponentMessage>>()
/** Broker answers awaited by runs, by run id: a worker has one host call in flight at most. */
const pending = new Map<number, (response: HostCallResponse) => void>()
const runIds = new WeakMap<RunContext, number>()
/** Runs in progress here, by id, with the error the host cancelled each with (null: none). */
const live = new Map<number, SerializedError | null>()
// The pool hands each job's context back to `onHostCall` and reads nothing else from it.
const NEVER_ABORTED = new AbortController().signal

function send(message: FromChild): void {
  const records =
    message.type === 'result' && message.metering
      ? message.metering.logs.length + message.metering.decisions.length
      : 0
  pipe.write(frame(encode(message, { native: records > 32 })))
}

async function compile(component: ComponentBytesMessage): Promise<LoadedComponentMessage> {
  const modules: Record<string, WebAssembly.Module> = {}
  for (const [name, bytes] of Object.entries(component.moduleBytes)) {
    modules[name] = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
  }
  return {
    key: component.key,
    glueSource: component.glueSource,
    glueFile: component.glueFile,
    modules,
    minMemoryPages: component.minMemoryPages,
    ...(component.providedMemory ? { providedMemory: component.providedMemory } : {}),
  }
}

function onHostCall(ctx: RunContext, request: HostCallRequest): Promise<HostCallResponse> {
  const id = runIds.get(ctx)!
  return new Promise((resolve) => {
    pending.set(id, resolve)
    send({ type: 'host-call', id, request })
  })
}

/** Run one job of the host's in this process's pool. Never rejects. */
async function execute(message: Extract<ToChild, { type: 'run' }>): Promise<PoolResult> {
  const component = await components.get(message.key)?.catch(() => undefined)
  if (!component || !pool) {
    return ended({ code: 'internal', message: 'the component could not be loaded in the sandbox' })
  }
  const cancelled = live.get(message.id)
  if (cancelled) {
    // Cancelled while its component compiled: it never starts.
    return ended(cancelled)
  }
  const context: RunContext = {
    invocationId: String(message.id),
    // The host applies the per-app shares (it knows the apps); here every run is its own,
    // so the child's pool never holds one run behind another's app.
    appId: String(message.id),
    digest: '',
    limits: message.limits,
    granted: new Set(message.grant.granted),
    grants: {},
    counters: { brokerCalls: 0, egressBytes: 0 },
    signal: NEVER_ABORTED,
    // The child's pool tells the worker's decisions here, in order, before the run's next host
    // call and before its result: the pipe keeps that order to the host.
    ...(message.live
      ? { onDecision: (decision) => send({ type: 'decision', id: message.id, decision }) }
      : {}),
  }
  runIds.set(context, message.id)
  return pool.run({
    component,
    exportName: message.exportName,
    args: message.args,
    limits: message.limits,
    grant: message.grant,
    context,
  })
}

async function run(message: Extract<ToChild, { type: 'run' }>): Promise<void> {
  live.set(message.id, null)
  const result = await execute(message)
  live.delete(message.id)
  // A host call still awaited (the run timed out or was cancelled in it) is answered by nobody now.
  pending.delete(message.id)
  const common = { type: 'result', id: message.id, replacements: pool?.replacements ?? 0 } as const
  if (result.ok) {
    const { outcome, value, metering } = result
    send({ ...common, ok: true, outcome, value, metering })
  } else {
    send({
      ...common,
      ok: false,
      error: result.error,
      metering: result.metering,
      ...(result.hostCalls === undefined ? {} : { hostCalls: result.hostCalls }),
    })
  }
}

function onMessage(message: ToChild): void {
  switch (message.type) {
    case 'init':
      if (message.version !== PROCESS_PROTOCOL_VERSION || pool) {
        process.exit(70)
      }
      pool = new SandboxPool({
        size: message.size,
        brokerInterfaces: message.brokerInterfaces,
        onHostCall,
        ...(message.workerHeapMb
          ? { resourceLimits: { maxOldGenerationSizeMb: message.workerHeapMb } }
          : {}),
        ...(message.componentsPerWorker
          ? { componentsPerWorker: message.componentsPerWorker }
          : {}),
        ...(message.clockResolutionNs ? { clockResolutionNs: message.clockResolutionNs } : {}),
      })
      void pool.warm().then(() => send({ type: 'ready', version: PROCESS_PROTOCOL_VERSION }))
      return
    case 'load': {
      const key = message.component.key
      const compiled = compile(message.component)
      components.set(key, compiled)
      // A module that does not compile fails the runs that use it, not the process.
      void compiled.then(
        () => send({ type: 'loaded', key }),
        () => send({ type: 'loaded', key }),
      )
      return
    }
    case 'unload':
      components.delete(message.key)
      return
    case 'run':
      void run(message)
      return
    case 'cancel':
      if (live.has(message.id)) {
        live.set(message.id, message.error)
        pool?.cancel((ctx) => runIds.get(ctx) === message.id, message.error)
      }
      return
    case 'answer': {
      const resolve = pending.get(message.id)
      pending.delete(message.id)
      resolve?.(message.response)
      return
    }
  }
}

// The host is trusted here: no frame limit.
const reader = new FrameReader(Number.MAX_SAFE_INTEGER, (bytes) => {
  onMessage(decode(bytes) as ToChild)
})
pipe.on('data', (chunk: Buffer) => reader.push(chunk))
// The host is gone (or closed the pipe): nothing is left to serve.
pipe.on('close', () => process.exit(0))
pipe.on('error', () => process.exit(0))
