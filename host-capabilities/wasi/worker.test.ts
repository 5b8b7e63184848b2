import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { componentEmbed, componentNew, parse, transpile } from '@bytecodealliance/jco'
import { WardenError } from '../../runtime/errors.js'
import { DEFAULT_LIMITS } from '../../runtime/limits/limits.js'
import type { ResolvedLimits } from '../../runtime/limits/limits.js'
import { MAX_LINE_BYTES } from '../logging/descriptor.js'
import type { WorkerRunState } from '../types.js'
import { isWasiBaselineVersion, WASI_BASELINE } from './descriptor.js'
import {
  createWasiImports,
  GuestExit,
  MAX_RANDOM_BYTES,
  MAX_RANDOM_BYTES_PER_RUN,
  WASI_CALL_FUEL,
} from './index.js'

// NB: the project's lib setting (ES2023, no DOM) has no WebAssembly types.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> }
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

/** Minimal WASI 0.2.0 WIT for the functions the test guest uses, nested in one source. */
const WIT = `
package test:app;

world app {
  import wasi:cli/stdout@0.2.0;
  import wasi:cli/stderr@0.2.0;
  import wasi:cli/stdin@0.2.0;
  import wasi:cli/environment@0.2.0;
  import wasi:cli/exit@0.2.0;
  import wasi:random/random@0.2.0;
  import wasi:random/insecure@0.2.0;
  import wasi:random/insecure-seed@0.2.0;
  import wasi:clocks/wall-clock@0.2.0;
  import wasi:clocks/monotonic-clock@0.2.0;
  import wasi:io/poll@0.2.0;
  use wasi:clocks/wall-clock@0.2.0.{datetime};

  export out: func(text: string) -> bool;
  export out-chunked: func(text: string) -> u32;
  export err: func(text: string) -> bool;
  export rand: func(n: u64) -> list<u8>;
  export rand-u64: func() -> u64;
  export insecure-rand: func(n: u64) -> list<u8>;
  export seed: func() -> tuple<u64, u64>;
  export wall: func() -> datetime;
  export mono: func() -> u64;
  export sleep-poll: func(ns: u64) -> list<u32>;
  export env: func() -> list<tuple<string, string>>;
  export args: func() -> list<string>;
  export cwd: func() -> option<string>;
  export quit: func(fail: bool);
  export read-stdin: func(len: u64) -> u32;
}

package wasi:io@0.2.0 {
  interface error {
    resource error {
      to-debug-string: func() -> string;
    }
  }
  interface poll {
    resource pollable {
      ready: func() -> bool;
      block: func();
    }
    poll: func(in: list<borrow<pollable>>) -> list<u32>;
  }
  interface streams {
    use error.{error};
    use poll.{pollable};
    variant stream-error {
      last-operation-failed(error),
      closed,
    }
    resource input-stream {
      read: func(len: u64) -> result<list<u8>, stream-error>;
    }
    resource output-stream {
      check-write: func() -> result<u64, stream-error>;
      write: func(contents: list<u8>) -> result<_, stream-error>;
      blocking-write-and-flush: func(contents: list<u8>) -> result<_, stream-error>;
      blocking-flush: func() -> result<_, stream-error>;
    }
  }
}

package wasi:cli@0.2.0 {
  interface stdout {
    use wasi:io/streams@0.2.0.{output-stream};
    get-stdout: func() -> output-stream;
  }
  interface stderr {
    use wasi:io/streams@0.2.0.{output-stream};
    get-stderr: func() -> output-stream;
  }
  interface stdin {
    use wasi:io/streams@0.2.0.{input-stream};
    get-stdin: func() -> input-stream;
  }
  interface environment {
    get-environment: func() -> list<tuple<string, string>>;
    get-arguments: func() -> list<string>;
    initial-cwd: func() -> option<string>;
  }
  interface exit {
    exit: func(status: result);
  }
}

package wasi:random@0.2.0 {
  interface random {
    get-random-bytes: func(len: u64) -> list<u8>;
    get-random-u64: func() -> u64;
  }
  interface insecure {
    get-insecure-random-bytes: func(len: u64) -> list<u8>;
    get-insecure-random-u64: func() -> u64;
  }
  interface insecure-seed {
    insecure-seed: func() -> tuple<u64, u64>;
  }
}

package wasi:clocks@0.2.0 {
  interface wall-clock {
    record datetime {
      seconds: u64,
      nanoseconds: u32,
    }
    now: func() -> datetime;
    resolution: func() -> datetime;
  }
  interface monotonic-clock {
    use wasi:io/poll@0.2.0.{pollable};
    type instant = u64;
    type duration = u64;
    now: func() -> instant;
    resolution: func() -> duration;
    subscribe-instant: func(when: instant) -> pollable;
    subscribe-duration: func(when: duration) -> pollable;
  }
}
`

