/**
 * Bulk memory and table ops pay for their length (cost model 4): `memory.copy` / `fill` / `init`
 * one more fuel per 64 bytes, `table.copy` / `fill` / `init` / `grow` one more per 16 elements,
 * rounded up, charged and checked before the op runs, in both fuel schemes.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { parse } from '@bytecodealliance/jco'
import { InstrumentError, METER_MODULE, TRAP_FUEL, instrumentModule } from './instrument.js'
import { FuelMeter } from './refuel.js'
import { rewriteModule } from './instrument/sections.js'
import type { FuelScheme } from './instrument/sections.js'

interface WasmGlobal {
  value: bigint | number
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> }
  Global: new (desc: { value: string; mutable?: boolean }, v: unknown) => WasmGlobal
  RuntimeError: new (...args: unknown[]) => Error
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly
type Fn = (...args: number[]) => unknown

const OPTS = { maxMemoryPages: 64, maxTableElements: 100_000 }
const SCHEMES: FuelScheme[] = ['threaded', 'cached']

// Each export's static cost is 1 per instruction: the `local.get`s, the op, `end`, and for the
// callers the `call` too (so the length is also charged inside a callee, threaded or not).
const WAT = `(module
  (memory (export "mem") 2)
  (table $t 10 100000 funcref)
  (table $u 100000 funcref)
  (data $d "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
  (elem $e func $noop $noop $noop $noop $noop $noop $noop $noop $noop $noop $noop $noop $noop
    $noop $noop $noop $noop $noop)
  (func $noop)
  (func (export "tsize") (result i32) (table.size $t))
  (func $fill (export "fill") (param i32 i32 i32)
    (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i32 i32 i32)
    (memory.copy (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i32 i32 i32)
    (memory.init $d (local.get 0) (local.get 1) (local.get 2)))
  (func (export "tgrow") (param i32) (result i32)
    (table.grow $t (ref.null func) (local.get 0)))
  (func (export "tfill") (param i32 i32)
    (table.fill $u (local.get 0) (ref.null func) (local.get 1)))
  (func (export "tcopy") (param i32 i32 i32)
    (table.copy $u $u (local.get 0) (local.get 1) (local.get 2)))
  (func (export "tinit") (param i32 i32 i32)
    (table.init $u $e (local.get 0) (local.get 1) (local.get 2)))
  (func (export "fill_via_call") (param i32 i32 i32)
    (call $fill (local.get 0) (local.get 1) (local.get 2))
    (memory.fill (local.get 0) (local.get 1) (local.get 2))))`

let plain: Uint8Array | undefined
async function module(): Promise<Uint8Array> {
  plain ??= (await parse(WAT)) as Uint8Array
  return plain
}

async function run(scheme: FuelScheme, fuel = 1_000_000_000n, slice = 1n << 62n) {
  const bytes = rewriteModule(
    await module(),
    OPTS.maxMemoryPages,
    OPTS.maxTableElements,
    scheme,
  ).bytes
  expect(Wasm.validate(bytes)).toBe(true)
  const meter = new FuelMeter(slice)
  meter.start(fuel)
  const m = meter.imports(
    new Wasm.Global({ value: 'i32', mutable: false }, OPTS.maxMemoryPages) as WebAssembly.Global,
  )
  const exports = new Wasm.Instance(new Wasm.Module(bytes), { [METER_MODULE]: m }).exports
  const mem = exports.mem as { buffer: ArrayBuffer }
  /** Calls an export; returns the fuel it used. */
  const call = (name: string, ...args: number[]): bigint => {
    const before = meter.left()
    ;(exports[name] as Fn)(...args)
    return before - meter.left()
  }
  return { call, exports, m, left: () => meter.left(), bytes: () => new Uint8Array(mem.buffer) }
}

const bytesFuel = (n: number) => BigInt(Math.ceil(n / 64))
const elemsFuel = (n: number) => BigInt(Math.ceil(n / 16))

