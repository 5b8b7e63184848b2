import { existsSync, readFileSync } from 'node:fs'
import { describe, it, expect } from 'vitest'
import fc from 'fast-check'
import { parse, print } from '@bytecodealliance/jco'
import {
  COST_MODEL_VERSION,
  InstrumentError,
  MAX_INSTRUMENTED_SIZE,
  MEMORY_IMPORT,
  METER_MODULE,
  REFUSED_FEATURES,
  TRAP_FUEL,
  TRAP_MEMORY,
  instrumentModule,
} from './instrument.js'
import type { InstrumentOptions } from './instrument.js'
import { rewriteModule } from './instrument/sections.js'
import { FUEL_PROGRAMS, runFuelProgram } from './fuel-programs.fixture.js'
import { FuelMeter } from './refuel.js'
import type { MeterImports } from './refuel.js'

// NB: the project's lib setting (ES2023, no DOM) has no WebAssembly types, so describe the part of
// the JS API these tests use.
interface WasmGlobal {
  value: bigint | number
}
interface WasmMemory {
  buffer: ArrayBuffer
  grow(pages: number): number
}
interface WasmTable {
  length: number
  grow(n: number): number
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  Module: {
    new (bytes: Uint8Array): object
    imports(module: object): { module: string; name: string; kind: string }[]
  }
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> }
  Global: new (desc: { value: string; mutable?: boolean }, v: unknown) => WasmGlobal
  Memory: new (desc: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory
  RuntimeError: new (...args: unknown[]) => Error
  LinkError: new (...args: unknown[]) => Error
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

type Fn = (...args: unknown[]) => unknown
type Meter = MeterImports

const OPTS: InstrumentOptions = { maxMemoryPages: 64, maxTableElements: 1000 }

async function wat(text: string): Promise<Uint8Array> {
  return (await parse(text)) as Uint8Array
}

/** A single budget (one slice holds it all): the `fuel` global is the whole count. */
function meter(fuel = 1_000_000n, cap = 16): Meter {
  const m = new FuelMeter(1n << 62n)
  m.start(fuel)
  return m.imports(new Wasm.Global({ value: 'i32', mutable: false }, cap) as WebAssembly.Global)
}

function instantiate(bytes: Uint8Array, imports: object = {}): Record<string, unknown> {
  return new Wasm.Instance(new Wasm.Module(bytes), imports).exports
}

/** Instruments and instantiates; returns the exports and the meter globals. */
function metered(
  plain: Uint8Array,
  opts: { fuel?: bigint; cap?: number; imports?: Record<string, object> } = {},
  options: InstrumentOptions = OPTS,
) {
  const out = instrumentModule(plain, options)
  expect(Wasm.validate(out.bytes)).toBe(true)
  const m = meter(opts.fuel, opts.cap)
  const exports = instantiate(out.bytes, { ...opts.imports, [METER_MODULE]: m })
  const fn = (name: string) => exports[name] as Fn
  return { exports, fn, m, out }
}

function fuelUsed(m: Meter, start = 1_000_000n): bigint {
  return start - (m.fuel.value as bigint)
}

/** Section ids (and custom section names) of a module, in order. */
function sections(bytes: Uint8Array): string[] {
  const names: string[] = []
  const leb = (p: number): [number, number] => {
    let v = 0
    let shift = 0
    for (;;) {
      const byte = bytes[p++]
      v |= (byte & 0x7f) << shift
      shift += 7
      if ((byte & 0x80) === 0) {
        return [v >>> 0, p]
      }
    }
  }
  let p = 8
  while (p < bytes.length) {
    const id = bytes[p]
    const [size, start] = leb(p + 1)
    if (id === 0) {
      const [len, at] = leb(start)
      names.push(`custom:${new TextDecoder().decode(bytes.subarray(at, at + len))}`)
    } else {
      names.push(String(id))
    }
    p = start + size
  }
  return names
}

function expectInstrumentError(fn: () => unknown): InstrumentError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(InstrumentError)
    return err as InstrumentError
  }
  throw new Error('expected an InstrumentError')
}

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

/** A module with one `() -> ()` function whose body (after locals) is `body` + `end`. */
function rawModule(body: number[]): Uint8Array {
  const fnBody = [0x00, ...body, 0x0b]
  const sec = (id: number, content: number[]) => [id, content.length, ...content]
  return new Uint8Array([
    ...HEADER,
    ...sec(1, [1, 0x60, 0, 0]),
    ...sec(3, [1, 0]),
    ...sec(10, [1, fnBody.length, ...fnBody]),
  ])
}

/** The instructions of each function of the printed module, `;;` comments dropped. */
async function printedBodies(bytes: Uint8Array): Promise<(n: number) => string[]> {
  const lines = ((await print(bytes)) as string).split('\n')
  return (n: number) => {
    const at = lines.findIndex((l) => l.startsWith(`  (func (;${n};)`))
    const out: string[] = []
    for (let i = at + 1; lines[i].startsWith('    '); i++) {
      out.push(lines[i].replace(/;;.*$/, '').trim())
    }
    return out
  }
}

/** Printed forms of the metering code (meter globals first: fuel is global 0, trap 1). */
/**
 * The check of the fuel local `f` (`refuel` is function 0: the module imports no function):
 * below 0, the host's refuel adds the next slice, or the count stays below 0 and the guest
 * flushes it and traps (the host set the reason).
 */
const CHECK = (f: number) => [
  'i64.const 0',
  'i64.lt_s',
  'if',
  `local.get ${f}`,
  'call 0',
  `local.tee ${f}`,
  'i64.const 0',
  'i64.lt_s',
  'if',
  `local.get ${f}`,
  'global.set 0',
  'unreachable',
  'end',
  'end',
]
/** Entry (or reload) of the fuel local `f`, charge, check. */
const ENTRY = (cost: number, f: number) => [
  'global.get 0',
  `i64.const ${cost}`,
  'i64.sub',
  `local.tee ${f}`,
  ...CHECK(f),
]
const CHARGE = (cost: number, f: number) => [
  `local.get ${f}`,
  `i64.const ${cost}`,
  'i64.sub',
  `local.set ${f}`,
]
const RELOAD = (cost: number, f: number) => [
  'global.get 0',
  `i64.const ${cost}`,
  'i64.sub',
  `local.set ${f}`,
]
const FLUSH = (f: number) => [`local.get ${f}`, 'global.set 0']

