/**
 * Programs whose fuel is pinned across metering schemes: `fuel-threading.test.ts` runs each one
 * instrumented and compares results and `fuelUsed` with values recorded under cost model 2 (fuel
 * cached in a local, flushed at every call), before fuel was threaded through internal calls.
 */
import { FuelMeter } from './refuel.js'

/** One call to make on the instance, in order; fuel is measured after each. */
export interface FuelCall {
  export: string
  args: (number | bigint)[]
}

export interface FuelProgram {
  name: string
  wat: string
  calls: FuelCall[]
  /** Fuel the run starts with (default 1_000_000). */
  fuel?: bigint
  /** Imports besides the meter: built per instance, given a reader of the fuel global. */
  imports?: (fuel: () => bigint, exports: () => Record<string, unknown>) => Record<string, object>
}

/** What one call did: its result (or trap reason), and the fuel used so far by the run. */
export interface FuelOutcome {
  result: string
  fuelUsed: string
}

export const FUEL_PROGRAMS: FuelProgram[] = [
  {
    name: 'fib: recursion',
    wat: `(module
      (func $fib (export "fib") (param i32) (result i32)
        (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
          (then (local.get 0))
          (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                         (call $fib (i32.sub (local.get 0) (i32.const 2))))))))`,
    calls: [
      { export: 'fib', args: [0] },
      { export: 'fib', args: [1] },
      { export: 'fib', args: [15] },
    ],
  },
  {
    name: 'even/odd: mutual recursion',
    wat: `(module
      (func $even (export "even") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 1))
          (else (call $odd (i32.sub (local.get 0) (i32.const 1))))))
      (func $odd (export "odd") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
          (else (call $even (i32.sub (local.get 0) (i32.const 1)))))))`,
    calls: [
      { export: 'even', args: [10] },
      { export: 'odd', args: [7] },
      { export: 'even', args: [301] },
    ],
  },
  {
    name: 'multi-value functions called internally',
    wat: `(module
      (func $swap (param i32 i64) (result i64 i32) (local.get 1) (local.get 0))
      (func $divmod (param i32 i32) (result i32 i32)
        (i32.div_u (local.get 0) (local.get 1)) (i32.rem_u (local.get 0) (local.get 1)))
      (func $none)
      (func (export "run") (param i32) (result i64)
        (local $q i32) (local $r i32) (local $w i64)
        (call $none)
        (call $divmod (local.get 0) (i32.const 7))
        (local.set $r) (local.set $q)
        (call $swap (local.get $q) (i64.extend_i32_u (local.get $r)))
        (drop)
        (local.set $w)
        (i64.add (local.get $w) (i64.extend_i32_u (local.get $q)))))`,
    calls: [
      { export: 'run', args: [100] },
      { export: 'run', args: [6] },
    ],
  },
  {
    name: 'exceptions crossing frames (legacy try/catch)',
    wat: `(module
      (tag $e (param i32))
      (func $thrower (param i32) (result i32)
        (if (i32.gt_u (local.get 0) (i32.const 3)) (then (throw $e (local.get 0))))
        (i32.add (local.get 0) (i32.const 1)))
      (func $middle (param i32) (result i32)
        (i32.mul (call $thrower (local.get 0)) (i32.const 2)))
      (func $rethrower (param i32) (result i32)
        try (result i32)
          (call $middle (local.get 0))
        catch_all
          rethrow 0
        end)
      (func (export "run") (param i32) (result i32)
        try (result i32)
          (call $rethrower (local.get 0))
        catch $e
          (i32.add (i32.const 1000))
        end)
      (func (export "catchall") (param i32) (result i32)
        (local $acc i32)
        try
          (local.set $acc (call $middle (local.get 0)))
        catch_all
          (local.set $acc (i32.const -1))
        end
        (local.get $acc)))`,
    calls: [
      { export: 'run', args: [2] },
      { export: 'run', args: [9] },
      { export: 'catchall', args: [1] },
      { export: 'catchall', args: [5] },
    ],
  },
  {
    name: 'br, br_if and br_table to the function label',
    wat: `(module
      (func $pick (param i32) (result i32)
        (block $a (result i32)
          (block $b (result i32)
            (br_table $a $b 2 $b (i32.const 10) (local.get 0)))
          (return (i32.add (i32.const 20))))
        (i32.add (i32.const 5))
        (br_if 0 (i32.eq (local.get 0) (i32.const 0)))
        (br 0 (i32.const 40)))
      (func $early (param i32) (result i32 i64)
        (i32.const 1) (i64.const 2)
        (br_if 0 (i32.eqz (local.get 0)))
        (drop) (drop)
        (i32.const 3) (i64.const 4))
      (func (export "run") (param i32) (result i32)
        (local $x i64)
        (call $early (local.get 0))
        (local.set $x)
        (i32.add (i32.wrap_i64 (local.get $x)))
        (i32.add (call $pick (local.get 0)))))`,
    calls: [
      { export: 'run', args: [0] },
      { export: 'run', args: [1] },
      { export: 'run', args: [2] },
      { export: 'run', args: [3] },
    ],
  },
  {
    name: 'tail calls',
    fuel: 10_000_000n,
    wat: `(module
      (func $sum (param $n i32) (param $acc i64) (result i64)
        (if (result i64) (i32.eqz (local.get $n))
          (then (local.get $acc))
          (else (return_call $sum (i32.sub (local.get $n) (i32.const 1))
                  (i64.add (local.get $acc) (i64.extend_i32_u (local.get $n)))))))
      (func $ping (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 7))
          (else (return_call $pong (i32.sub (local.get 0) (i32.const 1))))))
      (func $pong (param i32) (result i32)
        (return_call $ping (local.get 0)))
      (func (export "sum") (param i32) (result i64) (return_call $sum (local.get 0) (i64.const 0)))
      (func (export "ping") (param i32) (result i32) (call $ping (local.get 0))))`,
    calls: [
      { export: 'sum', args: [10] },
      { export: 'sum', args: [100000] },
      { export: 'ping', args: [50001] },
    ],
  },
  {
    name: 'functions exported and called internally, through a table too',
    wat: `(module
      (type $ii (func (param i32) (result i32)))
      (table 2 funcref)
      (elem (i32.const 0) $sq $inc)
      (func $sq (export "sq") (param i32) (result i32) (i32.mul (local.get 0) (local.get 0)))
      (func $inc (export "inc") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
      (func (export "run") (param i32) (result i32)
        (i32.add (call $sq (local.get 0))
          (call_indirect (type $ii) (local.get 0) (i32.and (local.get 0) (i32.const 1)))))
      (func (export "ref") (result i32)
        (ref.is_null (ref.func $sq))))`,
    calls: [
      { export: 'sq', args: [9] },
      { export: 'run', args: [4] },
      { export: 'run', args: [5] },
      { export: 'inc', args: [1] },
      { export: 'ref', args: [] },
    ],
  },
  {
    name: 'host imports read the fuel mid-recursion and call back in',
    wat: `(module
      (import "host" "probe" (func $probe (param i32) (result i32)))
      (func $rec (export "rec") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0))
          (then (call $probe (i32.const 0)))
          (else (i32.add (local.get 0) (call $rec (i32.sub (local.get 0) (i32.const 1)))))))
      (func (export "leaf") (param i32) (result i32) (i32.add (local.get 0) (i32.const 100))))`,
    imports: (fuel, exports) => ({
      host: {
        probe: (x: number) => {
          const before = Number(fuel() % 100_000n)
          const inner = (exports().leaf as (x: number) => number)(x)
          return before + inner
        },
      },
    }),
    calls: [
      { export: 'rec', args: [5] },
      { export: 'rec', args: [40] },
    ],
  },
  {
    name: 'memory.grow in a callee',
    wat: `(module
      (memory 1 8)
      (func $grow (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "run") (param i32) (result i32)
        (i32.add (call $grow (local.get 0)) (memory.size))))`,
    calls: [
      { export: 'run', args: [1] },
      { export: 'run', args: [2] },
      { export: 'run', args: [100] },
    ],
  },
  {
    name: 'fuel runs out mid-recursion',
    fuel: 5_000n,
    wat: `(module
      (func $fib (export "fib") (param i32) (result i32)
        (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
          (then (local.get 0))
          (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                         (call $fib (i32.sub (local.get 0) (i32.const 2))))))))`,
    calls: [{ export: 'fib', args: [20] }],
  },
  {
    name: 'fuel runs out in a loop inside a callee',
    fuel: 777n,
    wat: `(module
      (func $spin (param i32) (result i32)
        (loop $l (local.set 0 (i32.add (local.get 0) (i32.const 1))) (br $l))
        (local.get 0))
      (func (export "run") (result i32) (i32.add (i32.const 1) (call $spin (i32.const 0)))))`,
    calls: [{ export: 'run', args: [] }],
  },
  {
    name: 'many parameters and locals (local indices past 127)',
    wat: `(module
      (func $wide (param i32 i64 f64) (result i64)
        (local $a i32) (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
          i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
          i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
          i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
          i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
          i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
          i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64)
        (local $last i64)
        (local.set $a (i32.add (local.get 0) (i32.const 3)))
        (local.set 126 (i64.extend_i32_u (local.get $a)))
        (local.set 127 (i64.add (local.get 126) (local.get 1)))
        (local.set $last (local.tee 128 (i64.add (local.get 127) (i64.trunc_f64_s (local.get 2)))))
        (i64.add (local.get $last) (local.get 128)))
      (func (export "run") (param i32) (result i64)
        (call $wide (local.get 0) (i64.const 10) (f64.const 2.5))))`,
    calls: [{ export: 'run', args: [4] }],
  },
]