/** The guest: each export calls one WASI import; scratch return areas live below 1024. */
const WAT = `(module
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:cli/stderr@0.2.0" "get-stderr" (func $get_stderr (result i32)))
  (import "wasi:cli/stdin@0.2.0" "get-stdin" (func $get_stdin (result i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush"
    (func $bwaf (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.check-write" (func $cw (param i32 i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.write" (func $w (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-flush" (func $bf (param i32 i32)))
  (import "wasi:io/streams@0.2.0" "[resource-drop]output-stream" (func $drop_out (param i32)))
  (import "wasi:io/streams@0.2.0" "[method]input-stream.read" (func $read (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.0" "[resource-drop]input-stream" (func $drop_in (param i32)))
  (import "wasi:io/poll@0.2.0" "poll" (func $poll (param i32 i32 i32)))
  (import "wasi:io/poll@0.2.0" "[resource-drop]pollable" (func $drop_poll (param i32)))
  (import "wasi:random/random@0.2.0" "get-random-bytes" (func $rand (param i64 i32)))
  (import "wasi:random/random@0.2.0" "get-random-u64" (func $rand_u64 (result i64)))
  (import "wasi:random/insecure@0.2.0" "get-insecure-random-bytes" (func $irand (param i64 i32)))
  (import "wasi:random/insecure-seed@0.2.0" "insecure-seed" (func $seed (param i32)))
  (import "wasi:clocks/wall-clock@0.2.0" "now" (func $wall (param i32)))
  (import "wasi:clocks/monotonic-clock@0.2.0" "now" (func $mono (result i64)))
  (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration"
    (func $sub_dur (param i64) (result i32)))
  (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-instant"
    (func $sub_at (param i64) (result i32)))
  (import "wasi:cli/environment@0.2.0" "get-environment" (func $env (param i32)))
  (import "wasi:cli/environment@0.2.0" "get-arguments" (func $args (param i32)))
  (import "wasi:cli/environment@0.2.0" "initial-cwd" (func $cwd (param i32)))
  (import "wasi:cli/exit@0.2.0" "exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.shr_u (local.get 3) (i32.const 16)) (i32.const 1))))))
    (local.get $p))
  (func $write_all (param $h i32) (param $ptr i32) (param $len i32) (result i32)
    (call $bwaf (local.get $h) (local.get $ptr) (local.get $len) (i32.const 16))
    (call $drop_out (local.get $h))
    (i32.eqz (i32.load8_u (i32.const 16))))
  (func (export "out") (param i32 i32) (result i32)
    (call $write_all (call $get_stdout) (local.get 0) (local.get 1)))
  (func (export "err") (param i32 i32) (result i32)
    (call $write_all (call $get_stderr) (local.get 0) (local.get 1)))
  ;; check-write, write, blocking-flush; returns the three result tags as decimal digits
  (func (export "out-chunked") (param $ptr i32) (param $len i32) (result i32)
    (local $h i32)
    (local.set $h (call $get_stdout))
    (call $cw (local.get $h) (i32.const 96))
    (call $w (local.get $h) (local.get $ptr) (local.get $len) (i32.const 112))
    (call $bf (local.get $h) (i32.const 128))
    (call $drop_out (local.get $h))
    (i32.add
      (i32.mul (i32.load8_u (i32.const 96)) (i32.const 100))
      (i32.add
        (i32.mul (i32.load8_u (i32.const 112)) (i32.const 10))
        (i32.load8_u (i32.const 128)))))
  (func (export "rand") (param i64) (result i32)
    (call $rand (local.get 0) (i32.const 32)) (i32.const 32))
  (func (export "rand-u64") (result i64) (call $rand_u64))
  (func (export "insecure-rand") (param i64) (result i32)
    (call $irand (local.get 0) (i32.const 32)) (i32.const 32))
  (func (export "seed") (result i32) (call $seed (i32.const 160)) (i32.const 160))
  (func (export "wall") (result i32) (call $wall (i32.const 48)) (i32.const 48))
  (func (export "mono") (result i64) (call $mono))
  ;; polls a duration and an instant-zero pollable, drops both, returns the ready list
  (func (export "sleep-poll") (param i64) (result i32)
    (i32.store (i32.const 64) (call $sub_dur (local.get 0)))
    (i32.store (i32.const 68) (call $sub_at (i64.const 0)))
    (call $poll (i32.const 64) (i32.const 2) (i32.const 80))
    (call $drop_poll (i32.load (i32.const 64)))
    (call $drop_poll (i32.load (i32.const 68)))
    (i32.const 80))
  (func (export "env") (result i32) (call $env (i32.const 192)) (i32.const 192))
  (func (export "args") (result i32) (call $args (i32.const 208)) (i32.const 208))
  (func (export "cwd") (result i32) (call $cwd (i32.const 224)) (i32.const 224))
  (func (export "quit") (param i32) (call $exit (local.get 0)))
  ;; reads stdin; returns result tag * 10 + stream-error tag (11 = err(closed))
  (func (export "read-stdin") (param i64) (result i32)
    (local $h i32)
    (local.set $h (call $get_stdin))
    (call $read (local.get $h) (local.get 0) (i32.const 240))
    (call $drop_in (local.get $h))
    (i32.add
      (i32.mul (i32.load8_u (i32.const 240)) (i32.const 10))
      (i32.load8_u (i32.const 244))))
)`