const FUEL_WAT = `(module
  (func (export "spin") (loop $l (br $l)))
  (func (export "sum") (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (local.set $acc (i32.add (local.get $acc) (local.get $i)))
        (br $l)))
    (local.get $acc))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add
        (call $fib (i32.sub (local.get 0) (i32.const 1)))
        (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func $forever (export "forever") (call $forever))
  (func $tail (export "tail") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 42))
      (else (return_call $tail (i32.sub (local.get 0) (i32.const 1))))))
)`

describe('instrumentModule: fuel', () => {
  it('produces a module that validates and reports the cost model', async () => {
    const out = instrumentModule(await wat(FUEL_WAT), OPTS)
    expect(Wasm.validate(out.bytes)).toBe(true)
    expect(out.costModelVersion).toBe(COST_MODEL_VERSION)
    expect(out.memories).toEqual([])
  })

  it('is deterministic: same input, same bytes', async () => {
    const plain = await wat(FUEL_WAT)
    expect(instrumentModule(plain, OPTS).bytes).toEqual(instrumentModule(plain, OPTS).bytes)
  })

  it('traps an infinite loop with the fuel reason', async () => {
    const { fn, m } = metered(await wat(FUEL_WAT), { fuel: 1000n })
    expect(() => fn('spin')()).toThrow(Wasm.RuntimeError)
    expect(m.trap.value).toBe(TRAP_FUEL)
    expect(m.fuel.value as bigint).toBeLessThan(0n)
  })

  it('computes the same result as the plain module, for the same fuel every run', async () => {
    const plain = await wat(FUEL_WAT)
    const expected = (instantiate(plain).sum as Fn)(100)
    const used: bigint[] = []
    for (let run = 0; run < 3; run++) {
      const { fn, m } = metered(plain)
      expect(fn('sum')(100)).toBe(expected)
      expect(m.trap.value).toBe(0)
      used.push(fuelUsed(m))
    }
    expect(used[0]).toBeGreaterThan(0n)
    expect(new Set(used).size).toBe(1)
  })

  it('charges fuel linearly in the iteration count', async () => {
    const { fn, m } = metered(await wat(FUEL_WAT))
    const costs: bigint[] = []
    for (const n of [10, 20, 30, 40]) {
      const before = m.fuel.value as bigint
      fn('sum')(n)
      costs.push(before - (m.fuel.value as bigint))
    }
    const step = costs[1] - costs[0]
    expect(step).toBeGreaterThan(0n)
    expect(costs[2] - costs[1]).toBe(step)
    expect(costs[3] - costs[2]).toBe(step)
  })

  it('charges and checks at function entry, so unbounded recursion runs out of fuel', async () => {
    const { fn, m } = metered(await wat(FUEL_WAT), { fuel: 500n })
    expect(() => fn('forever')()).toThrow(Wasm.RuntimeError)
    expect(m.trap.value).toBe(TRAP_FUEL)
    expect(m.fuel.value as bigint).toBeLessThan(0n)
  })

  it('charges recursive calls per entry: fib costs grow with the call count', async () => {
    const { fn, m } = metered(await wat(FUEL_WAT))
    const cost = (n: number) => {
      const before = m.fuel.value as bigint
      expect(fn('fib')(n)).toBe([0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55][n])
      return before - (m.fuel.value as bigint)
    }
    const calls = (n: number): number => (n < 2 ? 1 : 1 + calls(n - 1) + calls(n - 2))
    const c1 = cost(1)
    const c0 = cost(0)
    expect(c0).toBe(c1)
    // Every internal call costs the same; a leaf costs c0. fib(n) makes (calls-1)/2 internal calls.
    const internal = cost(2) - 2n * c0 // one internal node, two leaves
    for (const n of [3, 5, 8, 10]) {
      const nodes = calls(n)
      const leaves = (nodes + 1) / 2
      expect(cost(n)).toBe(BigInt(leaves) * c0 + BigInt(nodes - leaves) * internal)
    }
  })

  it('meters tail calls: a bounded tail loop finishes, an unbounded one runs out', async () => {
    const { fn, m } = metered(await wat(FUEL_WAT), { fuel: 10_000n })
    expect(fn('tail')(10)).toBe(42)
    expect(() => fn('tail')(-1)).toThrow(Wasm.RuntimeError)
    expect(m.trap.value).toBe(TRAP_FUEL)
  })

  it('charges exactly one fuel per instruction of a straight-line body', async () => {
    // i32.const 7; i32.const 5; i32.add; end = 4 instructions, one basic block
    const { fn, m } = metered(
      await wat('(module (func (export "f") (result i32) i32.const 7 i32.const 5 i32.add))'),
    )
    expect(fn('f')()).toBe(12)
    expect(fuelUsed(m)).toBe(4n)
  })

  it('does not charge dead code after a branch', async () => {
    const { fn, m } = metered(
      await wat(`(module (func (export "f") (result i32)
        (block (result i32)
          (br 0 (i32.const 1)) (drop (i32.const 9)) (drop (i32.const 9)) (i32.const 2))))`),
    )
    expect(fn('f')()).toBe(1)
    // block; i32.const 1; br 0 | (dead: drops, i32.const 2, the block's end) | end (function)
    expect(fuelUsed(m)).toBe(4n)
  })

  it('meters legacy exception handling: try/catch/throw', async () => {
    const { fn, m } = metered(
      await wat(`(module
        (tag $e (param i32))
        (func $thrower (param i32) (throw $e (local.get 0)))
        (func (export "f") (param i32) (result i32)
          try (result i32)
            (call $thrower (local.get 0))
            (i32.const 0)
          catch $e
            (i32.add (i32.const 1))
          catch_all
            (i32.const -1)
          end))`),
    )
    expect(fn('f')(41)).toBe(42)
    const a = fuelUsed(m)
    expect(fn('f')(1)).toBe(2)
    expect(fuelUsed(m)).toBe(2n * a)
  })
})

// Fuel lives in a local per function (cost models 2 and 3); the global must hold the exact amount
// wherever the host, a caller outside the threading or a trap reads it. The amounts pinned below
// are those of cost model 1.
const CACHE_WAT = `(module
  (import "env" "probe" (func $probe))
  (tag $e (param i32))
  (memory 1)
  (func $thrower (export "thrower") (param $n i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (throw $e (local.get $n)))
  (func (export "catcher") (param i32) (result i32)
    try (result i32)
      (call $thrower (local.get 0))
      (i32.const 0)
    catch $e
    catch_all
      (i32.const -1)
    end)
  (func (export "probed") (call $probe) (call $probe))
  (func (export "early") (param i32) (result i32)
    (drop (br_if 0 (i32.const 7) (local.get 0)))
    (i32.const 9))
  (func (export "table") (param i32)
    (block (br_table 0 1 (local.get 0)))
    (nop))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`

