/**
 * The safe WASI 0.2.x baseline, answered synchronously inside the sandbox worker. Nothing here
 * reaches the host: no file, socket, environment variable, argument or real stdin. It replaces
 * jco's preview2-shim, which would hand the guest the host's authority.
 *
 * Object shapes follow what jco 1.11.2 glue expects (checked against preview2-shim 0.25.0):
 * resources are classes the glue checks with `instanceof` and calls camelCase methods on;
 * `result<_, stream-error>` errors are thrown as `{ payload: { tag: 'closed' } }`; any thrown
 * `Error` is rethrown by the glue and ends the run (a trap).
 *
 * Time does not pass for pollables: every pollable is ready at once, so `poll` returns every
 * index and a monotonic-clock subscription fires immediately. A guest cannot sleep or block;
 * one that spins on the clock instead burns its own fuel and deadline.
 *
 * The classes are module-level but hold no shared state; every stream, pollable and buffer
 * belongs to one run. Their private fields double as brand checks: the glue makes a bare
 * `Object.create(Class.prototype)` for a handle it does not know, and any method that touches
 * a private field on such an object throws a `TypeError`, which traps the guest.
 */
import { getRandomValues } from 'node:crypto'
import { hrtime } from 'node:process'
import { WardenError } from '../../core/errors.js'
import { MAX_LINE_BYTES } from '../logging/descriptor.js'
import { keepLogLine, logBudgetSpent } from '../logging/worker.js'
import type { WorkerRunState } from '../types.js'

/** Most bytes one `get-random-bytes` (or insecure) call may ask for; more traps the guest. */
export const MAX_RANDOM_BYTES = 1024 * 1024

/**
 * Most random bytes one run (or one prepared instance) may draw in all; more traps the guest.
 * A call costs the guest a few fuel but the host ~1 ms of CPU per MiB, work the fuel does not
 * pace: unbounded, a guest drawing in a loop went minutes between two fuel checks, past its
 * deadline and the pool's grace (seventh outside attack).
 */
export const MAX_RANDOM_BYTES_PER_RUN = 16 * 1024 * 1024

/** Bytes `check-write` grants on every call. */
export const WRITE_PERMIT = 64 * 1024

/** Most bytes `blocking-write-and-flush` accepts, as WASI 0.2 specifies. */
export const MAX_BLOCKING_WRITE = 4096

/** Largest buffer `crypto.getRandomValues` fills in one call. */
const RANDOM_CHUNK = 65536

/** Thrown by `wasi:cli/exit`: the guest asked to stop, with this exit status. */
export class GuestExit extends Error {
  /** 0 for `exit(ok)`, 1 for `exit(err)`, or the code given to `exit-with-code`. */
  readonly status: number

  constructor(status: number) {
    super(`the guest exited with status ${status}`)
    this.name = 'GuestExit'
    this.status = status
  }
}

/** `stream-error::closed`, in the form the glue turns into the WIT `err` case. */
function closedError(): { payload: { tag: 'closed' } } {
  return { payload: { tag: 'closed' } }
}

function guestTrap(message: string): WardenError {
  return new WardenError('guest_trap', message)
}

/** A u64 length as a number, clamped to `max` so a huge value cannot allocate. */
function lengthOf(len: bigint, max: number): number {
  return len > BigInt(max) ? max : Number(BigInt.asUintN(64, len))
}

/** `wasi:io/error.error`: never created by this baseline, present so the glue can link. */
class IoError {
  readonly #message: string

  constructor(message: string) {
    this.#message = message
  }

  toDebugString(): string {
    return this.#message
  }
}

/** `wasi:io/poll.pollable`: always ready. */
class Pollable {
  readonly #ready = true

  ready(): boolean {
    return this.#ready
  }

  block(): void {
    void this.#ready
  }
}

/** `wasi:io/poll.poll`: every pollable is ready, so every index is returned. */
function poll(list: readonly Pollable[]): Uint32Array {
  if (list.length === 0) {
    throw guestTrap('wasi:io/poll.poll was called with an empty list and would block forever')
  }
  const ready = new Uint32Array(list.length)
  for (let i = 0; i < list.length; i++) {
    list[i]!.ready()
    ready[i] = i
  }
  return ready
}

/** `wasi:io/streams.input-stream`: empty and closed; every read reports `closed`. */
class InputStream {
  #open = true

  read(_len: bigint): Uint8Array {
    return this.#closed()
  }

  blockingRead(_len: bigint): Uint8Array {
    return this.#closed()
  }

  skip(_len: bigint): bigint {
    return this.#closed()
  }