interface Guest {
  out(text: string): boolean
  outChunked(text: string): number
  err(text: string): boolean
  rand(n: bigint): Uint8Array
  randU64(): bigint
  insecureRand(n: bigint): Uint8Array
  seed(): [bigint, bigint]
  wall(): { seconds: bigint; nanoseconds: number }
  mono(): bigint
  sleepPoll(ns: bigint): Uint32Array
  env(): [string, string][]
  args(): string[]
  cwd(): string | undefined
  quit(fail: boolean): void
  readStdin(len: bigint): number
}

type Instantiate = (
  getCoreModule: (name: string) => object,
  imports: Record<string, object>,
  instantiateCore: (module: object, imports: object) => { exports: Record<string, unknown> },
) => Guest

let dir: string
let instantiate: Instantiate
const modules = new Map<string, object>()

beforeAll(async () => {
  const core = (await parse(WAT)) as Uint8Array
  const embedded = (await componentEmbed({
    binary: core,
    witSource: WIT,
    world: 'test:app/app',
    stringEncoding: 'utf8',
  })) as Uint8Array
  const component = (await componentNew(embedded, [])) as Uint8Array
  // NB: jco also writes .d.ts files; they are ignored.
  const { files } = await transpile(component, { name: 'x', instantiation: 'sync' })
  for (const [name, bytes] of Object.entries(files)) {
    if (name.endsWith('.wasm')) {
      modules.set(name, new Wasm.Module(bytes))
    }
  }
  dir = await mkdtemp(join(tmpdir(), 'warden-wasi-'))
  const glue = join(dir, 'x.mjs')
  await writeFile(glue, files['x.js']!)
  ;({ instantiate } = (await import(pathToFileURL(glue).href)) as { instantiate: Instantiate })
}, 60_000)

afterAll(async () => {
  if (dir) {
    await rm(dir, { recursive: true, force: true })
  }
})