describe('instrumentModule: fuel in a local', () => {
  const cached = async (fuel = 1000n) => {
    const seen: bigint[] = []
    const probe = () => {
      seen.push(run.m.fuel.value as bigint)
    }
    const run = metered(await wat(CACHE_WAT), { fuel, cap: 4, imports: { env: { probe } } })
    return { ...run, seen, used: () => fuel - (run.m.fuel.value as bigint) }
  }

  it('keeps the amounts of cost model 1', async () => {
    const { fn, m } = metered(await wat(FUEL_WAT))
    const cost = (name: string, arg: number) => {
      const before = m.fuel.value as bigint
      fn(name)(arg)
      return before - (m.fuel.value as bigint)
    }
    expect(cost('sum', 0)).toBe(8n)
    expect(cost('sum', 7)).toBe(99n)
    expect(cost('fib', 6)).toBe(271n)
    expect(cost('tail', 9)).toBe(69n)
  })

  const SHAPES_WAT = `(module (tag $e) (func $g)
    (func (param i32) (result i32) (local f32)
      (call $g)
      (block (drop (br_if 1 (i32.const 1) (local.get 0))) (br_if 0 (local.get 0)))
      (i32.const 2))
    (func try (call $g) catch $e (nop) end))`

  it('threads fuel: a wrapper at each index, the body at i + n with a fuel parameter and result', async () => {
    const body = await printedBodies(instrumentModule(await wat(SHAPES_WAT), OPTS).bytes)
    // Function 0 is the refuel import; the original functions, one index up, keep their types
    // and pass the global in and out.
    expect(body(2)).toEqual(['local.get 0', 'global.get 0', 'call 5', 'global.set 0'])
    // Parameter 0 keeps its index, the fuel parameter is 1, the declared f32 local moves to 2.
    const check = CHECK
    expect(body(5)).toEqual([
      '(local f32)',
      'block (result i32)', // branches to the function's label land here
      'local.get 1',
      'i64.const 1',
      'i64.sub',
      'local.tee 1',
      ...check(1),
      'local.get 1', // fuel in…
      'call 4',
      'local.set 1', // …and back: no global
      ...CHARGE(1, 1),
      'block',
      ...CHARGE(3, 1),
      'i32.const 1',
      'local.get 0',
      'br_if 1 (;@1;)', // to the function's label: no flush
      ...CHARGE(3, 1),
      'drop',
      'local.get 0',
      'br_if 0 (;@2;)',
      ...CHARGE(1, 1),
      'end',
      ...CHARGE(2, 1),
      'i32.const 2',
      'end',
      'local.get 1', // the fuel result
    ])
    // A catch body starts from the global: the code that threw flushed it.
    expect(body(6)).toEqual([
      'block',
      'local.get 0',
      'i64.const 1',
      'i64.sub',
      'local.tee 0',
      ...check(0),
      'try',
      ...CHARGE(1, 0),
      'local.get 0',
      'call 4',
      'local.set 0',
      ...CHARGE(1, 0),
      'catch 0',
      ...RELOAD(2, 0),
      'nop',
      'end',
      ...CHARGE(1, 0),
      'end',
      'local.get 0',
    ])
  })

  it('appends the local, loads it at entry, flushes before calls and reloads after (cached scheme)', async () => {
    const plain = await wat(SHAPES_WAT)
    const body = await printedBodies(rewriteModule(plain, 64, 1000, 'cached').bytes)
    // Parameter 0 and local 1 keep their indices; the fuel local is 2.
    expect(body(2)).toEqual([
      '(local f32 i64)',
      ...ENTRY(1, 2),
      ...FLUSH(2),
      'call 1',
      ...RELOAD(1, 2),
      'block',
      ...CHARGE(3, 2),
      'i32.const 1',
      'local.get 0',
      ...FLUSH(2), // br_if to the function's label: control may leave
      'br_if 1',
      ...CHARGE(3, 2),
      'drop',
      'local.get 0',
      'br_if 0 (;@1;)', // to an inner label: no flush
      ...CHARGE(1, 2),
      'end',
      ...CHARGE(2, 2),
      'i32.const 2',
      ...FLUSH(2), // the final end returns
    ])
    // A catch body starts from the global: the callee charged it before throwing.
    expect(body(3)).toEqual([
      '(local i64)',
      ...ENTRY(1, 0),
      'try',
      ...CHARGE(1, 0),
      ...FLUSH(0),
      'call 1',
      ...RELOAD(1, 0),
      'catch 0',
      ...RELOAD(2, 0),
      'nop',
      'end',
      ...CHARGE(1, 0),
      ...FLUSH(0),
    ])
  })

  it('leaves the exact fuel in the global when the fuel check traps', async () => {
    for (const fuel of [0n, 7n, 1000n]) {
      for (const name of ['spin', 'forever']) {
        const { fn, m } = metered(await wat(FUEL_WAT), { fuel })
        expect(() => fn(name)()).toThrow(Wasm.RuntimeError)
        expect(m.trap.value).toBe(TRAP_FUEL)
        // every block costs 1 and is checked: the first check that sees -1 traps
        expect(m.fuel.value).toBe(-1n)
      }
    }
  })

  it('lets the host read the exact fuel during an import call', async () => {
    const { fn, seen, used } = await cached()
    fn('probed')()
    expect(seen).toEqual([999n, 998n])
    expect(used()).toBe(3n)
  })

  it('counts what a callee charged before throwing to a catch', async () => {
    const cost = async (name: string, n: number) => {
      const { fn, used } = await cached()
      try {
        fn(name)(n)
      } catch {
        // the thrower throws to JS
      }
      return used()
    }
    expect(await cost('thrower', 5)).toBe(44n)
    expect(await cost('catcher', 0)).toBe(17n)
    expect(await cost('catcher', 5)).toBe(49n)
    expect(await cost('catcher', 50)).toBe(409n)
    for (const n of [0, 5, 50]) {
      expect((await cost('catcher', n)) - (await cost('thrower', n))).toBe(5n)
    }
  })

  it('flushes before branches to the function label (br_if, br_table)', async () => {
    const cost = async (name: string, arg: number) => {
      const { fn, used } = await cached()
      fn(name)(arg)
      return used()
    }
    expect(await cost('early', 1)).toBe(3n)
    expect(await cost('early', 0)).toBe(6n)
    expect(await cost('table', 1)).toBe(3n)
    expect(await cost('table', 0)).toBe(5n)
  })

  it('flushes before memory.grow: a grow past the cap leaves the exact fuel', async () => {
    const { fn, m, used } = await cached()
    expect(() => fn('grow')(9)).toThrow(Wasm.RuntimeError)
    expect(m.trap.value).toBe(TRAP_MEMORY)
    expect(used()).toBe(10n)
    const ok = await cached()
    expect(ok.fn('grow')(1)).toBe(1)
    expect(ok.used()).toBe(10n)
  })
})

