/**
 * The typed messages between the host and the sandbox process, their framing on the pipe, and
 * the checks the host applies to everything the sandbox process sends.
 *
 * Each message is one frame: a little-endian u32 length, then the value in the channel codec
 * (`../codec.ts`). The host trusts nothing that comes back: a frame that is too large, does not
 * decode, or does not match {@link FromChild} exactly (types, ids, bounds) retires the child.
 */
import { Buffer } from 'node:buffer'
import { isWardenErrorCode } from '../../errors.js'
import type { SerializedError } from '../../errors.js'
import type { ResolvedLimits } from '../../limits/limits.js'
import type {
  Decision,
  HostCallRequest,
  HostCallResponse,
  LogLine,
  ProvidedMemory,
  WorkerGrant,
  WorkerMetering,
} from '../protocol.js'

/** Bumped on any change below: a child built from an older `dist/` is refused at its handshake. */
export const PROCESS_PROTOCOL_VERSION = 4

/** Largest frame the host accepts from the child: 256 MiB (a run's value, a host call). */
export const MAX_CHILD_FRAME_BYTES = 256 * 1024 * 1024

/** A component as it crosses to the child: core modules as bytes, compiled there. */
export interface ComponentBytesMessage {
  key: string
  glueSource: string
  glueFile: string
  moduleBytes: Record<string, Uint8Array>
  minMemoryPages: number
  providedMemory?: ProvidedMemory
}

/** Host → child. */
export type ToChild =
  | {
      type: 'init'
      version: number
      size: number
      workerHeapMb: number | null
      componentsPerWorker: number | null
      clockResolutionNs: number | null
      brokerInterfaces: Record<string, readonly string[]>
    }
  | { type: 'load'; component: ComponentBytesMessage }
  | { type: 'unload'; key: string }
  | {
      type: 'run'
      id: number
      key: string
      exportName: string
      args: unknown[]
      limits: ResolvedLimits
      grant: WorkerGrant
      /** The run has a listener: the child sends its worker's decisions as they are made. */
      live?: true
    }
  | { type: 'answer'; id: number; response: HostCallResponse }
  /** The host ended run `id` (`cancel`): kill its worker, or never start it. */
  | { type: 'cancel'; id: number; error: SerializedError }

/** Child → host. */
export type FromChild =
  | { type: 'ready'; version: number }
  | {
      type: 'result'
      id: number
      /** Workers the child's pool has replaced so far (timeouts, crashes). */
      replacements: number
      ok: true
      outcome: 'ok' | 'err'
      value: unknown
      metering: WorkerMetering
    }
  | {
      type: 'result'
      id: number
      replacements: number
      ok: false
      error: SerializedError
      metering: WorkerMetering | null
      /** The child's pool ended the run before its worker reported: the calls it had counted. */
      hostCalls?: number
    }
  | { type: 'host-call'; id: number; request: HostCallRequest }
  /**
   * A decision the worker of live run `id` made (log, WASI, an early denial), sent as it is
   * made, before the run's next host call and its result; at most `liveDecisionCap` a run.
   */
  | { type: 'decision'; id: number; decision: Decision }
  /** A component sent with `load` is compiled (or failed to): later runs need no load grace. */
  | { type: 'loaded'; key: string }

/** One frame around an encoded message. Copies: `payload` may be the codec's scratch buffer. */
export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length)
  out.writeUInt32LE(payload.length, 0)
  out.set(payload, 4)
  return out
}

/**
 * Splits a byte stream into frames. `push` throws a RangeError on a frame above the limit; the
 * frame handed to `onFrame` may be a view of the chunk, valid only during the call.
 */
export class FrameReader {
  readonly #maxFrameBytes: number
  readonly #onFrame: (frame: Uint8Array) => void
  readonly #header = Buffer.alloc(4)
  #headerBytes = 0
  #frame: Buffer | undefined
  #filled = 0

  constructor(maxFrameBytes: number, onFrame: (frame: Uint8Array) => void) {
    this.#maxFrameBytes = maxFrameBytes
    this.#onFrame = onFrame
  }

