/**
 * Batched loop charges (cost model 5): a small one-block loop `loop; S; br_if 0; end` pays for
 * LOOP_BATCH iterations at once, and the fuel the host sees (at flushes, at the fuel trap, when
 * the export returns) is what the per-iteration code of cost model 4 leaves, at any budget.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { parse } from '@bytecodealliance/jco'
import { MAX_FUNCTION_LOCALS, TRAP_FUEL } from './instrument.js'
import { LOOP_BATCH, LOOP_BATCH_BUDGET_SHIFT, LOOP_BATCH_MAX_COST } from './instrument/code.js'
import { rewriteModule } from './instrument/sections.js'
import type { FuelScheme } from './instrument/sections.js'
import { runFuelProgram } from './fuel-programs.fixture.js'
import type { FuelCall, FuelOutcome } from './fuel-programs.fixture.js'

const OPTS = { maxMemoryPages: 64, maxTableElements: 1000 }
const SCHEMES: FuelScheme[] = ['threaded', 'cached']

async function wat(text: string): Promise<Uint8Array> {
  return (await parse(text)) as Uint8Array
}

function rewrite(plain: Uint8Array, scheme: FuelScheme, batch: boolean): Uint8Array {
  return rewriteModule(plain, OPTS.maxMemoryPages, OPTS.maxTableElements, scheme, batch).bytes
}

function run(
  text: string,
  bytes: Uint8Array,
  calls: FuelCall[],
  fuel: bigint,
  slice?: bigint,
): FuelOutcome[] {
  return runFuelProgram({ name: 'loop', wat: text, calls, fuel }, bytes, slice)
}

/**
 * Budgets handed out in slices this small refuel mid-batch, mid-iteration and at every check:
 * the outcomes must be those of the single budget (`../refuel.ts`).
 */
const SLICES = [1n, 3n, 17n, 100n]

/** Whether batching changed the module (some loop in it was batched). */
function batched(plain: Uint8Array, scheme: FuelScheme = 'threaded'): boolean {
  const a = rewrite(plain, scheme, true)
  const b = rewrite(plain, scheme, false)
  return a.length !== b.length || a.some((v, i) => v !== b[i])
}

/**
 * Runs `calls` with batched and per-iteration code, both schemes, at every budget in `budgets`,
 * in one piece and in each of `slices`, and expects the outcomes of the per-iteration code with
 * the single budget.
 */
function expectSameFuel(
  text: string,
  plain: Uint8Array,
  calls: FuelCall[],
  budgets: bigint[],
  slices: bigint[] = SLICES,
): void {
  for (const scheme of SCHEMES) {
    const on = rewrite(plain, scheme, true)
    const off = rewrite(plain, scheme, false)
    for (const fuel of budgets) {
      const expected = { scheme, fuel, out: run(text, off, calls, fuel) }
      expect({ scheme, fuel, out: run(text, on, calls, fuel) }).toEqual(expected)
      for (const slice of slices) {
        expect({ scheme, fuel, slice, out: run(text, on, calls, fuel, slice) }).toEqual({
          ...expected,
          slice,
        })
        expect({ scheme, fuel, slice, out: run(text, off, calls, fuel, slice) }).toEqual({
          ...expected,
          slice,
        })
      }
    }
  }
}

/** The loop of bench/fuel.bench.ts's memory kernel, over `n` words. */
const SCAN = `(module
  (memory 1)
  (func (export "scan") (param $n i32) (result i32)
    (local $p i32) (local $acc i32)
    (loop $scan
      (i32.store (i32.add (local.get $p) (i32.const 32768))
        (i32.add (i32.load (local.get $p)) (i32.const 1)))
      (local.set $acc (i32.xor (local.get $acc) (i32.load (i32.add (local.get $p) (i32.const 32768)))))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br_if $scan (i32.lt_u (local.get $p) (i32.shl (local.get $n) (i32.const 2)))))
    (local.get $acc)))`

