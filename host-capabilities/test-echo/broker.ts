/**
 * The broker half of `warden:test/echo`. Its arguments come from a worker, so every shape is
 * checked here rather than trusted: a malformed call fails with `HostCallError('invalid')`.
 */
import { HostCallError } from '../types.js'
import type { BrokerCapability, RunContext } from '../types.js'
import { testEchoDescriptor } from './descriptor.js'

/** The WIT `item` record as jco represents it. */
export interface EchoItem {
  name: string
  tags: string[]
  score: number | undefined
  blob: Uint8Array
}

/** The WIT `echo-error` variant as jco represents it. */
export type EchoErrorPayload = { tag: 'refused'; val: string } | { tag: 'broken' }

/** Most bytes one `bytes(size)` call may ask for. */
export const MAX_ECHO_BYTES = 64 * 1024 * 1024

/** Byte `i` of the `bytes` pattern. */
export function echoPatternByte(i: number): number {
  return (i * 31 + 7) & 0xff
}

const ITEM_FIELDS = new Set(['name', 'tags', 'score', 'blob'])

/**
 * A `HostCallError` carrying an `echo-error` instead of a `host-error`. `HostCallError` types
 * its payload as `host-error`, but the bridge carries any payload as-is to the guest, whose
 * glue lowers it into the function's own `err` type: here `echo-error`.
 */
export function echoError(payload: EchoErrorPayload): HostCallError {
  const error = new HostCallError('invalid', payload.tag === 'refused' ? payload.val : payload.tag)
  Object.defineProperty(error, 'payload', { value: payload, enumerable: true })
  return error
}

function invalid(message: string): HostCallError {
  return new HostCallError('invalid', message)
}

function isU32(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff
}

/** Check one `item` from the worker and return a fresh copy with exactly the WIT fields. */
function parseItem(value: unknown, where: string): EchoItem {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${where} is not a record`)
  }
  for (const key of Object.keys(value)) {
    if (!ITEM_FIELDS.has(key)) {
      throw invalid(`${where} has an unknown field`)
    }
  }
  const { name, tags, score, blob } = value as Record<string, unknown>
  if (typeof name !== 'string') {
    throw invalid(`${where}.name is not a string`)
  }
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
    throw invalid(`${where}.tags is not a list of strings`)
  }
  if (score !== undefined && !isU32(score)) {
    throw invalid(`${where}.score is not a u32`)
  }
  if (!(blob instanceof Uint8Array)) {
    throw invalid(`${where}.blob is not a list<u8>`)
  }
  return { name, tags: [...tags], score, blob: blob.slice() }
}

function arity(args: unknown[], n: number, fn: string): void {
  if (args.length !== n) {
    throw invalid(`${fn} takes ${n} argument${n === 1 ? '' : 's'}`)
  }
}

function waitForAbort(signal: AbortSignal): Promise<undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(undefined)
    } else {
      signal.addEventListener('abort', () => resolve(undefined), { once: true })
    }
  })
}

/**
 * The TEST-ONLY echo capability. Give it to `createRuntime({ brokerCapabilities: [...] })`.
 *
 * @example
 * const rt = await startTestRuntime({ brokerCapabilities: [createTestEchoCapability()] })
 */
export function createTestEchoCapability(): BrokerCapability {
  return {
    descriptor: testEchoDescriptor,
    handle(fn: string, args: unknown[], ctx: RunContext): unknown {
      if (!Array.isArray(args)) {
        throw invalid('arguments are not a list')
      }
      switch (fn) {
        case 'echoItem':
          arity(args, 1, fn)
          return parseItem(args[0], 'item')
        case 'echoList': {
          arity(args, 1, fn)
          const items = args[0]
          if (!Array.isArray(items)) {
            throw invalid('items is not a list')
          }
          return items.map((item, i) => parseItem(item, `items[${i}]`))
        }
        case 'bytes': {
          arity(args, 1, fn)
          const size = args[0]
          if (!isU32(size) || size > MAX_ECHO_BYTES) {
            throw invalid(`size is not a u32 of at most ${MAX_ECHO_BYTES}`)
          }
          const out = new Uint8Array(size)
          for (let i = 0; i < size; i++) {
            out[i] = echoPatternByte(i)
          }
          return out
        }
        case 'fail': {
          arity(args, 1, fn)
          const reason = args[0]
          if (typeof reason !== 'string') {
            throw invalid('reason is not a string')
          }
          throw echoError({ tag: 'refused', val: reason })
        }
        case 'hang':
          arity(args, 0, fn)
          // Answers only once the run is over; by then nobody is listening.
          return waitForAbort(ctx.signal)
        default:
          throw invalid('unknown function')
      }
    },
  }
}