  blockingSkip(_len: bigint): bigint {
    return this.#closed()
  }

  subscribe(): Pollable {
    void this.#open
    return new Pollable()
  }

  [Symbol.dispose](): void {
    this.#open = false
  }

  #closed(): never {
    void this.#open
    throw closedError()
  }
}

type Sink = (bytes: Uint8Array) => void

/** `wasi:io/streams.output-stream`: writes go to a per-run sink and never block. */
class OutputStream {
  readonly #sink: Sink
  #permit = 0
  #open = true

  constructor(sink: Sink) {
    this.#sink = sink
  }

  checkWrite(): bigint {
    this.#live()
    this.#permit = WRITE_PERMIT
    return BigInt(WRITE_PERMIT)
  }

  write(contents: Uint8Array): void {
    this.#live()
    this.#take(contents.byteLength)
    this.#sink(contents)
  }

  blockingWriteAndFlush(contents: Uint8Array): void {
    this.#live()
    if (contents.byteLength > MAX_BLOCKING_WRITE) {
      throw guestTrap(`blocking-write-and-flush accepts at most ${MAX_BLOCKING_WRITE} bytes`)
    }
    this.#sink(contents)
  }

  flush(): void {
    this.#live()
  }

  blockingFlush(): void {
    this.#live()
  }

  writeZeroes(len: bigint): void {
    this.#live()
    const n = lengthOf(len, WRITE_PERMIT + 1)
    this.#take(n)
    this.#sink(new Uint8Array(n))
  }

  blockingWriteZeroesAndFlush(len: bigint): void {
    this.#live()
    const n = lengthOf(len, MAX_BLOCKING_WRITE + 1)
    if (n > MAX_BLOCKING_WRITE) {
      throw guestTrap(`blocking-write-zeroes-and-flush accepts at most ${MAX_BLOCKING_WRITE} bytes`)
    }
    this.#sink(new Uint8Array(n))
  }

  splice(src: InputStream, len: bigint): bigint {
    this.#live()
    const bytes = src.read(BigInt(lengthOf(len, WRITE_PERMIT)))
    this.#sink(bytes)
    return BigInt(bytes.byteLength)
  }

  blockingSplice(src: InputStream, len: bigint): bigint {
    this.#live()
    const bytes = src.blockingRead(BigInt(lengthOf(len, WRITE_PERMIT)))
    this.#sink(bytes)
    return BigInt(bytes.byteLength)
  }

  subscribe(): Pollable {
    void this.#open
    return new Pollable()
  }

  /** Drops this handle only: stdout's line buffer outlives it, and a partial line is kept. */
  [Symbol.dispose](): void {
    this.#open = false
  }

  #live(): void {
    if (!this.#open) {
      throw closedError()
    }
  }

  #take(n: number): void {
    if (n > this.#permit) {
      throw guestTrap('a write exceeded the permit returned by check-write')
    }
    this.#permit -= n
  }
}

/** `wasi:cli/terminal-input.terminal-input`: never handed out. */
class TerminalInput {}

/** `wasi:cli/terminal-output.terminal-output`: never handed out. */
class TerminalOutput {}

/** What a line sink does with lines: keep one, tell whether any more can be kept, drop some. */
interface LineLog {
  keep(line: string): void
  spent(): boolean
  drop(lines: number): void
}

/** The run's log at `level`, as a {@link LineLog}. */
function lineLog(state: WorkerRunState, level: 'info' | 'error'): LineLog {
  return {
    keep: (line) => void keepLogLine(state, level, line),
    spent: () => logBudgetSpent(state),
    drop: (lines) => {
      state.logsDropped += lines
    },
  }
}

/**
 * A sink that decodes UTF-8 and hands each complete line (split on `\n`, a trailing `\r`
 * dropped) to the log. A partial line waits for its newline; it is capped so a guest that never
 * writes one cannot grow it: the log cuts lines at {@link MAX_LINE_BYTES} anyway, and each
 * UTF-16 unit is at least one UTF-8 byte, so the kept prefix is what the log would keep.
 * Once the log can keep no more, lines are only counted, never made: a 64 KiB write of
 * newlines was 65,536 lines made and dropped one by one, seconds of unpaced work over a run's
 * thousand writes (twelfth outside attack).
 */