  push(chunk: Buffer): void {
    let at = 0
    while (at < chunk.length) {
      if (this.#frame === undefined) {
        let length: number
        if (this.#headerBytes === 0 && chunk.length - at >= 4) {
          length = chunk.readUInt32LE(at)
          at += 4
        } else {
          const take = Math.min(4 - this.#headerBytes, chunk.length - at)
          chunk.copy(this.#header, this.#headerBytes, at, at + take)
          this.#headerBytes += take
          at += take
          if (this.#headerBytes < 4) {
            return
          }
          this.#headerBytes = 0
          length = this.#header.readUInt32LE(0)
        }
        if (length > this.#maxFrameBytes) {
          throw new RangeError(`a frame of ${length} bytes is above the limit`)
        }
        if (chunk.length - at >= length) {
          this.#onFrame(chunk.subarray(at, at + length))
          at += length
          continue
        }
        this.#frame = Buffer.allocUnsafe(length)
        this.#filled = 0
      }
      const take = Math.min(this.#frame.length - this.#filled, chunk.length - at)
      chunk.copy(this.#frame, this.#filled, at, at + take)
      this.#filled += take
      at += take
      if (this.#filled === this.#frame.length) {
        const done = this.#frame
        this.#frame = undefined
        this.#onFrame(done)
      }
    }
  }
}

/** What a child message is checked against: the run it names must be in flight. */
export interface RunBounds {
  limits: ResolvedLimits
}

/**
 * Check a decoded child message. Returns a fresh copy holding only the expected fields, or
 * undefined for anything else. `runOf` names the in-flight run of an id (undefined: unknown).
 */
export function parseFromChild(
  value: unknown,
  runOf: (id: number) => RunBounds | undefined,
): FromChild | undefined {
  if (!isRecord(value)) {
    return undefined
  }
  switch (value.type) {
    case 'ready':
      return isCount(value.version) ? { type: 'ready', version: value.version } : undefined
    case 'loaded':
      return typeof value.key === 'string' ? { type: 'loaded', key: value.key } : undefined
    case 'host-call': {
      const run = isCount(value.id) ? runOf(value.id) : undefined
      const request = value.request
      if (!run || !isRecord(request)) {
        return undefined
      }
      const { call, capability, fn, args } = request
      if (
        !isCount(call) ||
        call < 1 ||
        call > run.limits.hostCalls ||
        typeof capability !== 'string' ||
        typeof fn !== 'string' ||
        !Array.isArray(args)
      ) {
        return undefined
      }
      return { type: 'host-call', id: value.id as number, request: { call, capability, fn, args } }
    }
    case 'decision': {
      const decision =
        isCount(value.id) && runOf(value.id) ? parseDecision(value.decision) : undefined
      return decision && { type: 'decision', id: value.id as number, decision }
    }
    case 'result': {
      const run = isCount(value.id) ? runOf(value.id) : undefined
      if (!run || !isCount(value.replacements)) {
        return undefined
      }
      const id = value.id as number
      const replacements = value.replacements
      if (value.ok === true) {
        const metering = parseMetering(value.metering, run.limits)
        if (!metering || (value.outcome !== 'ok' && value.outcome !== 'err')) {
          return undefined
        }
        const outcome = value.outcome
        return { type: 'result', id, replacements, ok: true, outcome, value: value.value, metering }
      }
      if (value.ok === false) {
        const error = parseError(value.error)
        const metering = value.metering === null ? null : parseMetering(value.metering, run.limits)
        if (!error || metering === undefined) {
          return undefined
        }
        const { hostCalls } = value
        if (
          hostCalls !== undefined &&
          !(isCount(hostCalls) && hostCalls <= run.limits.hostCalls + 1)
        ) {
          return undefined
        }
        return {
          type: 'result',
          id,
          replacements,
          ok: false,
          error,
          metering,
          ...(hostCalls === undefined ? {} : { hostCalls: hostCalls as number }),
        }
      }
      return undefined
    }
    default:
      return undefined
  }
}

function parseError(value: unknown): SerializedError | undefined {
  if (!isRecord(value) || !isWardenErrorCode(value.code) || typeof value.message !== 'string') {
    return undefined
  }
  return { code: value.code, message: value.message }
}

const LEVELS: ReadonlySet<unknown> = new Set(['debug', 'info', 'warn', 'error'])

/** The worker's counters, within what the run's limits allow it to have produced. */
function parseMetering(value: unknown, limits: ResolvedLimits): WorkerMetering | undefined {
  if (!isRecord(value)) {
    return undefined
  }
  const { fuelUsed, memoryPeakBytes, hostCalls, logs, logsDropped, decisions } = value
  if (
    !isCount(fuelUsed) ||
    fuelUsed > limits.fuel ||
    !isCount(memoryPeakBytes) ||
    !isCount(hostCalls) ||
    !isCount(logsDropped) ||
    !Array.isArray(logs) ||
    logs.length > limits.logLines ||
    !Array.isArray(decisions) ||
    decisions.length > limits.hostCalls + 1
  ) {
    return undefined
  }
  const lines: LogLine[] = []
  let logBytes = 0
  for (const line of logs) {
    if (!isRecord(line) || !LEVELS.has(line.level) || typeof line.message !== 'string') {
      return undefined
    }
    logBytes += Buffer.byteLength(line.message)
    if (logBytes > limits.logBytes) {
      return undefined
    }
    lines.push({ level: line.level as LogLine['level'], message: line.message })
  }
  const checked: Decision[] = []
  for (const d of decisions) {
    const decision = parseDecision(d)
    if (!decision) {
      return undefined
    }
    checked.push(decision)
  }
  return { fuelUsed, memoryPeakBytes, hostCalls, logs: lines, logsDropped, decisions: checked }
}

function parseDecision(value: unknown): Decision | undefined {
  if (
    !isRecord(value) ||
    !isCount(value.call) ||
    typeof value.capability !== 'string' ||
    typeof value.fn !== 'string' ||
    (value.decision !== 'allow' && value.decision !== 'deny')
  ) {
    return undefined
  }
  const out: Decision = {
    call: value.call,
    capability: value.capability,
    fn: value.fn,
    decision: value.decision,
  }
  for (const key of ['reason', 'target'] as const) {
    if (value[key] !== undefined) {
      if (typeof value[key] !== 'string') {
        return undefined
      }
      out[key] = value[key]
    }
  }
  for (const key of ['durationMs', 'bytesOut', 'bytesIn'] as const) {
    if (value[key] !== undefined) {
      if (typeof value[key] !== 'number' || !(value[key] >= 0) || !Number.isFinite(value[key])) {
        return undefined
      }
      out[key] = value[key]
    }
  }
  return out
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Uint8Array)
  )
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0
}