const MEMORY_WAT = `(module
  (memory (export "mem") 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "grow_in_expr") (param i32 i32) (result i32)
    ;; the rewrite must leave the operand stack as it was around memory.grow
    (i32.add (local.get 1) (memory.grow (local.get 0))))
  (func (export "grow_locals") (param i32) (result i32) (local $a i32) (local $b i64)
    ;; the scratch local is appended: existing locals keep their indices
    (local.set $a (i32.const 7))
    (local.set $b (i64.const 9))
    (drop (memory.grow (local.get 0)))
    (i32.add (local.get $a) (i32.wrap_i64 (local.get $b)))))`

describe('instrumentModule: memory', () => {
  it('lets memory.grow within the cap return the old size', async () => {
    const { fn, m } = metered(await wat(MEMORY_WAT), { cap: 4 })
    expect(fn('grow')(2)).toBe(1)
    expect(fn('size')()).toBe(3)
    expect(fn('grow_in_expr')(0, 100)).toBe(103)
    expect(fn('grow_locals')(1)).toBe(16)
    expect(fn('grow')(0)).toBe(4)
    expect(m.trap.value).toBe(0)
  })

  it('traps a grow past the cap with reason 2, leaving the memory as it was', async () => {
    const { fn, m } = metered(await wat(MEMORY_WAT), { cap: 4 })
    expect(fn('grow')(2)).toBe(1)
    expect(() => fn('grow')(2)).toThrow(Wasm.RuntimeError)
    expect(m.trap.value).toBe(TRAP_MEMORY)
    expect(fn('size')()).toBe(3)
  })

  it.each([65_535, 0xffff_ffff, 0x8000_0000])(
    'traps a single huge grow of %i pages',
    async (pages) => {
      const { fn, m } = metered(await wat(MEMORY_WAT), { cap: 16 })
      expect(() => fn('grow')(pages | 0)).toThrow(Wasm.RuntimeError)
      expect(m.trap.value).toBe(TRAP_MEMORY)
      expect(fn('size')()).toBe(1)
    },
  )

  it('traps when memory.grow fails under the cap (declared maximum reached)', async () => {
    const src = MEMORY_WAT.replace('(memory (export "mem") 1)', '(memory (export "mem") 1 2)')
    const { fn, m } = metered(await wat(src), { cap: 16 })
    expect(fn('grow')(1)).toBe(1)
    expect(() => fn('grow')(1)).toThrow(Wasm.RuntimeError)
    expect(m.trap.value).toBe(TRAP_MEMORY)
  })

  it('lowers a maximum above the ceiling; exports the memory as warden:memory:0', async () => {
    const src = MEMORY_WAT.replace('(memory (export "mem") 1)', '(memory (export "mem") 1 100)')
    const { exports, out } = metered(
      await wat(src),
      {},
      { maxMemoryPages: 4, maxTableElements: 10 },
    )
    expect(out.memories).toEqual([
      { exportName: 'warden:memory:0', minPages: 1, maxPages: 4, provided: false },
    ])
    const mem = exports.mem as WasmMemory
    expect(exports['warden:memory:0']).toBe(mem)
    expect(mem.grow(3)).toBe(1)
    expect(() => mem.grow(1)).toThrow(RangeError)
  })

  it('sets a maximum on a memory that had none, and keeps a lower declared one', async () => {
    const { exports, out } = metered(
      await wat(MEMORY_WAT),
      {},
      { maxMemoryPages: 3, maxTableElements: 10 },
    )
    expect(out.memories[0].maxPages).toBe(3)
    expect(() => (exports.mem as WasmMemory).grow(3)).toThrow(RangeError)
    const low = MEMORY_WAT.replace('(memory (export "mem") 1)', '(memory (export "mem") 1 2)')
    expect(instrumentModule(await wat(low), OPTS).memories[0].maxPages).toBe(2)
  })

  it('rejects a memory minimum above the ceiling, defined or imported', async () => {
    const defined = await wat('(module (memory 65))')
    const err = expectInstrumentError(() => instrumentModule(defined, OPTS))
    expect(err.message).toBe('memory minimum above the host ceiling')
    const imported = await wat('(module (import "env" "m" (memory 65 100)))')
    expectInstrumentError(() => instrumentModule(imported, OPTS))
    const atCeiling = await wat('(module (memory 64))')
    expect(() => instrumentModule(atCeiling, OPTS)).not.toThrow()
  })

  it('lowers an imported memory maximum: a larger host memory no longer links', async () => {
    const plain = await wat(`(module (import "env" "mem" (memory 1 1000))
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`)
    const out = instrumentModule(plain, { maxMemoryPages: 8, maxTableElements: 10 })
    expect(out.memories).toEqual([])
    const mod = new Wasm.Module(out.bytes)
    const big = new Wasm.Memory({ initial: 1, maximum: 1000 })
    expect(() => new Wasm.Instance(mod, { env: { mem: big }, [METER_MODULE]: meter() })).toThrow()
    const ok = new Wasm.Memory({ initial: 1, maximum: 8 })
    const exports = new Wasm.Instance(mod, { env: { mem: ok }, [METER_MODULE]: meter() }).exports
    expect((exports.grow as Fn)(2)).toBe(1)
  })

  it('caps tables: maxima lowered, minima above the ceiling rejected', async () => {
    const { exports } = metered(
      await wat('(module (table (export "t") 2 funcref))'),
      {},
      {
        maxMemoryPages: 1,
        maxTableElements: 10,
      },
    )
    const t = exports.t as WasmTable
    expect(t.grow(8)).toBe(2)
    expect(() => t.grow(1)).toThrow(RangeError)
    const big = await wat('(module (table 11 funcref))')
    expectInstrumentError(() => instrumentModule(big, { maxMemoryPages: 1, maxTableElements: 10 }))
  })

  describe('instrumentModule: provideMemory', () => {
    const PROVIDE: InstrumentOptions = { ...OPTS, provideMemory: true }
    const DATA_WAT = `(module
    (memory (export "mem") 2 100)
    (data (i32.const 70000) "warden")
    (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0)))
    (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "size") (result i32) (memory.size)))`
    const provided = (pages: { initial: number; maximum: number }) =>
      new Wasm.Memory(pages) as unknown as WasmMemory

    it('turns the defined memory into the import warden:meter memory, with the lowered limits', async () => {
      const out = instrumentModule(await wat(DATA_WAT), { ...PROVIDE, maxMemoryPages: 4 })
      expect(Wasm.validate(out.bytes)).toBe(true)
      expect(sections(out.bytes)).not.toContain('5')
      expect(out.memories).toEqual([
        { exportName: 'warden:memory:0', minPages: 2, maxPages: 4, provided: true },
      ])
      const module = new Wasm.Module(out.bytes)
      expect(
        Wasm.Module.imports(module).filter((i: { kind: string }) => i.kind === 'memory'),
      ).toEqual([{ module: METER_MODULE, name: MEMORY_IMPORT, kind: 'memory' }])
      // Without it, or with one of other limits, the module does not instantiate.
      expect(() => instantiate(out.bytes, { [METER_MODULE]: meter() })).toThrow(Wasm.LinkError)
      const tooBig = provided({ initial: 2, maximum: 5 })
      expect(() =>
        instantiate(out.bytes, { [METER_MODULE]: { ...meter(), [MEMORY_IMPORT]: tooBig } }),
      ).toThrow(Wasm.LinkError)
    })

    it('writes the data segments into the memory it is handed, which it exports and grows under the cap', async () => {
      const out = instrumentModule(await wat(DATA_WAT), { ...PROVIDE, maxMemoryPages: 4 })
      const mem = provided({ initial: 2, maximum: 4 })
      const m = meter(1_000_000n, 3)
      const exports = instantiate(out.bytes, { [METER_MODULE]: { ...m, [MEMORY_IMPORT]: mem } })
      expect(exports['warden:memory:0']).toBe(mem)
      expect(exports.mem).toBe(mem)
      expect(new TextDecoder().decode(new Uint8Array(mem.buffer, 70000, 6))).toBe('warden')
      const fn = (name: string) => exports[name] as Fn
      expect(fn('grow')(1)).toBe(2)
      expect(() => fn('grow')(1)).toThrow(Wasm.RuntimeError)
      expect(m.trap.value).toBe(TRAP_MEMORY)
      expect(fn('size')()).toBe(3)
    })

    it('a memory zeroed after a run and handed to a new instance reads as a fresh one', async () => {
      const out = instrumentModule(await wat(DATA_WAT), PROVIDE)
      const fresh = provided({ initial: 2, maximum: 64 })
      instantiate(out.bytes, { [METER_MODULE]: { ...meter(), [MEMORY_IMPORT]: fresh } })
      const reused = provided({ initial: 2, maximum: 64 })
      const first = instantiate(out.bytes, {
        [METER_MODULE]: { ...meter(), [MEMORY_IMPORT]: reused },
      })
      for (const at of [0, 70000, 70003, 131071]) {
        ;(first.poke as Fn)(at, 0xa5)
      }
      new Uint8Array(reused.buffer).fill(0)
      const second = instantiate(out.bytes, {
        [METER_MODULE]: { ...meter(), [MEMORY_IMPORT]: reused },
      })
      expect(new Uint8Array(reused.buffer)).toEqual(new Uint8Array(fresh.buffer))
      expect((second.peek as Fn)(70000)).toBe('w'.charCodeAt(0))
      expect((second.peek as Fn)(131071)).toBe(0)
    })

    it('leaves modules without a defined memory as they would be without it', async () => {
      const none = await wat('(module (func (export "f") (result i32) (i32.const 1)))')
      const imported = await wat(
        '(module (import "env" "memory" (memory 1)) (func (export "f") (result i32) (i32.load (i32.const 0))))',
      )
      for (const plain of [none, imported]) {
        const a = instrumentModule(plain, OPTS)
        const b = instrumentModule(plain, PROVIDE)
        expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true)
        expect(b.memories).toEqual(a.memories)
      }
    })

    it('refuses what it refuses without it: a memory above the ceiling, two memories, a shared one', async () => {
      for (const text of [
        '(module (memory 65))',
        '(module (import "env" "m" (memory 1)) (memory 1))',
        '(module (memory 1 2 shared))',
      ]) {
        const plain = await wat(text)
        expect(() => instrumentModule(plain, OPTS)).toThrow(InstrumentError)
        expect(() => instrumentModule(plain, PROVIDE)).toThrow(InstrumentError)
      }
    })

    it('keeps every fuel program’s results and fuel', async () => {
      for (const program of FUEL_PROGRAMS) {
        const plain = await wat(program.wat)
        const outcomes = [false, true].map((provide) => {
          const out = rewriteModule(
            plain,
            OPTS.maxMemoryPages,
            OPTS.maxTableElements,
            'threaded',
            true,
            provide,
          )
          return runFuelProgram(
            program,
            out.bytes,
            undefined,
            out.memories.find((m) => m.provided),
          )
        })
        expect(outcomes[1], program.name).toEqual(outcomes[0])
      }
    })
  })
})