describe('batched loop charges', () => {
  it('batches a small one-block loop and charges what the per-iteration code charges', async () => {
    const plain = await wat(SCAN)
    expect(batched(plain)).toBe(true)
    // Every exit point of a batch, in the first batch and after a few.
    for (let n = 1; n <= 3 * LOOP_BATCH + 1; n++) {
      const calls = [{ export: 'scan', args: [n] }]
      const need = BigInt(
        run(SCAN, rewrite(plain, 'threaded', false), calls, 1n << 40n)[0].fuelUsed,
      )
      // The fuel trap comes at the same iteration with the same count, at every budget around
      // the need and far below it; at the need and above the run completes.
      const budgets = [0n, 1n, 5n, 30n, 60n, 100n, need / 2n, need - 1n, need, need + 1n]
      expectSameFuel(SCAN, plain, calls, budgets)
      const threaded = rewrite(plain, 'threaded', true)
      expect(run(SCAN, threaded, calls, need)[0].result).not.toMatch(/trap/)
      // One short: a trap in the loop, or an overdraw after it that the worker's check on
      // return turns into fuel_exhausted.
      const short = run(SCAN, threaded, calls, need - 1n)[0]
      expect(short.result === `trap:${TRAP_FUEL}` || BigInt(short.fuelUsed) >= need).toBe(true)
    }
  })

  it('charges the same across many batches and budgets, run after run on one instance', async () => {
    const plain = await wat(SCAN)
    const calls = [500, 3, 1000, 7].map((n) => ({ export: 'scan', args: [n] }))
    const off = rewrite(plain, 'threaded', false)
    const total = BigInt(run(SCAN, off, calls, 1n << 40n).at(-1)!.fuelUsed)
    const budgets = [0n, 99n, 10_000n, 12_345n, total / 3n, total - 24n, total - 1n, total]
    expectSameFuel(SCAN, plain, calls, budgets)
  })

  it('leaves an engine trap in the middle of a batch with the global of the per-iteration code', async () => {
    // The store goes out of bounds at iteration 16,384 (batches of LOOP_BATCH), the division by
    // zero at iteration 5: the fuel count in the global is the last flush in both.
    const text = `(module
      (import "host" "probe" (func $probe (param i32) (result i32)))
      (memory 1)
      (func (export "oob") (param $n i32) (result i32)
        (local $i i32)
        (drop (call $probe (i32.const 0)))
        (loop $l
          (i32.store (i32.shl (local.get $i) (i32.const 2)) (local.get $i))
          (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
        (local.get $i))
      (func (export "div") (param $n i32) (result i32)
        (local $i i32) (local $acc i32)
        (drop (call $probe (i32.const 0)))
        (loop $l
          (local.set $acc (i32.div_u (local.get $n) (i32.sub (local.get $i) (i32.const 5))))
          (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
        (local.get $acc)))`
    const plain = (await wat(text)) as Uint8Array
    expect(batched(plain)).toBe(true)
    const calls = [
      { export: 'oob', args: [20_000] },
      { export: 'div', args: [10] },
    ]
    for (const scheme of SCHEMES) {
      const probe = () => ({ host: { probe: (x: number) => x } })
      const prog = (fuel: bigint) => ({ name: 'traps', wat: text, calls, fuel, imports: probe })
      for (const fuel of [1_000_000n, 100_000n, 50n]) {
        const on = runFuelProgram(prog(fuel), rewrite(plain, scheme, true))
        expect(on).toEqual(runFuelProgram(prog(fuel), rewrite(plain, scheme, false)))
        if (fuel === 1_000_000n) {
          expect(on.map((o) => o.result)).toEqual(['error:RuntimeError', 'error:RuntimeError'])
        }
      }
    }
  })

  it('adds at most 1/8 of the code section, however many small loops a module has', async () => {
    // 20,000 tiny loops: batching them all would make the output ~3 times as large.
    const loops = 20_000
    const text = `(module (func (export "run") (result i32) (local $i i32)
      ${'(loop (br_if 0 (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 3))))'.repeat(loops)}
      (local.get $i)))`
    const plain = await wat(text)
    const on = rewrite(plain, 'threaded', true)
    const off = rewrite(plain, 'threaded', false)
    // The code section is nearly the whole module; one loop's copies may pass the budget.
    expect(on.length).toBeGreaterThan(off.length + plain.length / 16)
    expect(on.length).toBeLessThan(
      off.length + plain.length / (1 << LOOP_BATCH_BUDGET_SHIFT) + 2048,
    )
    // The loops past the budget keep the per-iteration code; the fuel is the same.
    const calls = [{ export: 'run', args: [] }]
    expect(run(text, on, calls, 1n << 40n)).toEqual(run(text, off, calls, 1n << 40n))
    const need = BigInt(run(text, off, calls, 1n << 40n)[0].fuelUsed)
    expectSameFuel(text, plain, calls, [need - 1n, need / 2n, 7n])
  })

  describe('leaves other loops to the per-iteration code', () => {
    const body = '(local.set $x (i32.add (local.get $x) (i32.const 3)))'
    const cond = '(i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 10))'
    const fn = (code: string) => `(module
      (memory 1)
      (func $g (result i32) (i32.const 1))
      (func (export "run") (result i32)
        (local $i i32) (local $x i32)
        ${code}
        (local.get $x)))`
    const cases: [string, string][] = [
      [
        'a loop with a result',
        `(drop (loop $l (result i32) (i32.const 7) ${body} (br_if $l ${cond})))`,
      ],
      [
        'a loop with a parameter',
        `i32.const 0 loop $l (param i32) (result i32) i32.const 1 i32.add local.tee $x ${cond} br_if $l end drop`,
      ],
      ['a call in the loop', `(loop $l ${body} (drop (call $g)) (br_if $l ${cond}))`],
      [
        'a branch out of the loop',
        `(block $b (loop $l ${body} (br_if $b (local.get $x)) (br_if $l ${cond})))`,
      ],
      ['code after the br_if', `(loop $l ${body} (br_if $l ${cond}) (nop))`],
      ['a br_if to an outer label', `(block $b (loop $l ${body} (br_if $b ${cond})))`],
      ['a nested block', `(loop $l (block ${body}) (br_if $l ${cond}))`],
      [
        'an unconditional back edge',
        `(block $b (loop $l ${body} (br_if $b (i32.eqz ${cond})) (br $l)))`,
      ],
      [
        'memory.grow in the loop',
        `(loop $l (drop (memory.grow (i32.const 0))) (br_if $l ${cond}))`,
      ],
      [
        'a bulk op in the loop',
        `(loop $l (memory.fill (i32.const 0) (i32.const 0) (i32.const 8)) (br_if $l ${cond}))`,
      ],
      [
        `an iteration over ${LOOP_BATCH_MAX_COST} fuel`,
        `(loop $l ${body.repeat(Math.ceil(LOOP_BATCH_MAX_COST / 5))} (br_if $l ${cond}))`,
      ],
    ]
    for (const [what, code] of cases) {
      it(what, async () => {
        const text = fn(code)
        const plain = await wat(text)
        expect(batched(plain)).toBe(false)
        expect(batched(plain, 'cached')).toBe(false)
      })
    }

    it(`a function metering on the global (at ${MAX_FUNCTION_LOCALS} locals)`, async () => {
      const text = (extra: number) => `(module
        (func (export "run") (param $n i32) (result i32) (local $i i32) (local ${'i32 '.repeat(extra)})
          (loop $l (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
          (local.get $i)))`
      // At the limit: no room for the fuel parameter, and the cached scheme meters this function
      // on the global, where nothing is batched.
      expect(batched(await wat(text(MAX_FUNCTION_LOCALS - 2)))).toBe(false)
      expect(batched(await wat(text(MAX_FUNCTION_LOCALS - 2)), 'cached')).toBe(false)
      // One local fewer: a fuel local, and the loop is batched.
      expect(batched(await wat(text(MAX_FUNCTION_LOCALS - 3)))).toBe(true)
    })
  })

  it('property: same outcomes as the per-iteration code on generated loops, any budget', async () => {
    let batchedPrograms = 0
    const stmt = fc.oneof(
      fc.constant('(nop)'),
      fc
        .integer({ min: -5, max: 5 })
        .map((k) => `(local.set $acc (i32.add (local.get $acc) (i32.const ${k})))`),
      fc.constant(
        '(local.set $acc (i32.xor (local.get $acc) (i32.load (i32.and (local.get $i) (i32.const 0xfffc)))))',
      ),
      // Out of bounds once $i·k passes the page: an engine trap mid-batch.
      fc
        .integer({ min: 1, max: 8192 })
        .map((k) => `(i32.store (i32.mul (local.get $i) (i32.const ${k})) (local.get $acc))`),
      fc.constant('(global.set $g (i32.add (global.get $g) (i32.const 1)))'),
      fc.constant('(local.set $w (i64.add (local.get $w) (i64.extend_i32_u (local.get $i))))'),
      fc.constant('(local.set $acc (select (local.get $i) (local.get $acc) (local.get $n)))'),
      // Division by zero when $i reaches k.
      fc
        .integer({ min: 0, max: 40 })
        .map(
          (k) =>
            `(local.set $acc (i32.rem_u (local.get $acc) (i32.sub (local.get $i) (i32.const ${k}))))`,
        ),
    )
    const loop = fc
      .tuple(fc.array(stmt, { maxLength: 6 }), fc.boolean())
      .map(([stmts, countDown]) =>
        countDown
          ? `(local.set $c (local.get $n))
             (loop $l ${stmts.join(' ')}
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.gt_s (local.tee $c (i32.sub (local.get $c) (i32.const 1))) (i32.const 0))))`
          : `(loop $l ${stmts.join(' ')}
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))`,
      )
    // Where the loop sits: alone, twice, inside an if, inside an outer loop, in a callee.
    const placed = fc.tuple(loop, fc.constantFrom('alone', 'twice', 'if', 'outer', 'callee'))
    await fc.assert(
      fc.asyncProperty(
        placed,
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 3 }),
        fc.bigInt({ min: 0n, max: 4000n }),
        fc.bigInt({ min: 1n, max: 200n }),
        async ([code, where], ns, randomFuel, slice) => {
          const reset = '(local.set $i (i32.const 0))'
          const inner =
            where === 'twice'
              ? `${code} ${reset} ${code}`
              : where === 'if'
                ? `(if (i32.gt_u (local.get $n) (i32.const 2)) (then ${code}))`
                : where === 'outer'
                  ? `(loop $o ${reset} ${code}
                       (br_if $o (i32.lt_u (local.tee $r (i32.add (local.get $r) (i32.const 1))) (i32.const 3))))`
                  : code
          const locals =
            '(local $i i32) (local $c i32) (local $r i32) (local $acc i32) (local $w i64)'
          const text = `(module
            (memory 1)
            (global $g (mut i32) (i32.const 0))
            (func $body (param $n i32) (result i32) ${locals}
              ${inner}
              (i32.add (local.get $acc) (i32.wrap_i64 (local.get $w))))
            (func (export "run") (param $n i32) (result i32) ${locals}
              ${where === 'callee' ? '(local.set $acc (call $body (local.get $n)))' : inner}
              (i32.add (local.get $acc) (i32.wrap_i64 (local.get $w)))))`
          const plain = await wat(text)
          if (batched(plain)) {
            batchedPrograms++
          }
          const calls = ns.map((n) => ({ export: 'run', args: [n] }))
          const off = rewrite(plain, 'threaded', false)
          const need = BigInt(run(text, off, calls, 1n << 40n).at(-1)!.fuelUsed)
          const budgets = [randomFuel, need - 1n, need, (need * 3n) / 4n, 0n].filter((f) => f >= 0n)
          expectSameFuel(text, plain, calls, budgets, [slice, 1n])
        },
      ),
      { numRuns: 150 },
    )
    // Most generated loops are small enough to be batched: the property is not vacuous.
    expect(batchedPrograms).toBeGreaterThan(75)
  }, 120_000)
})