describe.each(SCHEMES)('bulk ops pay for their length (%s scheme)', (scheme) => {
  it('memory.fill and memory.copy of n bytes: 5 + ceil(n / 64)', async () => {
    const { call, bytes } = await run(scheme)
    for (const n of [0, 1, 63, 64, 65, 128, 4096, 65_537, 131_072]) {
      expect(call('fill', 0, 7, n)).toBe(5n + bytesFuel(n))
      expect(call('copy', 0, 0, n)).toBe(5n + bytesFuel(n))
    }
    expect(bytes()[131_071]).toBe(7)
  })

  it('memory.init of n bytes: 5 + ceil(n / 64)', async () => {
    const { call, bytes } = await run(scheme)
    for (const n of [0, 1, 64, 65, 80]) {
      expect(call('init', 100, 0, n)).toBe(5n + bytesFuel(n))
    }
    expect(new TextDecoder().decode(bytes().subarray(100, 104))).toBe('0123')
  })

  it('table.grow, table.fill, table.copy, table.init of n elements: 1 per 16, rounded up', async () => {
    const { call } = await run(scheme)
    for (const n of [0, 1, 16, 17, 1000]) {
      expect(call('tgrow', n)).toBe(4n + elemsFuel(n))
      expect(call('tfill', 0, n)).toBe(5n + elemsFuel(n))
      expect(call('tcopy', 0, 1, n)).toBe(5n + elemsFuel(n))
    }
    for (const n of [0, 1, 16, 17, 18]) {
      expect(call('tinit', 0, 0, n)).toBe(5n + elemsFuel(n))
    }
  })

  it('charges the length in a callee and after the call alike', async () => {
    const { call } = await run(scheme)
    // Caller: 3 local.get, call, 3 local.get, memory.fill, end = 9; callee: 5.
    expect(call('fill_via_call', 0, 1, 6400)).toBe(9n + 5n + 2n * bytesFuel(6400))
  })

  it('traps an over-budget fill with fuel_exhausted before it writes', async () => {
    // 5 static + 1024 for 64 KiB; 1000 fuel is not enough.
    const r = await run(scheme, 1000n)
    expect(() => r.call('fill', 0, 0xff, 65_536)).toThrow(Wasm.RuntimeError)
    expect(r.m.trap.value).toBe(TRAP_FUEL)
    expect(r.m.fuel.value).toBe(1000n - 5n - 1024n)
    expect(r.bytes().every((x) => x === 0)).toBe(true)
  })

  it('traps an over-budget table.grow before the table grows', async () => {
    const r = await run(scheme, 100n)
    expect(() => r.call('tgrow', 10_000)).toThrow(Wasm.RuntimeError)
    expect(r.m.trap.value).toBe(TRAP_FUEL)
    r.m.fuel.value = 1000n
    r.m.trap.value = 0
    expect((r.exports.tsize as Fn)()).toBe(10)
  })

  it('property: fill of n bytes costs 5 + ceil(n / 64), and traps iff the fuel cannot pay', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 131_072 }),
        fc.bigInt({ min: 0n, max: 3000n }),
        // The budget in slices, smaller or larger than the length's charge.
        fc.oneof(fc.constant(1n << 62n), fc.bigInt({ min: 1n, max: 3000n })),
        async (n, fuel, slice) => {
          const r = await run(scheme, fuel, slice)
          const cost = 5n + bytesFuel(n)
          if (fuel - cost < 0n) {
            expect(() => r.call('fill', 0, 1, n)).toThrow(Wasm.RuntimeError)
            expect(r.m.trap.value).toBe(TRAP_FUEL)
            // At the entry check when the 5 static fuel do not fit, else at the length's.
            expect(r.left()).toBe(fuel < 5n ? fuel - 5n : fuel - cost)
            expect(r.bytes().every((x) => x === 0)).toBe(true)
          } else {
            expect(r.call('fill', 0, 1, n)).toBe(cost)
            expect(r.bytes().filter((x) => x === 1).length).toBe(n)
          }
        },
      ),
      { numRuns: 60 },
    )
  })
})

describe('bulk ops and the instrumented module', () => {
  it('is the same for the same input, and instrumentModule validates', async () => {
    const a = instrumentModule(await module(), OPTS).bytes
    expect(Wasm.validate(a)).toBe(true)
    expect(instrumentModule(await module(), OPTS).bytes).toEqual(a)
  })

  it('refuses a bulk op in a function at the locals limit (no room for the scratch local)', () => {
    // (param i32 i32 i32) and 49,997 declared locals: uncached, metered on the global alone.
    const wide = (op: number[]) => {
      const body = [0x01, 0xcd, 0x86, 0x03, 0x7f, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, ...op, 0x0b]
      return new Uint8Array([
        ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
        ...[0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00], // (i32 i32 i32) -> ()
        ...[0x03, 0x02, 0x01, 0x00],
        ...[0x05, 0x03, 0x01, 0x00, 0x01], // memory 1
        ...[0x0a, body.length + 2, 0x01, body.length, ...body],
      ])
    }
    const ok = wide([0x1a, 0x1a, 0x1a]) // drop drop drop
    expect(Wasm.validate(ok)).toBe(true)
    expect(Wasm.validate(instrumentModule(ok, OPTS).bytes)).toBe(true)
    const fill = wide([0xfc, 0x0b, 0x00])
    expect(Wasm.validate(fill)).toBe(true)
    expect(() => instrumentModule(fill, OPTS)).toThrow(InstrumentError)
  })
})