function lineSink(log: LineLog): Sink {
  const decoder = new TextDecoder()
  let pending = ''
  return (bytes) => {
    if (log.spent()) {
      pending = ''
      log.drop(newlinesIn(bytes))
      return
    }
    const text = pending + decoder.decode(bytes, { stream: true })
    let start = 0
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const line = text.slice(start, nl)
      log.keep(line.endsWith('\r') ? line.slice(0, -1) : line)
      start = nl + 1
      if (log.spent()) {
        pending = ''
        log.drop(newlinesIn(text, start))
        return
      }
    }
    pending = text.slice(start, start + MAX_LINE_BYTES + 1)
  }
}

/** How many `\n` are in `bytes`, or in `text` from `start`. */
function newlinesIn(input: Uint8Array | string, start = 0): number {
  let n = 0
  if (typeof input === 'string') {
    for (let i = start; i < input.length; i++) {
      n += input.charCodeAt(i) === 10 ? 1 : 0
    }
  } else {
    for (let i = start; i < input.length; i++) {
      n += input[i] === 10 ? 1 : 0
    }
  }
  return n
}

function randomBytes(len: bigint, budget: { left: number }): Uint8Array {
  if (len > BigInt(MAX_RANDOM_BYTES)) {
    throw guestTrap(`a random-bytes call may ask for at most ${MAX_RANDOM_BYTES} bytes`)
  }
  if (len > BigInt(budget.left)) {
    budget.left = 0
    throw guestTrap(`a run may draw at most ${MAX_RANDOM_BYTES_PER_RUN} random bytes`)
  }
  budget.left -= Number(len)
  const bytes = new Uint8Array(Number(len))
  for (let offset = 0; offset < bytes.length; offset += RANDOM_CHUNK) {
    getRandomValues(bytes.subarray(offset, offset + RANDOM_CHUNK))
  }
  return bytes
}

function randomU64(): bigint {
  return getRandomValues(new BigUint64Array(1))[0]!
}

/**
 * Called for every write to stdout or stderr, before its bytes are taken: the sandbox counts it
 * as a host call (it may end the run) and records one decision for it.
 */
export type StreamWriteHook = (stream: 'wasi:cli/stdout' | 'wasi:cli/stderr', bytes: number) => void

/**
 * Fuel each call of a WASI function costs the guest, on top of the call's own instructions: a
 * call costs the host 0.2–3 µs (a clock read, `getRandomValues`, a BigInt), work the fuel does
 * not otherwise pace. Without it a loop of `get-random-u64` ran ~1 s between two fuel checks,
 * past its deadline and the pool's grace, so its worker was killed on every run (ninth outside
 * attack). At 1,000 a 2^20-fuel slice holds ~1,000 calls, a few ms of host work. Methods of the
 * resources (streams, pollables) are not charged: a write is a host call (counted against the
 * run's limit), the rest cost ~0.1–0.3 µs.
 */
export const WASI_CALL_FUEL = 1_000

/** Default resolution of a guest's monotonic clock: 100 µs, in nanoseconds. */
export const DEFAULT_CLOCK_RESOLUTION_NS = 100_000

/** Options of {@link createWasiImports}. */
export interface WasiOptions {
  /**
   * Resolution of the monotonic clock in nanoseconds (default 100 µs). A guest should not time
   * host calls to the microsecond, nor learn the host's uptime: its clock starts at 0 for each
   * run and ticks in steps of this size.
   */
  clockResolutionNs?: number
  /**
   * Where the monotonic clock starts, in `hrtime` nanoseconds: a holder the sandbox moves to
   * the start of the run when the instance was made before its run (a prepared instance), so
   * that its clock still starts at 0 when the run does. Default: a holder set when this is called.
   */
  epoch?: { ns: bigint }
  /**
   * Charges the run `fuel` ({@link WASI_CALL_FUEL} per call of a function): the sandbox takes it
   * from the guest's fuel, which the guest reloads when the call returns. Default: nothing.
   */
  charge?: (fuel: number) => void
}

/**
 * Create the WASI baseline import objects for one run, keyed by interface without version.
 * Stdout lines are logged at `info`, stderr lines at `error`, both under the run's log budget;
 * every write is reported to `onWrite` (one host call and one audit decision per write).
 * The monotonic clock starts at 0 when this is called, in coarse steps; the wall clock is
 * rounded to the millisecond.
 */
