/**
 * What a run reports as fuel spent when the engine stops it: the fuel count then lives in a
 * local the host cannot read, so the run is charged its whole budget. A guest must not be able
 * to burn fuel and then trap to report less.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { actionWat, compileWat } from './support/wat.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'

let rt: TestRuntime

beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
})

afterAll(async () => {
  await rt?.close()
})

/** Counts to `n` inside one function, then traps with `how`. */
function burnThenTrap(n: number, how: string): string {
  return actionWat(`
    (func $burn (param $n i32)
      (local $i i32)
      (loop $l
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
    (func $deep (param $x i32) (result i32)
      (i32.add (call $deep (i32.add (local.get $x) (i32.const 1))) (i32.const 1)))
    (func (export "run") (param i32 i32) (result i32)
      (call $burn (i32.const ${n}))
      ${how}
      (i32.const 0))`)
}

it('charges the whole budget for a trap, an out-of-bounds access or a stack overflow', async () => {
  const fuel = 50_000_000
  for (const how of [
    'unreachable',
    '(drop (i32.load (i32.const -4)))',
    '(drop (i32.div_u (i32.const 1) (i32.const 0)))',
    '(drop (call $deep (i32.const 0)))',
  ]) {
    const app = await rt.warden.load(await compileWat(burnThenTrap(1_000_000, how)))
    const run = await rt.warden.invoke(app, '{}', { limits: { fuel } })
    expect({ how, code: run.error?.code, fuelUsed: run.report.fuelUsed }).toEqual({
      how,
      code: 'guest_trap',
      fuelUsed: fuel,
    })
  }
})

it('still reports exactly what a run that ends normally, or runs out of fuel, spent', async () => {
  const app = await rt.warden.load(await compileWat(burnThenTrap(1000, '')))
  const first = await rt.warden.invoke(app, '{}', { limits: { fuel: 10_000_000 } })
  expect(first.ok).toBe(true)
  expect(first.report.fuelUsed).toBeLessThan(20_000)
  const again = await rt.warden.invoke(app, '{}', { limits: { fuel: 10_000_000 } })
  expect(again.report.fuelUsed).toBe(first.report.fuelUsed)
  const short = await rt.warden.invoke(app, '{}', { limits: { fuel: 500 } })
  expect(short.error?.code).toBe('fuel_exhausted')
})

it('succeeds at exactly its cost and not one fuel below, through a batched loop', async () => {
  // The burn loop is a small one-block loop: it pays for 4 iterations at once (cost model 5).
  for (const n of [1, 2, 3, 4, 5, 998, 1001]) {
    const app = await rt.warden.load(await compileWat(burnThenTrap(n, '')))
    const full = await rt.warden.invoke(app, '{}', { limits: { fuel: 10_000_000 } })
    const cost = full.report.fuelUsed!
    const exact = await rt.warden.invoke(app, '{}', { limits: { fuel: cost } })
    expect({ n, ok: exact.ok, fuelUsed: exact.report.fuelUsed }).toEqual({
      n,
      ok: true,
      fuelUsed: cost,
    })
    const short = await rt.warden.invoke(app, '{}', { limits: { fuel: cost - 1 } })
    expect({ n, code: short.error?.code, fuelUsed: short.report.fuelUsed }).toEqual({
      n,
      code: 'fuel_exhausted',
      fuelUsed: cost - 1,
    })
  }
})