// NB: the project's lib setting (ES2023, no DOM) has no WebAssembly types; describe what is used.
interface WasmGlobal {
  value: bigint | number
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> }
  Global: new (desc: { value: string; mutable?: boolean }, v: unknown) => WasmGlobal
  Memory: new (desc: { initial: number; maximum: number }) => object
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

/**
 * Runs a program's calls on one instance of `bytes` (an instrumented module) and reports, per
 * call, its result or trap (`trap:<reason>` from the `trap` global, `error:<name>` otherwise) and
 * the fuel used so far. `slice`: the budget goes to the guest in slices of this much fuel
 * (`../refuel.ts`); by default in one piece, as a single budget. The outcomes must not depend
 * on it.
 */
export function runFuelProgram(
  program: FuelProgram,
  bytes: Uint8Array,
  slice: bigint = 1n << 62n,
  /** The module imports its memory (`provideMemory`): these limits, in pages. */
  provided?: { minPages: number; maxPages: number },
): FuelOutcome[] {
  const start = program.fuel ?? 1_000_000n
  const meter = new FuelMeter(slice)
  meter.start(start)
  let exports: Record<string, unknown> = {}
  const extra = program.imports?.(
    () => meter.left(),
    () => exports,
  )
  const cap = new Wasm.Global({ value: 'i32', mutable: false }, 4)
  exports = new Wasm.Instance(new Wasm.Module(bytes), {
    ...extra,
    'warden:meter': {
      ...meter.imports(cap as unknown as WebAssembly.Global),
      ...(provided
        ? { memory: new Wasm.Memory({ initial: provided.minPages, maximum: provided.maxPages }) }
        : {}),
    },
  }).exports
  const outcomes: FuelOutcome[] = []
  for (const call of program.calls) {
    let result: string
    meter.trap.value = 0
    try {
      result = String((exports[call.export] as (...a: unknown[]) => unknown)(...call.args))
    } catch (err) {
      result = meter.trap.value !== 0 ? `trap:${meter.trap.value}` : `error:${(err as Error).name}`
    }
    outcomes.push({ result, fuelUsed: String(start - meter.left()) })
  }
  return outcomes
}