export function createWasiImports(
  state: WorkerRunState,
  onWrite: StreamWriteHook = () => {},
  options: WasiOptions = {},
): Record<string, object> {
  const step = BigInt(
    Math.max(1, Math.floor(options.clockResolutionNs ?? DEFAULT_CLOCK_RESOLUTION_NS)),
  )
  const epoch = options.epoch ?? { ns: hrtime.bigint() }
  const stdoutLines = lineSink(lineLog(state, 'info'))
  const stderrLines = lineSink(lineLog(state, 'error'))
  const stdout: Sink = (bytes) => {
    onWrite('wasi:cli/stdout', bytes.byteLength)
    stdoutLines(bytes)
  }
  const stderr: Sink = (bytes) => {
    onWrite('wasi:cli/stderr', bytes.byteLength)
    stderrLines(bytes)
  }
  let seed: readonly [bigint, bigint] | undefined
  const random = { left: MAX_RANDOM_BYTES_PER_RUN }
  const drawRandom = (len: bigint) => randomBytes(len, random)

  return charged(options.charge, {
    'wasi:clocks/wall-clock': Object.freeze({
      now() {
        const ms = Date.now()
        return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1_000_000 }
      },
      resolution() {
        return { seconds: 0n, nanoseconds: 1_000_000 }
      },
    }),
    'wasi:clocks/monotonic-clock': Object.freeze({
      now(): bigint {
        const elapsed = hrtime.bigint() - epoch.ns
        return elapsed - (elapsed % step)
      },
      resolution(): bigint {
        return step
      },
      /** Ready at once: the guest cannot wait for an instant. */
      subscribeInstant(_when: bigint): Pollable {
        return new Pollable()
      },
      /** Ready at once: the guest cannot wait for a duration. */
      subscribeDuration(_when: bigint): Pollable {
        return new Pollable()
      },
    }),
    'wasi:random/random': Object.freeze({
      getRandomBytes: drawRandom,
      getRandomU64: randomU64,
    }),
    'wasi:random/insecure': Object.freeze({
      getInsecureRandomBytes: drawRandom,
      getInsecureRandomU64: randomU64,
    }),
    'wasi:random/insecure-seed': Object.freeze({
      insecureSeed(): [bigint, bigint] {
        seed ??= [randomU64(), randomU64()]
        return [seed[0], seed[1]]
      },
    }),
    'wasi:cli/environment': Object.freeze({
      getEnvironment(): [string, string][] {
        return []
      },
      getArguments(): string[] {
        return []
      },
      initialCwd(): string | undefined {
        return undefined
      },
    }),
    'wasi:cli/exit': Object.freeze({
      exit(status: { tag: 'ok' | 'err' }): never {
        throw new GuestExit(status.tag === 'err' ? 1 : 0)
      },
      exitWithCode(statusCode: number): never {
        throw new GuestExit(statusCode)
      },
    }),
    'wasi:cli/stdin': Object.freeze({
      getStdin(): InputStream {
        return new InputStream()
      },
    }),
    'wasi:cli/stdout': Object.freeze({
      getStdout(): OutputStream {
        return new OutputStream(stdout)
      },
    }),
    'wasi:cli/stderr': Object.freeze({
      getStderr(): OutputStream {
        return new OutputStream(stderr)
      },
    }),
    'wasi:cli/terminal-input': Object.freeze({ TerminalInput }),
    'wasi:cli/terminal-output': Object.freeze({ TerminalOutput }),
    'wasi:cli/terminal-stdin': Object.freeze({
      getTerminalStdin(): TerminalInput | undefined {
        return undefined
      },
    }),
    'wasi:cli/terminal-stdout': Object.freeze({
      getTerminalStdout(): TerminalOutput | undefined {
        return undefined
      },
    }),
    'wasi:cli/terminal-stderr': Object.freeze({
      getTerminalStderr(): TerminalOutput | undefined {
        return undefined
      },
    }),
    'wasi:io/error': Object.freeze({ Error: IoError }),
    'wasi:io/poll': Object.freeze({ Pollable, poll }),
    'wasi:io/streams': Object.freeze({ InputStream, OutputStream }),
  })
}

/**
 * The interfaces with every function (a camelCase member; PascalCase members are resource
 * classes, left as they are) charging {@link WASI_CALL_FUEL} before it runs.
 */
function charged(
  charge: ((fuel: number) => void) | undefined,
  interfaces: Record<string, Readonly<Record<string, unknown>>>,
): Record<string, object> {
  if (charge === undefined) {
    return interfaces
  }
  const out: Record<string, object> = {}
  for (const [name, members] of Object.entries(interfaces)) {
    const wrapped: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(members)) {
      wrapped[key] =
        typeof value === 'function' && /^[a-z]/.test(key)
          ? (...args: unknown[]) => {
              charge(WASI_CALL_FUEL)
              return (value as (...a: unknown[]) => unknown)(...args)
            }
          : value
    }
    out[name] = Object.freeze(wrapped)
  }
  return out
}