function newState(limits: Partial<ResolvedLimits> = {}): WorkerRunState {
  return {
    limits: { ...DEFAULT_LIMITS, ...limits },
    hostCalls: 0,
    logs: [],
    logsDropped: 0,
    logBytes: 0,
    decisions: [],
  }
}

/** Instantiate the guest with a fresh WASI baseline over `state`, as the worker does. */
function run(state: WorkerRunState): Guest {
  return instantiate(
    (name) => modules.get(name)!,
    createWasiImports(state),
    (module, imports) => new Wasm.Instance(module, imports),
  )
}

function iface<T>(imports: Record<string, object>, name: string): T {
  return imports[name] as T
}

interface OutputStreamLike {
  checkWrite(): bigint
  write(bytes: Uint8Array): void
  blockingWriteAndFlush(bytes: Uint8Array): void
  splice(src: unknown, len: bigint): bigint
  subscribe(): { ready(): boolean }
  [Symbol.dispose](): void
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('WASI_BASELINE', () => {
  it('matches the import objects, function for function', () => {
    const imports = createWasiImports(newState())
    expect(WASI_BASELINE.map((d) => d.interface).sort()).toEqual(Object.keys(imports).sort())
    for (const d of WASI_BASELINE) {
      expect(d.side).toBe('worker')
      const keys = Object.keys(imports[d.interface]!).sort()
      expect(keys, d.interface).toEqual([...d.functions].sort())
      expect(d.versions).toContain('0.2.0')
      expect(d.versions).toContain('0.2.10')
    }
  })

  it('leaves filesystem, sockets and http out', () => {
    const names = WASI_BASELINE.map((d) => d.interface)
    expect(names.some((n) => /filesystem|sockets|http/.test(n))).toBe(false)
  })

  it('accepts any released 0.2 version and nothing else', () => {
    for (const v of ['0.2.0', '0.2.3', '0.2.10', '0.2.42']) {
      expect(isWasiBaselineVersion(v), v).toBe(true)
    }
    for (const v of ['0.1.0', '0.3.0', '0.2', '0.2.0-rc-2023-11-10', '0.2.01', '1.2.0', '']) {
      expect(isWasiBaselineVersion(v), v).toBe(false)
    }
  })
})

describe('stdout and stderr (end to end)', () => {
  it('turns stdout text into info log lines, split on newlines', () => {
    const state = newState()
    const guest = run(state)
    expect(guest.out('hello\nwor')).toBe(true)
    expect(state.logs).toEqual([{ level: 'info', message: 'hello' }])
    expect(guest.out('ld\r\n\nlast')).toBe(true)
    expect(state.logs).toEqual([
      { level: 'info', message: 'hello' },
      { level: 'info', message: 'world' },
      { level: 'info', message: '' },
    ])
  })

  it('logs stderr lines at error level, buffered apart from stdout', () => {
    const state = newState()
    const guest = run(state)
    guest.out('out-')
    guest.err('oops\n')
    guest.out('line\n')
    expect(state.logs).toEqual([
      { level: 'error', message: 'oops' },
      { level: 'info', message: 'out-line' },
    ])
  })

  it('spends the run log budget: lines past logLines are dropped and counted', () => {
    const state = newState({ logLines: 3 })
    const guest = run(state)
    guest.out('1\n2\n3\n4\n')
    guest.err('5\n')
    expect(state.logs.map((l) => l.message)).toEqual(['1', '2', '3'])
    expect(state.logsDropped).toBe(2)
  })

  it('spends the byte budget too', () => {
    const state = newState({ logBytes: 10 })
    const guest = run(state)
    guest.out('12345\n67890\nabc\n')
    expect(state.logs.map((l) => l.message)).toEqual(['12345', '67890'])
    expect(state.logsDropped).toBe(1)
  })

  it('counts the lines past a spent budget without making them, across writes', () => {
    const state = newState({ logLines: 2 })
    const guest = run(state)
    // Spent in the middle of a write: the rest of it, a pending half line and later writes.
    guest.out('a\nb\nc\nd\npartial')
    expect(state.logs.map((l) => l.message)).toEqual(['a', 'b'])
    expect(state.logsDropped).toBe(2)
    guest.out('\n\n\n')
    guest.err('e\r\nf\n')
    expect(state.logsDropped).toBe(2 + 3 + 2)
    // A budget spent by its bytes counts the same way (an empty line included).
    const bytesSpent = newState({ logBytes: 4 })
    const other = run(bytesSpent)
    other.out('abcd\n\nx\n')
    expect(bytesSpent.logs.map((l) => l.message)).toEqual(['abcd'])
    expect(bytesSpent.logsDropped).toBe(2)
  })

  it('supports check-write, write and blocking-flush', () => {
    const state = newState()
    const guest = run(state)
    expect(guest.outChunked('via write\n')).toBe(0)
    expect(state.logs).toEqual([{ level: 'info', message: 'via write' }])
  })

  it('traps a write beyond the check-write permit', () => {
    const guest = run(newState())
    expect(() => guest.outChunked('x'.repeat(70_000))).toThrow(WardenError)
  })

  it('traps blocking-write-and-flush over 4096 bytes', () => {
    const guest = run(newState())
    expect(() => guest.out('x'.repeat(4097))).toThrow(/at most 4096 bytes/)
  })

  it('keeps no state between runs', () => {
    const a = newState()
    const b = newState()
    run(a).out('from a, no newline')
    run(b).out('from b\n')
    expect(a.logs).toEqual([])
    expect(b.logs).toEqual([{ level: 'info', message: 'from b' }])
  })
})

describe('stdin, environment, exit (end to end)', () => {
  it('stdin reads report closed', () => {
    expect(run(newState()).readStdin(10n)).toBe(11)
  })

  it('has an empty environment, no arguments and no cwd', () => {
    const guest = run(newState())
    expect(guest.env()).toEqual([])
    expect(guest.args()).toEqual([])
    expect(guest.cwd()).toBeUndefined()
  })

  it('exit throws GuestExit with the status', () => {
    const guest = run(newState())
    let caught: unknown
    try {
      guest.quit(true)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(GuestExit)
    expect((caught as GuestExit).status).toBe(1)
    expect((caught as GuestExit).name).toBe('GuestExit')
    expect(() => run(newState()).quit(false)).toThrow(expect.objectContaining({ status: 0 }))
  })
})

describe('random and clocks (end to end)', () => {
  it('returns random bytes of the asked length', () => {
    const guest = run(newState())
    expect(guest.rand(0n)).toHaveLength(0)
    const a = guest.rand(64n)
    expect(a).toHaveLength(64)
    expect(a.some((b) => b !== 0)).toBe(true)
    expect(guest.rand(BigInt(MAX_RANDOM_BYTES))).toHaveLength(MAX_RANDOM_BYTES)
    expect(guest.insecureRand(16n)).toHaveLength(16)
  })

  it('traps a random-bytes call over 1 MiB', () => {
    const guest = run(newState())
    expect(() => guest.rand(BigInt(MAX_RANDOM_BYTES) + 1n)).toThrow(WardenError)
    expect(() => guest.rand(2n ** 64n - 1n)).toThrow(/at most 1048576 bytes/)
  })

  it('traps past the randomness a run may draw, secure and insecure together (seventh outside attack)', () => {
    // A draw costs the guest a few fuel and the host ~1 ms of CPU per MiB: unbounded, a loop of
    // draws went minutes between two fuel checks, past its deadline.
    const guest = run(newState())
    const calls = MAX_RANDOM_BYTES_PER_RUN / MAX_RANDOM_BYTES
    for (let i = 0; i < calls - 1; i++) {
      expect(guest.rand(BigInt(MAX_RANDOM_BYTES))).toHaveLength(MAX_RANDOM_BYTES)
    }
    expect(guest.insecureRand(BigInt(MAX_RANDOM_BYTES - 1))).toHaveLength(MAX_RANDOM_BYTES - 1)
    expect(guest.rand(1n)).toHaveLength(1)
    expect(() => guest.rand(1n)).toThrow(/at most 16777216 random bytes/)
    expect(() => guest.insecureRand(0n + 1n)).toThrow(WardenError)
    // Another run (another instance) draws afresh.
    expect(run(newState()).rand(64n)).toHaveLength(64)
  })

  it('returns random u64s as bigints', () => {
    const guest = run(newState())
    const values = new Set([guest.randU64(), guest.randU64(), guest.randU64()])
    expect(values.size).toBe(3)
    for (const v of values) {
      expect(typeof v).toBe('bigint')
      expect(v >= 0n && v < 2n ** 64n).toBe(true)
    }
  })

  it('returns one insecure seed per run', () => {
    const guest = run(newState())
    const [a, b] = guest.seed()
    expect(typeof a).toBe('bigint')
    expect(typeof b).toBe('bigint')
    expect(guest.seed()).toEqual([a, b])
  })

  it('reads a plausible wall clock', () => {
    const { seconds, nanoseconds } = run(newState()).wall()
    const now = Date.now() / 1000
    expect(Math.abs(Number(seconds) - now)).toBeLessThan(5)
    expect(nanoseconds).toBeGreaterThanOrEqual(0)
    expect(nanoseconds).toBeLessThan(1e9)
  })

  it('gives each run a coarse monotonic clock that starts at 0, not the host uptime', () => {
    const imports = createWasiImports(newState(), () => {}, { clockResolutionNs: 100_000 })
    const clock = iface<{ now(): bigint; resolution(): bigint }>(
      imports,
      'wasi:clocks/monotonic-clock',
    )
    const first = clock.now()
    expect(first < 1_000_000_000n).toBe(true)
    expect(first % 100_000n).toBe(0n)
    expect(clock.now() % 100_000n).toBe(0n)
    expect(clock.resolution()).toBe(100_000n)
    const defaults = iface<{ resolution(): bigint }>(
      createWasiImports(newState()),
      'wasi:clocks/monotonic-clock',
    )
    expect(defaults.resolution()).toBe(100_000n)
  })

  it('reads a monotonic clock that does not go back', () => {
    const guest = run(newState())
    const a = guest.mono()
    const b = guest.mono()
    expect(b >= a).toBe(true)
  })

  it('makes every pollable ready at once: an hour-long sleep returns immediately', () => {
    const guest = run(newState())
    const started = Date.now()
    expect([...guest.sleepPoll(3_600_000_000_000n)]).toEqual([0, 1])
    expect(Date.now() - started).toBeLessThan(1000)
  })
})

describe('import objects (called as the glue would)', () => {
  it('keeps partial lines and split UTF-8 across writes', () => {
    const state = newState()
    const stdout = iface<{ getStdout(): OutputStreamLike }>(
      createWasiImports(state),
      'wasi:cli/stdout',
    )
    const e = bytes('é\n')
    stdout.getStdout().blockingWriteAndFlush(e.subarray(0, 1))
    // A dropped handle keeps the stream's buffer: Rust drops stdout after every print.
    const other = stdout.getStdout()
    other.blockingWriteAndFlush(e.subarray(1))
    expect(state.logs).toEqual([{ level: 'info', message: 'é' }])
  })

  it('caps a line that never ends', () => {
    const state = newState()
    const out = iface<{ getStdout(): OutputStreamLike }>(
      createWasiImports(state),
      'wasi:cli/stdout',
    ).getStdout()
    const chunk = bytes('x'.repeat(4096))
    for (let i = 0; i < 64; i++) {
      out.blockingWriteAndFlush(chunk)
    }
    out.blockingWriteAndFlush(bytes('\n'))
    expect(state.logs).toHaveLength(1)
    expect(Buffer.byteLength(state.logs[0]!.message)).toBeLessThanOrEqual(MAX_LINE_BYTES + 3)
  })

  it('closes one handle without closing the stream for others', () => {
    const state = newState()
    const stdout = iface<{ getStdout(): OutputStreamLike }>(
      createWasiImports(state),
      'wasi:cli/stdout',
    )
    const a = stdout.getStdout()
    const b = stdout.getStdout()
    a[Symbol.dispose]()
    expect(() => a.checkWrite()).toThrow(expect.objectContaining({ payload: { tag: 'closed' } }))
    expect(b.checkWrite()).toBe(65536n)
    b.write(bytes('ok\n'))
    expect(state.logs).toEqual([{ level: 'info', message: 'ok' }])
  })

  it('reports splice from stdin as closed', () => {
    const imports = createWasiImports(newState())
    const stdin = iface<{ getStdin(): unknown }>(imports, 'wasi:cli/stdin').getStdin()
    const out = iface<{ getStdout(): OutputStreamLike }>(imports, 'wasi:cli/stdout').getStdout()
    expect(() => out.splice(stdin, 10n)).toThrow(
      expect.objectContaining({ payload: { tag: 'closed' } }),
    )
    expect(out.subscribe().ready()).toBe(true)
  })

  it('traps on a resource the glue made up for an unknown handle', () => {
    const imports = createWasiImports(newState())
    const { OutputStream } = iface<{ OutputStream: { prototype: object } }>(
      imports,
      'wasi:io/streams',
    )
    const fake = Object.create(OutputStream.prototype) as OutputStreamLike
    expect(() => fake.checkWrite()).toThrow(TypeError)
  })

  it('poll traps on an empty list instead of blocking forever', () => {
    const { poll } = iface<{ poll(list: unknown[]): Uint32Array }>(
      createWasiImports(newState()),
      'wasi:io/poll',
    )
    expect(() => poll([])).toThrow(WardenError)
  })

  it('exit-with-code carries its code; terminals are absent', () => {
    const imports = createWasiImports(newState())
    const { exitWithCode } = iface<{ exitWithCode(code: number): void }>(imports, 'wasi:cli/exit')
    expect(() => exitWithCode(3)).toThrow(expect.objectContaining({ status: 3 }))
    for (const [name, fn] of [
      ['wasi:cli/terminal-stdin', 'getTerminalStdin'],
      ['wasi:cli/terminal-stdout', 'getTerminalStdout'],
      ['wasi:cli/terminal-stderr', 'getTerminalStderr'],
    ] as const) {
      const getter = iface<Record<string, () => unknown>>(imports, name)[fn]!
      expect(getter()).toBeUndefined()
    }
  })

  it('creates fresh import objects for every run', () => {
    const a = createWasiImports(newState())
    const b = createWasiImports(newState())
    for (const name of Object.keys(a)) {
      expect(a[name]).not.toBe(b[name])
    }
  })
})

describe('WASI calls cost fuel', () => {
  it('charges WASI_CALL_FUEL for every call of a function, and nothing for resource classes', () => {
    const charges: number[] = []
    const imports = createWasiImports(newState(), () => {}, {
      charge: (fuel) => charges.push(fuel),
    }) as Record<string, Record<string, unknown>>
    const random = imports['wasi:random/random']!
    ;(random.getRandomU64 as () => bigint)()
    ;(random.getRandomBytes as (n: bigint) => Uint8Array)(4n)
    ;(imports['wasi:clocks/monotonic-clock']!.now as () => bigint)()
    expect(charges).toEqual([WASI_CALL_FUEL, WASI_CALL_FUEL, WASI_CALL_FUEL])
    // Classes stay classes: the glue checks handles with `instanceof` and constructs none.
    const poll = imports['wasi:io/poll']!
    const pollable = (
      imports['wasi:clocks/monotonic-clock']!.subscribeDuration as (d: bigint) => object
    )(1n)
    expect(pollable).toBeInstanceOf(poll.Pollable as new () => object)
    expect(Object.isFrozen(random)).toBe(true)
  })

  it('charges nothing without a charge hook', () => {
    const imports = createWasiImports(newState()) as Record<string, Record<string, unknown>>
    expect(typeof imports['wasi:random/random']!.getRandomU64).toBe('function')
  })
})
