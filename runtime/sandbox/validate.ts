/**
 * The pool's checks on what a worker sends. A worker runs guest code: if anything there were
 * ever subverted, its messages are forged. The main thread trusts none of them: a message that
 * is not exactly one of the protocol's shapes retires the worker, and its run ends `internal`.
 *
 * Hand-written rather than a schema library: these checks sit on every run's hot path.
 */
import { WARDEN_ERROR_CODES } from '../errors.js'
import type {
  Decision,
  FromWorker,
  HostCallRequest,
  LiveDecision,
  WorkerMetering,
} from './protocol.js'

/** Most log lines and decisions one run may report (the worker's own budgets are lower). */
const MAX_RECORDS = 1_000_000

type Obj = Record<string, unknown>

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function optional(value: unknown, type: 'string' | 'number'): boolean {
  return value === undefined || typeof value === type
}

const LEVELS = new Set(['debug', 'info', 'warn', 'error'])
const CODES = new Set<string>(WARDEN_ERROR_CODES)

function isMetering(value: unknown): value is WorkerMetering {
  if (
    !isObject(value) ||
    !isCount(value.fuelUsed) ||
    !isCount(value.memoryPeakBytes) ||
    !isCount(value.hostCalls) ||
    !isCount(value.logsDropped) ||
    !Array.isArray(value.logs) ||
    !Array.isArray(value.decisions) ||
    value.logs.length > MAX_RECORDS ||
    value.decisions.length > MAX_RECORDS
  ) {
    return false
  }
  for (const line of value.logs as unknown[]) {
    if (!isObject(line) || !LEVELS.has(line.level as string) || typeof line.message !== 'string') {
      return false
    }
  }
  return (value.decisions as unknown[]).every(isDecision)
}

function isDecision(d: unknown): d is Decision {
  return (
    isObject(d) &&
    isCount(d.call) &&
    typeof d.capability === 'string' &&
    typeof d.fn === 'string' &&
    (d.decision === 'allow' || d.decision === 'deny') &&
    optional(d.reason, 'string') &&
    optional(d.target, 'string') &&
    optional(d.durationMs, 'number') &&
    optional(d.bytesOut, 'number') &&
    optional(d.bytesIn, 'number')
  )
}

function isSerializedError(value: unknown): boolean {
  return isObject(value) && CODES.has(value.code as string) && typeof value.message === 'string'
}

/** `msg` if it is a well-formed {@link FromWorker}, else `undefined`. */
export function checkFromWorker(msg: unknown): FromWorker | undefined {
  if (!isObject(msg)) {
    return undefined
  }
  switch (msg.type) {
    case 'ready':
      return msg.tid === undefined || isCount(msg.tid) ? (msg as FromWorker) : undefined
    case 'host-call-large':
      return msg.bytes instanceof Uint8Array ? (msg as FromWorker) : undefined
    case 'result': {
      if (!isCount(msg.id) || !isMetering(msg.metering)) {
        return undefined
      }
      if (msg.ok === true) {
        return msg.outcome === 'ok' || msg.outcome === 'err' ? (msg as FromWorker) : undefined
      }
      return msg.ok === false && isSerializedError(msg.error) ? (msg as FromWorker) : undefined
    }
    default:
      return undefined
  }
}

/** `request` if it is a well-formed {@link HostCallRequest}, else `undefined`. */
export function checkHostCallRequest(request: unknown): HostCallRequest | undefined {
  return isObject(request) &&
    isCount(request.call) &&
    typeof request.capability === 'string' &&
    typeof request.fn === 'string' &&
    Array.isArray(request.args)
    ? (request as unknown as HostCallRequest)
    : undefined
}

/** `msg` if it is a well-formed {@link LiveDecision}, else `undefined`. */
export function checkLiveDecision(msg: unknown): LiveDecision | undefined {
  return isObject(msg) && isCount(msg.id) && isDecision(msg.decision)
    ? (msg as unknown as LiveDecision)
    : undefined
}