describe('instrumentModule: index shift and pass-through', () => {
  it('keeps imported globals, shifts defined ones (code, elem, data, init, export)', async () => {
    const plain = await wat(`(module
      (import "env" "base" (global $base i32))
      (import "env" "g64" (global $g64 (mut i64)))
      (global $a (mut i32) (i32.const 7))
      (global $b i32 (global.get $base))
      (global $c (export "c") (mut i32) (i32.const 100))
      (memory (export "mem") 1)
      (table 8 funcref)
      (elem (global.get $base) $f $g)
      (data (global.get $base) "hi")
      (func $f (result i32) (global.get $a))
      (func $g (result i32) (global.get $b))
      (func (export "bump") (result i32)
        (global.set $a (i32.add (global.get $a) (i32.const 1)))
        (global.set $c (i32.add (global.get $c) (i32.const 1)))
        (global.set $g64 (i64.add (global.get $g64) (i64.const 1)))
        (global.get $a))
      (func (export "call") (param i32) (result i32) (call_indirect (result i32) (local.get 0)))
      (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0))))`)
    const env = {
      base: new Wasm.Global({ value: 'i32', mutable: false }, 3),
      g64: new Wasm.Global({ value: 'i64', mutable: true }, 5n),
    }
    const { fn, exports, m } = metered(plain, { imports: { env } })
    expect(fn('bump')()).toBe(8)
    expect((exports.c as WasmGlobal).value).toBe(101)
    expect(env.g64.value).toBe(6n)
    expect(fn('call')(3)).toBe(8) // elem at offset 3 = $f → $a
    expect(fn('call')(4)).toBe(3) // $g → $b = base
    expect(fn('load')(3)).toBe('h'.charCodeAt(0))
    expect(m.trap.value).toBe(0)
  })

  it('rewrites global.get of a defined global inside a constant expression', async () => {
    const plain = await wat(`(module (import "env" "x" (global i32))
      (global $k i32 (i32.const 5)) (global $j (export "j") i32 (global.get $k)))`)
    const text = (await print(instrumentModule(plain, OPTS).bytes)) as string
    // imports: env.x = 0, meter = 1..3; $k = 4, $j = 5
    expect(text).toMatch(/\(global \(;5;\) i32 global\.get 4\)/)
    expect(text).toMatch(/\(export "j" \(global 5\)\)/)
  })

  it('rewrites a table with an initializer (0x40 0x00 form): limits and expression', async () => {
    const plain = await wat(
      `(module (global $g funcref (ref.null func)) (table 5 20 funcref (global.get $g)))`,
    )
    const text = (await print(
      instrumentModule(plain, { maxMemoryPages: 1, maxTableElements: 10 }).bytes,
    )) as string
    expect(text).toMatch(/\(table \(;0;\) 5 10 funcref global\.get 3\)/)
  })

  it('passes SIMD through and runs it', async () => {
    const { fn } = metered(
      await wat(`(module (memory 1)
        (func (export "add") (result i32)
          (v128.store offset=16 (i32.const 0)
            (i32x4.add (v128.const i32x4 1 2 3 4) (v128.const i32x4 10 20 30 40)))
          (i32x4.extract_lane 2 (v128.load offset=16 (i32.const 0))))
        (func (export "shuffle") (result i32)
          (i8x16.extract_lane_u 0 (i8x16.shuffle 31 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
            (v128.const i8x16 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0)
            (v128.const i8x16 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 99))))
        (func (export "lane") (result i32)
          (i32.store (i32.const 64) (i32.const 77))
          (i32x4.extract_lane 1 (v128.load32_lane 1 (i32.const 64) (v128.const i32x4 0 0 0 0))))
        (func (export "splat") (result f64)
          (f64x2.extract_lane 1
            (f64x2.mul (f64x2.splat (f64.const 1.5)) (f64x2.splat (f64.const 2))))))`),
    )
    expect(fn('add')()).toBe(33)
    expect(fn('shuffle')()).toBe(99)
    expect(fn('lane')()).toBe(77)
    expect(fn('splat')()).toBe(3)
  })

  it('passes bulk memory and reference types through and runs them', async () => {
    const { fn } = metered(
      await wat(`(module (memory 1) (table $t 4 funcref)
        (data $d "abcdef")
        (elem $e func $one)
        (func $one (result i32) (i32.const 1))
        (func (export "bulk") (result i32)
          (memory.init $d (i32.const 100) (i32.const 0) (i32.const 6))
          (memory.copy (i32.const 200) (i32.const 102) (i32.const 2))
          (memory.fill (i32.const 300) (i32.const 7) (i32.const 3))
          (data.drop $d)
          (table.init $t $e (i32.const 0) (i32.const 0) (i32.const 1))
          (i32.add (i32.add (i32.load8_u (i32.const 201)) (i32.load8_u (i32.const 302)))
            (call_indirect (result i32) (i32.const 0))))
        (func (export "refs") (result i32)
          (i32.add (table.size $t) (ref.is_null (table.get $t (i32.const 3))))))`),
    )
    expect(fn('bulk')()).toBe('d'.charCodeAt(0) + 7 + 1)
    expect(fn('refs')()).toBe(5)
  })

  it('passes atomics on an unshared memory through and runs them', async () => {
    const { fn, out } = metered(
      await wat(`(module (memory 1 2)
        (func (export "atomic") (result i32)
          (i32.atomic.store (i32.const 8) (i32.const 40))
          (drop (i32.atomic.rmw.add (i32.const 8) (i32.const 2)))
          (atomic.fence)
          (drop (memory.atomic.notify (i32.const 8) (i32.const 1)))
          (i32.atomic.load (i32.const 8)))
        (func (export "grow") (result i32) (memory.grow (i32.const 1))))`),
    )
    expect(fn('atomic')()).toBe(42)
    expect(fn('grow')()).toBe(1)
    expect(out.memories).toEqual([
      { exportName: 'warden:memory:0', minPages: 1, maxPages: 2, provided: false },
    ])
  })

  it('passes multi-value blocks and functions through', async () => {
    const { fn } = metered(
      await wat(`(module
        (type $pair (func (param i32) (result i32 i32)))
        (func $two (result i32 i32) (i32.const 1) (i32.const 2))
        (func (export "mv") (param i32) (result i32)
          (local.get 0)
          (block (type $pair) (i32.const 10))
          (i32.add)
          (call $two)
          (i32.add)
          (i32.add)))`),
    )
    expect(fn('mv')(5)).toBe(18)
  })

  it('drops the name section and keeps other custom sections', async () => {
    const plain = await wat(`(module (@custom "keep-me" "hello") (func $named (export "f")))`)
    expect(sections(plain)).toContain('custom:name')
    const out = sections(instrumentModule(plain, OPTS).bytes)
    expect(out).not.toContain('custom:name')
    expect(out).toContain('custom:keep-me')
  })

  it('adds an import and an export section when the module had none', async () => {
    const out = instrumentModule(await wat('(module (memory 2) (func))'), OPTS)
    expect(sections(out.bytes)).toEqual(['1', '2', '3', '5', '7', '10'])
    expect(out.memories).toEqual([
      { exportName: 'warden:memory:0', minPages: 2, maxPages: 64, provided: false },
    ])
    expect(Wasm.validate(out.bytes)).toBe(true)
  })

  it('handles an empty module', () => {
    const out = instrumentModule(new Uint8Array(HEADER), OPTS)
    expect(Wasm.validate(out.bytes)).toBe(true)
    // The type of the refuel import, then the meter imports.
    expect(sections(out.bytes)).toEqual(['1', '2'])
  })
})

