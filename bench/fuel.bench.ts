/**
 * Question: what does fuel metering cost? Three CPU kernels, each run as a plain core module
 * and as the same module instrumented by Warden, in this thread, on the same input; and, where
 * the kernel has a loop that Warden batches, instrumented with the per-iteration charge and
 * check of cost model 4 too (the A/B of batched loop charges, in the same run).
 */
import { parse } from '@bytecodealliance/jco'
import { instrumentModule } from '../runtime/limits/instrument.js'
import { rewriteModule } from '../runtime/limits/instrument/sections.js'
import { FuelMeter } from '../runtime/limits/refuel.js'
import { interleaved } from './support.js'
import type { Row } from './support.js'

const QUESTION =
  'fuel metering overhead (median CPU time per call, variants interleaved, vs the uninstrumented module)'

/** Each kernel exports `k() -> i32` and does a few milliseconds of work. */
const KERNELS: Record<string, string> = {
  'loop-heavy (nested arithmetic loops)': `(module
    (func (export "k") (result i32)
      (local $i i32) (local $j i32) (local $acc i32)
      (loop $outer
        (local.set $j (i32.const 0))
        (loop $inner
          (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 1103515245)) (local.get $j)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $inner (i32.lt_u (local.get $j) (i32.const 1000))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $outer (i32.lt_u (local.get $i) (i32.const 2000))))
      (local.get $acc)))`,
  'call-heavy (recursive fib 25)': `(module
    (func $fib (param $n i32) (result i32)
      (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
        (then (local.get $n))
        (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                       (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
    (func (export "k") (result i32) (call $fib (i32.const 25))))`,
  'memory-heavy (checksum and copy over 1 MiB)': `(module
    (memory 33)
    (func (export "k") (result i32)
      (local $p i32) (local $acc i32) (local $round i32)
      (loop $rounds
        (local.set $p (i32.const 0))
        (loop $scan
          (i32.store (i32.add (local.get $p) (i32.const 1048576))
            (i32.add (i32.load (local.get $p)) (local.get $round)))
          (local.set $acc (i32.xor (local.get $acc) (i32.load (i32.add (local.get $p) (i32.const 1048576)))))
          (local.set $p (i32.add (local.get $p) (i32.const 4)))
          (br_if $scan (i32.lt_u (local.get $p) (i32.const 1048576))))
        (local.set $round (i32.add (local.get $round) (i32.const 1)))
        (br_if $rounds (i32.lt_u (local.get $round) (i32.const 8))))
      (local.get $acc)))`,
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = []
  for (const [name, wat] of Object.entries(KERNELS)) {
    const plainBytes = await parse(wat)
    const metered = instrumentModule(plainBytes, { maxMemoryPages: 1024, maxTableElements: 1000 })
    const perIteration = rewriteModule(plainBytes, 1024, 1000, 'threaded', false)
    const batches = Buffer.compare(metered.bytes, perIteration.bytes) !== 0
    const plain = new WebAssembly.Instance(
      new WebAssembly.Module(plainBytes as Uint8Array<ArrayBuffer>),
    )
    // The worker's meter: the budget in slices of FUEL_SLICE, refuelled out of line.
    const fuelMeter = new FuelMeter()
    const meter = fuelMeter.imports(new WebAssembly.Global({ value: 'i32', mutable: false }, 1024))
    const k = plain.exports.k as () => number
    const want = k()
    /** The kernel instrumented as `bytes`, checked against the plain result; and its fuel. */
    const meteredRun = (bytes: Uint8Array): [() => void, bigint] => {
      const instance = new WebAssembly.Instance(
        new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>),
        { 'warden:meter': meter },
      )
      const km = instance.exports.k as () => number
      fuelMeter.start(1n << 60n)
      if (km() !== want) {
        throw new Error(`${name}: instrumented result differs`)
      }
      const fuel = (1n << 60n) - fuelMeter.left()
      return [
        () => {
          fuelMeter.start(1n << 60n)
          km()
        },
        fuel,
      ]
    }
    const [km, used] = meteredRun(metered.bytes)
    const tasks: Record<string, () => unknown> = { plain: () => k(), metered: km }
    if (batches) {
      const [kp, usedPerIteration] = meteredRun(perIteration.bytes)
      if (usedPerIteration !== used) {
        throw new Error(`${name}: batched loops charged ${used}, per iteration ${usedPerIteration}`)
      }
      tasks.perIteration = kp
    }
    const m = interleaved(tasks, { rounds: 300 })
    const wall = (task: string) => `wall ×${(m[task]!.wallUs / m.plain!.wallUs).toFixed(2)}`
    rows.push({
      question: QUESTION,
      name: `${name}: plain`,
      medianUs: m.plain!.cpuUs,
      note: `wall ${m.plain!.wallUs.toFixed(0)} µs`,
    })
    rows.push({
      question: QUESTION,
      name: `${name}: metered`,
      medianUs: m.metered!.cpuUs,
      ratio: m.metered!.cpuUs / m.plain!.cpuUs,
      baseline: 'plain',
      target: '≤ ×1.15',
      note: `${used} fuel, ${wall('metered')}`,
    })
    if (batches) {
      rows.push({
        question: QUESTION,
        name: `${name}: metered, per-iteration loop charges (cost model 4)`,
        medianUs: m.perIteration!.cpuUs,
        ratio: m.perIteration!.cpuUs / m.plain!.cpuUs,
        baseline: 'plain',
        note: `the same fuel, ${wall('perIteration')}`,
      })
    }
  }
  return rows
}
