/**
 * One end of the shared channel between the pool (main thread) and a sandbox worker: the
 * framing both sides use, written once. The layout and the state machine are in
 * `protocol.ts` (`CHANNEL`).
 *
 * - `send` puts a payload in the area (or hands it to a message when it is too large), sets
 *   LENGTH and STATE, and wakes the other side.
 * - `read` checks LENGTH against the area and decodes. It throws on anything out of bounds or
 *   undecodable: the pool reads what a worker wrote, and retires a worker for that.
 * - `watch` and `waitFor` watch STATE for a bounded time before a side parks: a parked vCPU
 *   wakes slowly on this VM (~40 µs per futex or event-loop wake-up when the machine is idle),
 *   and an answer that is due soon is cheaper to catch awake, in time and in CPU. A
 *   {@link Spinner} bounds it and backs off after a miss; the pool says when there is a vCPU
 *   to spare for it (`CHANNEL.ROOMY`). Figures behind the bounds: bench/README.md, issue 8.
 */
import { performance } from 'node:perf_hooks'
import { decode, encode } from './codec.js'
import { CHANNEL } from './protocol.js'

/** What {@link Channel.read} returns when the payload came by message (LENGTH_ON_PORT). */
export const ON_PORT: unique symbol = Symbol('payload on port')

/**
 * How long each side watches the channel before it parks, in µs. `@internal`: exported so
 * that bench/ can compare settings; a pool reads them when it starts.
 */
export const SPIN = {
  /** Worker, after posting a host call: the broker's answer is due in a few µs. */
  response: 100,
  /** Worker, after posting a result: when runs queue, the next job is due soon. */
  job: 100,
  /** Main thread, after dispatching a run of a component whose runs have been tiny. */
  run: 150,
  /** Main thread, after answering a host call: the next call or the result is due soon. */
  call: 50,
}

/** Watches skipped after one that missed. */
const BACKOFF = 16

/**
 * A bounded, self-correcting spin: `us` per watch, and after a watch that missed (the other
 * side did not answer in time), the next {@link BACKOFF} watches are skipped. A late answer
 * still counts: it usually means the other side had parked, and it is awake now.
 *
 * @example
 * const spinner = new Spinner(SPIN.response)
 * channel.waitFor(stateSet(CHANNEL.RESPONSE), spinner)
 */
export class Spinner {
  readonly us: number
  #skip = 0

  constructor(us: number) {
    this.us = us
  }

  /** µs to watch now: 0 while backing off. */
  next(): number {
    if (this.#skip > 0) {
      this.#skip--
      return 0
    }
    return this.us
  }

  /** The outcome of a watch of {@link next} µs. */
  learn(hit: boolean): void {
    this.#skip = hit ? 0 : BACKOFF
  }
}

/** A set of STATE values, as bits: `stateSet(CHANNEL.REQUEST, CHANNEL.RESULT)`. */
export function stateSet(...states: number[]): number {
  let mask = 0
  for (const state of states) {
    mask |= 1 << state
  }
  return mask
}

const now = performance.now.bind(performance)

/**
 * A view of one channel: header and area of a SharedArrayBuffer.
 *
 * @example
 * const channel = new Channel(Channel.allocate(1 << 20))
 * channel.send(CHANNEL.JOB, job, () => port.postMessage(job))
 */
export class Channel {
  readonly buffer: SharedArrayBuffer
  readonly header: Int32Array
  readonly area: Uint8Array

  /** A SharedArrayBuffer for a channel whose area holds `areaBytes` bytes. */
  static allocate(areaBytes: number): SharedArrayBuffer {
    return new SharedArrayBuffer(CHANNEL.HEADER_BYTES + areaBytes)
  }

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer
    this.header = new Int32Array(buffer, 0, CHANNEL.HEADER_BYTES / 4)
    this.area = new Uint8Array(buffer, CHANNEL.HEADER_BYTES)
  }

  /** The current STATE. */
  get state(): number {
    return Atomics.load(this.header, CHANNEL.STATE)
  }

  /** Set STATE without waking anyone: a step the other side does not wait for. */
  settle(state: number): void {
    Atomics.store(this.header, CHANNEL.STATE, state)
  }

  /**
   * Encode `value` for the other side, set STATE to `state` and wake it. A payload larger than
   * the area goes to `overflow`, which sends it by message, and LENGTH says LENGTH_ON_PORT;
   * with no `overflow`, nothing is written and `send` returns false.
   */
  send(
    state: number,
    value: unknown,
    overflow?: (payload: Uint8Array) => void,
    options?: { native?: boolean },
  ): boolean {
    const payload = encode(value, options)
    if (payload.length <= this.area.length) {
      this.area.set(payload)
      Atomics.store(this.header, CHANNEL.LENGTH, payload.length)
    } else if (overflow) {
      overflow(payload)
      Atomics.store(this.header, CHANNEL.LENGTH, CHANNEL.LENGTH_ON_PORT)
    } else {
      return false
    }
    Atomics.store(this.header, CHANNEL.STATE, state)
    Atomics.notify(this.header, CHANNEL.STATE)
    return true
  }

  /**
   * The payload the other side wrote, decoded; {@link ON_PORT} when it came by message.
   * Throws a RangeError on a LENGTH outside the area and a TypeError on bytes that do not decode.
   */
  read(): unknown {
    const length = Atomics.load(this.header, CHANNEL.LENGTH)
    if (length === CHANNEL.LENGTH_ON_PORT) {
      return ON_PORT
    }
    if (!Number.isInteger(length) || length < 0 || length > this.area.length) {
      throw new RangeError('bad length on the channel')
    }
    return decode(this.area.subarray(0, length))
  }

  /**
   * Watch STATE until it is one of `states` (see {@link stateSet}), for at most what `spinner`
   * allows now, and tell it how that went. True when STATE got there.
   */
  watch(states: number, spinner: Spinner): boolean {
    let state = Atomics.load(this.header, CHANNEL.STATE)
    if ((1 << state) & states) {
      return true
    }
    const us = spinner.next()
    if (us <= 0) {
      return false
    }
    // NB: the clock is read every 64 loads: a read costs 30–500 ns on this VM, a load ~2.
    const end = now() + us / 1000
    for (;;) {
      for (let i = 0; i < 64; i++) {
        state = Atomics.load(this.header, CHANNEL.STATE)
        if ((1 << state) & states) {
          spinner.learn(true)
          return true
        }
      }
      if (now() >= end) {
        spinner.learn(false)
        return false
      }
    }
  }

  /**
   * Block this thread until STATE is one of `states`, or for at most `timeoutMs`: watch first
   * (see {@link watch}), then park on the futex. Returns the STATE it saw last (one of `states`
   * unless the time ran out). Worker side only: the main thread never blocks.
   */
  waitFor(states: number, spinner?: Spinner, timeoutMs = Number.POSITIVE_INFINITY): number {
    if (spinner) {
      this.watch(states, spinner)
    }
    const end = timeoutMs === Number.POSITIVE_INFINITY ? timeoutMs : now() + timeoutMs
    let state = Atomics.load(this.header, CHANNEL.STATE)
    while (!((1 << state) & states)) {
      const left = end === Number.POSITIVE_INFINITY ? end : end - now()
      if (left <= 0) {
        break
      }
      Atomics.wait(this.header, CHANNEL.STATE, state, left)
      state = Atomics.load(this.header, CHANNEL.STATE)
    }
    return state
  }
}