describe('instrumentModule: rejects', () => {
  it('rejects bytes that are not WebAssembly', () => {
    expectInstrumentError(() => instrumentModule(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), OPTS))
    expectInstrumentError(() => instrumentModule(new Uint8Array([0, 0x61, 0x73]), OPTS))
  })

  it('rejects a truncated module at every cut point', async () => {
    const plain = await wat(FUEL_WAT)
    let cuts = 0
    for (let cut = 9; cut < plain.length; cut++) {
      const prefix = plain.slice(0, cut)
      if (Wasm.validate(prefix)) {
        continue // cut right after a section: a smaller, valid module
      }
      expectInstrumentError(() => instrumentModule(prefix, OPTS))
      cuts++
    }
    expect(cuts).toBeGreaterThan(plain.length / 2)
  })

  it('rejects an unknown opcode', () => {
    expect(() => instrumentModule(rawModule([0x01]), OPTS)).not.toThrow()
    const err = expectInstrumentError(() => instrumentModule(rawModule([0xff]), OPTS))
    expect(err.message).toMatch(/unknown opcode 0xff/)
    expectInstrumentError(() => instrumentModule(rawModule([0xfd, 0x9a, 0x01]), OPTS)) // SIMD hole
    expectInstrumentError(() => instrumentModule(rawModule([0xfc, 0x13]), OPTS))
    expectInstrumentError(() => instrumentModule(rawModule([0xfe, 0x04]), OPTS))
  })

  it('rejects a function with more than 50000 locals, counting the scratch local', () => {
    const withLocals = (groups: number[][], body: number[]) => {
      const fnBody = [groups.length, ...groups.flat(), ...body, 0x0b]
      const size = [(fnBody.length & 0x7f) | 0x80, fnBody.length >> 7]
      const code = [1, ...size, ...fnBody]
      const sec = (id: number, content: number[]) => [id, content.length, ...content]
      // type () -> (); one function; memory 1; then the code section
      const head = [...sec(1, [1, 0x60, 0, 0]), ...sec(3, [1, 0]), ...sec(5, [1, 0, 1])]
      return new Uint8Array([...HEADER, ...head, 10, code.length, ...code])
    }
    const leb = (v: number) => {
      const out: number[] = []
      do {
        out.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0))
        v >>>= 7
      } while (v)
      return out
    }
    const grow = [0x41, 0x00, 0x40, 0x00, 0x1a] // drop (memory.grow (i32.const 0))
    // At the limit there is no room for the fuel local: such a function meters on the global.
    const full = instrumentModule(withLocals([[...leb(50_000), 0x7f]], []), OPTS)
    expect(Wasm.validate(full.bytes)).toBe(true)
    expectInstrumentError(() => instrumentModule(withLocals([[...leb(50_001), 0x7f]], []), OPTS))
    expectInstrumentError(() => instrumentModule(withLocals([[...leb(50_000), 0x7f]], grow), OPTS))
    const huge = [...leb(0xffff_ffff), 0x7f]
    expectInstrumentError(() => instrumentModule(withLocals([huge, huge], []), OPTS))
    const ok = instrumentModule(withLocals([[...leb(49_999), 0x7f]], grow), OPTS)
    expect(Wasm.validate(ok.bytes)).toBe(true)
  })

  it('rejects a module that imports from warden:meter itself', async () => {
    const plain = await wat(`(module (import "${METER_MODULE}" "fuel" (global (mut i64))))`)
    expect(expectInstrumentError(() => instrumentModule(plain, OPTS)).message).toMatch(
      /warden:meter/,
    )
  })

  it('rejects a module that imports the refuel function (it would hand itself the budget)', async () => {
    for (const text of [
      `(module (import "${METER_MODULE}" "refuel" (func (param i64) (result i64))))`,
      `(module (import "env" "f" (func)) (import "${METER_MODULE}" "refuel" (func $r (param i64) (result i64)))
        (func (export "run") (result i64) (call $r (i64.const -1000000))))`,
    ]) {
      const plain = await wat(text)
      expect(expectInstrumentError(() => instrumentModule(plain, OPTS)).message).toMatch(
        /warden:meter/,
      )
    }
  })

  it('gives the guest no index that names the refuel import: its own move up by one', async () => {
    // The guest's first defined function has the index the refuel import takes in the output;
    // `call`, `ref.func`, the table, the export and `start` all still reach the guest's own.
    const { fn, m } = metered(
      await wat(`(module (import "env" "f" (func $f)) (table 1 funcref) (elem (i32.const 0) $first)
        (global $g (mut i32) (i32.const 0))
        (func $first (result i64) (global.set $g (i32.add (global.get $g) (i32.const 1))) (i64.const 7))
        (func $s (drop (call $first)))
        (start $s)
        (func (export "direct") (result i64) (call $first))
        (func (export "indirect") (result i64) (call_indirect (result i64) (i32.const 0)))
        (func (export "ref") (result i32) (ref.is_null (ref.func $first)))
        (export "first" (func $first)))`),
      { imports: { env: { f: () => {} } } },
    )
    for (const name of ['direct', 'indirect', 'first']) {
      expect(fn(name)()).toBe(7n)
    }
    expect(fn('ref')()).toBe(0)
    expect(m.trap.value).toBe(0)
  })

  it('rejects memory64 and a component', async () => {
    const memory64 = expectInstrumentError(() =>
      instrumentModule(new Uint8Array([...HEADER, 5, 3, 1, 0x04, 1]), OPTS),
    )
    expect(memory64.message).toContain(REFUSED_FEATURES.memory64)
    expectInstrumentError(() =>
      instrumentModule(new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]), OPTS),
    )
  })
})

// Issue 7: what V8 in Node 20 only runs behind a flag, or Warden would not meter or isolate, is
// refused by name, in the same pass as the rewrite.
describe('instrumentModule: refuses features by name', () => {
  it.each([
    ['a shared memory', '(module (memory 1 2 shared))', REFUSED_FEATURES.shared],
    [
      'an imported shared memory',
      '(module (import "env" "m" (memory 1 2 shared)))',
      REFUSED_FEATURES.shared,
    ],
    ['two defined memories', '(module (memory 1) (memory 1))', REFUSED_FEATURES.multiMemory],
    [
      'an imported and a defined memory',
      '(module (import "env" "m" (memory 1)) (memory 1))',
      REFUSED_FEATURES.multiMemory,
    ],
    ['memory64', '(module (memory i64 1))', REFUSED_FEATURES.memory64],
    [
      'relaxed SIMD',
      '(module (func (result v128) (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0))))',
      REFUSED_FEATURES.relaxedSimd,
    ],
    [
      'an extended constant expression',
      '(module (global i32 (i32.add (i32.const 1) (i32.const 2))))',
      REFUSED_FEATURES.extendedConst,
    ],
    [
      'try_table',
      '(module (tag $t) (func (block $l (try_table (catch $t $l) (throw $t)))))',
      REFUSED_FEATURES.exnref,
    ],
    [
      'throw_ref',
      '(module (func (param exnref) (throw_ref (local.get 0))))',
      REFUSED_FEATURES.exnref,
    ],
    ['an exnref local', '(module (func (local exnref)))', REFUSED_FEATURES.exnref],
  ])('rejects %s', async (_what, text, feature) => {
    const plain = await wat(text)
    expect(expectInstrumentError(() => instrumentModule(plain, OPTS)).message).toContain(feature)
  })

  it('rejects an explicit memory index (multi-memory) in a load', () => {
    // (memory 1) (func i32.const 0; i32.load align=2 memidx=0 offset=0; drop)
    const sec = (id: number, content: number[]) => [id, content.length, ...content]
    const body = [0x00, 0x41, 0x00, 0x28, 0x42, 0x00, 0x00, 0x1a, 0x0b]
    const module = new Uint8Array([
      ...HEADER,
      ...sec(1, [1, 0x60, 0, 0]),
      ...sec(3, [1, 0]),
      ...sec(5, [1, 0, 1]),
      ...sec(10, [1, body.length, ...body]),
    ])
    expect(expectInstrumentError(() => instrumentModule(module, OPTS)).message).toContain(
      REFUSED_FEATURES.multiMemory,
    )
  })
})

describe('instrumentModule: properties', () => {
  const OPS = ['add', 'sub', 'mul', 'xor', 'and', 'or', 'shl', 'rotl'] as const
  const step = fc.record({ op: fc.constantFrom(...OPS), k: fc.integer({ min: -1000, max: 1000 }) })

  it('straight-line code: same value as plain, fuel = instruction count', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer(), fc.array(step, { maxLength: 30 }), async (seed, steps) => {
        const body = [
          `(i32.const ${seed})`,
          ...steps.map((s) => `(i32.const ${s.k}) (i32.${s.op})`),
        ]
        const plain = await wat(`(module (func (export "f") (result i32) ${body.join(' ')}))`)
        const want = (instantiate(plain).f as Fn)()
        const used = new Set<bigint>()
        for (let run = 0; run < 2; run++) {
          const { fn, m } = metered(plain)
          expect(fn('f')()).toBe(want)
          used.add(fuelUsed(m))
        }
        // i32.const, then (i32.const, op) per step, then end: one basic block
        expect([...used]).toEqual([BigInt(2 + 2 * steps.length)])
      }),
      { numRuns: 40 },
    )
  })

  it('if/else, block, br_if: same value as plain, deterministic fuel', async () => {
    const expr = fc.letrec<{ node: string }>((tie) => ({
      node: fc.oneof(
        { maxDepth: 4, depthSize: 'small' },
        fc.integer().map((n) => `(i32.const ${n})`),
        fc
          .tuple(fc.constantFrom('add', 'sub', 'mul', 'xor'), tie('node'), tie('node'))
          .map(([op, a, b]) => `(i32.${op} ${a} ${b})`),
        fc
          .tuple(tie('node'), tie('node'), tie('node'))
          .map(([c, a, b]) => `(if (result i32) ${c} (then ${a}) (else ${b}))`),
        fc
          .tuple(tie('node'), tie('node'), tie('node'))
          .map(([v, c, b]) => `(block (result i32) (drop (br_if 0 ${v} ${c})) ${b})`),
      ),
    })).node
    await fc.assert(
      fc.asyncProperty(expr, async (body) => {
        const plain = await wat(`(module (func (export "f") (result i32) ${body}))`)
        const want = (instantiate(plain).f as Fn)()
        const a = metered(plain)
        const b = metered(plain)
        expect(a.fn('f')()).toBe(want)
        expect(b.fn('f')()).toBe(want)
        expect(fuelUsed(a.m)).toBe(fuelUsed(b.m))
        expect(fuelUsed(a.m)).toBeGreaterThan(0n)
      }),
      { numRuns: 60 },
    )
  })

  it('loops: same value as plain, fuel deterministic and affine in the count', async () => {
    const plain = await wat(FUEL_WAT)
    const sum = instantiate(plain).sum as Fn
    const cost = (n: number) => {
      const { fn, m } = metered(plain)
      expect(fn('sum')(n)).toBe(sum(n))
      return fuelUsed(m)
    }
    const c0 = cost(0)
    const step = cost(1) - c0
    expect(step).toBeGreaterThan(0n)
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 300 }), async (n) => {
        const first = cost(n)
        expect(cost(n)).toBe(first)
        expect(first).toBe(c0 + BigInt(n) * step)
      }),
      { numRuns: 30 },
    )
  })
})

/** Unsigned LEB128. */
function leb(n: number): number[] {
  const out: number[] = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) {
      byte |= 0x80
    }
    out.push(byte)
  } while (n !== 0)
  return out
}

/** A module whose one function is `loops` empty `loop … end`s. */
function emptyLoops(loops: number): Uint8Array {
  const fnBody = [0x00, ...Array.from({ length: loops }, () => [0x03, 0x40, 0x0b]).flat(), 0x0b]
  const sec = (id: number, content: number[]) => [id, ...leb(content.length), ...content]
  return new Uint8Array([
    ...HEADER,
    ...sec(1, [1, 0x60, 0, 0]),
    ...sec(3, [1, 0]),
    ...sec(10, [1, ...leb(fnBody.length), ...fnBody]),
  ])
}

describe('instrumentModule: the size of its output is bounded', () => {
  it('refuses a module that metering would grow past 4 times plus 1 MiB', () => {
    // 300,000 empty loops: 900 KB in, ~10 MB metered.
    const bomb = emptyLoops(300_000)
    const error = expectInstrumentError(() => instrumentModule(bomb, OPTS))
    expect(error.message).toMatch(/metering would make it \d+\.\d times its size/)
    // Below the slack, the same shape is metered as usual.
    const small = emptyLoops(1_000)
    const out = instrumentModule(small, OPTS)
    expect(out.bytes.byteLength).toBeLessThanOrEqual(
      small.byteLength * MAX_INSTRUMENTED_SIZE.factor + MAX_INSTRUMENTED_SIZE.slackBytes,
    )
    expect(Wasm.validate(out.bytes)).toBe(true)
  })
})

const STARLINGMONKEY = new URL(
  '../../node_modules/@bytecodealliance/componentize-js/lib/starlingmonkey_embedding.wasm',
  import.meta.url,
)

// componentize-js is a dependency, so the engine is always there; its speed is measured in bench/.
describe('instrumentModule: StarlingMonkey (~10 MB)', () => {
  it('instruments the engine, and the output validates', () => {
    expect(existsSync(STARLINGMONKEY)).toBe(true)
    const plain = new Uint8Array(readFileSync(STARLINGMONKEY))
    const out = instrumentModule(plain, { maxMemoryPages: 16_384, maxTableElements: 1_000_000 })
    expect(Wasm.validate(out.bytes)).toBe(true)
    expect(out.memories).toHaveLength(1)
  }, 30_000)
})
