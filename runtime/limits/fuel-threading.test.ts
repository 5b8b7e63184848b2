import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { parse, print } from '@bytecodealliance/jco'
import { InstrumentError, TRAP_FUEL, instrumentModule } from './instrument.js'
import { rewriteModule } from './instrument/sections.js'
import type { FuelScheme } from './instrument/sections.js'
import { FUEL_PROGRAMS, runFuelProgram } from './fuel-programs.fixture.js'
import type { FuelProgram } from './fuel-programs.fixture.js'

const OPTS = { maxMemoryPages: 64, maxTableElements: 1000 }
// The project's lib setting has no WebAssembly types; describe what is used.
const Wasm = (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } })
  .WebAssembly

/**
 * Per program, per call: [result, fuelUsed], recorded under cost model 2 (fuel cached in a local
 * per function, flushed to the global before every call and reloaded after). Later schemes must
 * charge exactly the same.
 */
const COST_MODEL_2: Record<string, [string, number][]> = {
  'fib: recursion': [
    ['0', 7],
    ['1', 14],
    ['610', 21713],
  ],
  'even/odd: mutual recursion': [
    ['1', 96],
    ['1', 165],
    ['0', 2880],
  ],
  'multi-value functions called internally': [
    ['16', 28],
    ['6', 56],
  ],
  'exceptions crossing frames (legacy try/catch)': [
    ['6', 23],
    ['1009', 42],
    ['4', 62],
    ['-1', 78],
  ],
  'br, br_if and br_table to the function label': [
    ['18', 26],
    ['37', 54],
    ['17', 79],
    ['37', 107],
  ],
  'tail calls': [
    ['55', 119],
    ['5000050000', 1100128],
    ['7', 1550146],
  ],
  'functions exported and called internally, through a table too': [
    ['81', 4],
    ['32', 22],
    ['31', 40],
    ['2', 44],
    ['0', 47],
  ],
  'host imports read the fuel mid-recursion and call back in': [
    ['100070', 66],
    ['100529', 517],
  ],
  'memory.grow in a callee': [
    ['3', 15],
    ['6', 30],
    ['trap:2', 42],
  ],
  'fuel runs out mid-recursion': [['trap:1', 5014]],
  'fuel runs out in a loop inside a callee': [['trap:1', 779]],
  'many parameters and locals (local indices past 127)': [['38', 26]],
}

describe('fuel: the amounts of cost model 2 are kept', () => {
  for (const program of FUEL_PROGRAMS) {
    it(program.name, async () => {
      const plain = (await parse(program.wat)) as Uint8Array
      const outcomes = runFuelProgram(program, instrumentModule(plain, OPTS).bytes)
      expect(outcomes.map((o) => [o.result, Number(o.fuelUsed)])).toEqual(
        COST_MODEL_2[program.name],
      )
    })
  }
})

async function wat(text: string): Promise<Uint8Array> {
  return (await parse(text)) as Uint8Array
}

function rewrite(plain: Uint8Array, scheme: FuelScheme): Uint8Array {
  return rewriteModule(plain, OPTS.maxMemoryPages, OPTS.maxTableElements, scheme).bytes
}

/** Functions defined or imported by a module, counted in its printed form. */
async function functionCount(bytes: Uint8Array): Promise<number> {
  const text = (await print(bytes)) as string
  return text.split('\n').filter((l) => /^ {2}\(func |^ {2}\(import .*\(func/.test(l)).length
}

function expectInstrumentError(fn: () => unknown): void {
  expect(fn).toThrow(InstrumentError)
}

describe('fuel threaded through internal calls (cost model 3)', () => {
  it('threads every program above: each defined function gets a fuel-threaded twin', async () => {
    for (const program of FUEL_PROGRAMS) {
      const plain = await wat(program.wat)
      const threaded = rewrite(plain, 'threaded')
      const cached = rewrite(plain, 'cached')
      // The cached scheme adds one function: the refuel import.
      expect(await functionCount(cached)).toBe((await functionCount(plain)) + 1)
      const defined = (await functionCount(plain)) - (program.imports ? 1 : 0)
      expect(await functionCount(threaded)).toBe((await functionCount(plain)) + 1 + defined)
      const single = runFuelProgram(program, cached)
      expect(runFuelProgram(program, threaded)).toEqual(single)
      // The budget in slices (refuels at entries and loop headers): the same outcomes.
      for (const slice of [1n, 2n, 13n, 1000n]) {
        expect(runFuelProgram(program, threaded, slice)).toEqual(single)
        expect(runFuelProgram(program, cached, slice)).toEqual(single)
      }
    }
  })

  it('traps deep in a recursion with the fuel reason and the exact fuel left', async () => {
    const program = FUEL_PROGRAMS.find((p) => p.name === 'fuel runs out mid-recursion')!
    for (const fuel of [0n, 1n, 100n, 4321n]) {
      const run = { ...program, fuel }
      const plain = await wat(run.wat)
      const outcomes = runFuelProgram(run, rewrite(plain, 'threaded'))
      expect(outcomes[0].result).toBe(`trap:${TRAP_FUEL}`)
      // Every function entry is checked: the first check to see a negative count traps, and the
      // global holds it (what the block charged went past the start).
      expect(BigInt(outcomes[0].fuelUsed)).toBeGreaterThan(fuel)
      expect(outcomes).toEqual(runFuelProgram(run, rewrite(plain, 'cached')))
    }
  })

  it('keeps tail calls in constant stack: a million-step tail loop through two functions', async () => {
    const program: FuelProgram = {
      name: 'tail loop',
      fuel: 100_000_000n,
      wat: `(module
        (func $a (param i32) (result i32)
          (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 5))
            (else (return_call $b (i32.sub (local.get 0) (i32.const 1))))))
        (func $b (param i32) (result i32) (return_call $a (local.get 0)))
        (func (export "run") (param i32) (result i32) (return_call $a (local.get 0))))`,
      calls: [{ export: 'run', args: [1_000_000] }],
    }
    const plain = await wat(program.wat)
    const outcomes = runFuelProgram(program, rewrite(plain, 'threaded'))
    expect(outcomes[0].result).toBe('5')
    expect(outcomes).toEqual(runFuelProgram(program, rewrite(plain, 'cached')))
  })

  it('keeps delegate to the function label: the exception leaves the function', async () => {
    const program: FuelProgram = {
      name: 'delegate',
      wat: `(module
        (tag $e (param i32))
        (func $inner (param i32) (result i32)
          try (result i32)
            (if (local.get 0) (then (throw $e (local.get 0))))
            (i32.const 5)
          delegate 0)
        (func $mid (param i32) (result i32)
          try (result i32)
            try (result i32)
              (call $inner (local.get 0))
            delegate 1
          catch $e
            (i32.add (i32.const 100))
          end)
        (func (export "run") (param i32) (result i32)
          try (result i32)
            (call $mid (local.get 0))
          catch $e
            (i32.add (i32.const 1000))
          end))`,
      calls: [
        { export: 'run', args: [0] },
        { export: 'run', args: [7] },
      ],
    }
    const plain = await wat(program.wat)
    const outcomes = runFuelProgram(program, rewrite(plain, 'threaded'))
    expect(outcomes.map((o) => o.result)).toEqual(['5', '1007'])
    expect(outcomes).toEqual(runFuelProgram(program, rewrite(plain, 'cached')))
  })

  it('counts up to the last flush after a trap the engine raises: deterministic, at most the cached count', async () => {
    const program: FuelProgram = {
      name: 'division by zero deep in a recursion',
      wat: `(module
        (func $rec (param i32) (result i32)
          (if (result i32) (i32.eqz (local.get 0))
            (then (i32.div_u (i32.const 1) (local.get 0)))
            (else (i32.add (i32.const 1) (call $rec (i32.sub (local.get 0) (i32.const 1)))))))
        (func (export "run") (param i32) (result i32) (call $rec (local.get 0))))`,
      calls: [{ export: 'run', args: [50] }],
    }
    const plain = await wat(program.wat)
    const a = runFuelProgram(program, rewrite(plain, 'threaded'))
    const b = runFuelProgram(program, rewrite(plain, 'threaded'))
    const cached = runFuelProgram(program, rewrite(plain, 'cached'))
    expect(a).toEqual(b)
    expect(a[0].result).toBe('error:RuntimeError')
    expect(BigInt(a[0].fuelUsed)).toBeLessThanOrEqual(BigInt(cached[0].fuelUsed))
  })

  describe('falls back to the cached scheme for the whole module', () => {
    const fallback = async (text: string, calls: FuelProgram['calls']) => {
      const plain = await wat(text)
      const threaded = rewrite(plain, 'threaded')
      // No twin added: the output is the cached scheme's, byte for byte.
      expect(threaded).toEqual(rewrite(plain, 'cached'))
      expect(await functionCount(threaded)).toBe((await functionCount(plain)) + 1)
      const program: FuelProgram = { name: 'fallback', wat: text, calls }
      return runFuelProgram(program, threaded)
    }

    it('on return_call_indirect', async () => {
      const out = await fallback(
        `(module
          (type $t (func (param i32) (result i32)))
          (table 1 funcref) (elem (i32.const 0) $down)
          (func $down (param i32) (result i32)
            (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 3))
              (else (return_call_indirect (type $t) (i32.sub (local.get 0) (i32.const 1)) (i32.const 0)))))
          (func (export "run") (param i32) (result i32) (call $down (local.get 0))))`,
        [{ export: 'run', args: [10] }],
      )
      expect(out[0].result).toBe('3')
    })

    it('on return_call of an import', async () => {
      const plain = await wat(`(module
        (import "env" "f" (func $f (result i32)))
        (func (export "run") (result i32) (return_call $f)))`)
      expect(rewrite(plain, 'threaded')).toEqual(rewrite(plain, 'cached'))
    })

    it('on a function at the locals limit', async () => {
      const plain = await wat(`(module
        (func (export "run") (param i32) (result i32) (local i32 i32)
          (local.get 0))
        (func (export "wide") (local i64) (local i64)))`)
      expect(rewrite(plain, 'threaded')).not.toEqual(rewrite(plain, 'cached'))
      // 49,999 declared locals plus one parameter: no room for the fuel parameter.
      const wide = new Uint8Array([
        ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
        ...[0x01, 0x05, 0x01, 0x60, 0x01, 0x7f, 0x00], // type (i32) -> ()
        ...[0x03, 0x02, 0x01, 0x00],
        ...[0x0a, 0x08, 0x01, 0x06, 0x01, 0xcf, 0x86, 0x03, 0x7f, 0x0b], // 49,999 × i32
      ])
      expect(rewrite(wide, 'threaded')).toEqual(rewrite(wide, 'cached'))
    })
  })

  describe('refuses function and type indices past the input', () => {
    // In the output they would name the twins, which take fuel as an argument.
    const cases: [string, string][] = [
      ['an export', '(module (func) (export "x" (func 1)))'],
      ['an element segment', '(module (table 1 funcref) (func) (elem (i32.const 0) func 1))'],
      ['ref.func in a body', '(module (func (drop (ref.func 1))))'],
      ['ref.func in a global', '(module (func) (global funcref (ref.func 1)))'],
      ['the start function', '(module (func) (start 1))'],
      ['a call', '(module (func (call 1)))'],
      [
        'a call_indirect type',
        '(module (table 1 funcref) (func (call_indirect (type 1) (i32.const 0))))',
      ],
      ['a block type', '(module (type (func)) (func (block (type 1))))'],
    ]
    for (const [where, text] of cases) {
      it(`in ${where}`, async () => {
        const plain = await wat(text)
        expectInstrumentError(() => instrumentModule(plain, OPTS))
      })
    }
  })

  describe('refuses local indices and branch labels past the input, in both schemes', () => {
    // Invalid input the loader's validation already refuses; in the output they would name the
    // fuel local or land in a block the rewriter added, where a guest could set its own fuel.
    const cases: [string, string][] = [
      [
        'a local.set one past the locals',
        '(module (func (param i32) (local i32) (local.set 2 (i64.const 9))))',
      ],
      ['a local.get far past the locals', '(module (func (drop (local.get 300))))'],
      ['a br past the function label', '(module (func (i64.const 9) (br 1)))'],
      ['a br_if past the function label', '(module (func (block (br_if 2 (i32.const 1)))))'],
      [
        'a br_table past the function label',
        '(module (func (block (br_table 0 2 (i32.const 1)))))',
      ],
      [
        'a delegate past the function label',
        '(module (func try (result i32) (i32.const 1) delegate 1 drop))',
      ],
    ]
    for (const [what, text] of cases) {
      it(what, async () => {
        const plain = await wat(text)
        for (const scheme of ['threaded', 'cached'] as const) {
          expect(() => rewrite(plain, scheme)).toThrow(/out of range/)
        }
      })
    }
    it('the same code with the index or label in range is accepted', async () => {
      for (const text of [
        '(module (func (param i32) (local i64) (local.set 1 (i64.const 9))))',
        '(module (func (result i64) (i64.const 9) (br 0)))',
        '(module (func (block (br_table 0 1 (i32.const 1)))))',
        '(module (func (result i32) try (result i32) (i32.const 1) delegate 0))',
      ]) {
        const plain = await wat(text)
        for (const scheme of ['threaded', 'cached'] as const) {
          expect(Wasm.validate(rewrite(plain, scheme))).toBe(true)
        }
      }
    })
  })

  it('property: same results and fuelUsed as the cached scheme on generated programs', async () => {
    const FUNCS = 4
    const expr = fc.letrec<{ node: string }>((tie) => ({
      node: fc.oneof(
        { maxDepth: 4, depthSize: 'small' },
        fc.integer({ min: -9, max: 9 }).map((v) => `(i32.const ${v})`),
        fc.constant('(local.get $n)'),
        fc
          .tuple(fc.constantFrom('add', 'sub', 'mul', 'xor'), tie('node'), tie('node'))
          .map(([op, a, b]) => `(i32.${op} ${a} ${b})`),
        // A direct call, recursion included: n goes down, so every chain ends.
        fc.tuple(fc.nat(FUNCS - 1), tie('node')).map(
          ([j, e]) =>
            `(if (result i32) (i32.eqz (local.get $n)) (then ${e})
                 (else (call $f${j} (i32.sub (local.get $n) (i32.const 1)))))`,
        ),
        // Through the table (wrappers).
        fc.tuple(fc.nat(FUNCS - 1), tie('node')).map(
          ([j, e]) =>
            `(if (result i32) (i32.eqz (local.get $n)) (then ${e})
                 (else (call_indirect (type $t) (i32.sub (local.get $n) (i32.const 1)) (i32.const ${j}))))`,
        ),
        // A tail call.
        fc.tuple(fc.nat(FUNCS - 1), tie('node')).map(
          ([j, e]) =>
            `(if (result i32) (i32.eqz (local.get $n)) (then ${e})
                 (else (return_call $f${j} (i32.sub (local.get $n) (i32.const 1)))))`,
        ),
        // br_if and return to the function's label.
        fc
          .tuple(tie('node'), tie('node'))
          .map(
            ([a, b]) =>
              `(block (result i32) (drop (br_if 1 ${a} (i32.and (local.get $n) (i32.const 1)))) ${b})`,
          ),
        fc
          .tuple(tie('node'), tie('node'))
          .map(
            ([a, b]) =>
              `(if (result i32) (i32.gt_u (local.get $n) (i32.const 2)) (then (return ${a})) (else ${b}))`,
          ),
        // A loop that counts to n.
        tie('node').map(
          (e) => `(block (result i32)
             (local.set $i (i32.const 0))
             (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
             ${e})`,
        ),
        // A throw, caught by the export.
        fc.tuple(fc.integer({ min: 0, max: 4 }), tie('node')).map(
          ([k, e]) =>
            `(block (result i32)
                 (if (i32.eq (local.get $n) (i32.const ${k})) (then (throw $e)))
                 ${e})`,
        ),
      ),
    })).node
    await fc.assert(
      fc.asyncProperty(
        fc.array(expr, { minLength: FUNCS, maxLength: FUNCS }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 400 }),
        fc.bigInt({ min: 1n, max: 60n }),
        async (bodies, n, fuel, slice) => {
          const funcs = bodies.map(
            (body, j) => `(func $f${j} (param $n i32) (result i32) (local $i i32) ${body})`,
          )
          const text = `(module
            (type $t (func (param i32) (result i32)))
            (tag $e)
            (table ${FUNCS} funcref)
            (elem (i32.const 0) ${bodies.map((_, j) => `$f${j}`).join(' ')})
            ${funcs.join('\n')}
            (func (export "run") (param i32) (result i32)
              try (result i32)
                (call $f0 (local.get 0))
              catch_all
                (i32.const -1)
              end))`
          const plain = await wat(text)
          for (const start of [1_000_000n, BigInt(fuel)]) {
            const program: FuelProgram = {
              name: 'generated',
              wat: text,
              fuel: start,
              calls: [
                { export: 'run', args: [n] },
                { export: 'run', args: [n + 1] },
              ],
            }
            const single = runFuelProgram(program, rewrite(plain, 'cached'))
            expect(runFuelProgram(program, rewrite(plain, 'threaded'))).toEqual(single)
            // Refuels mid-function, mid-recursion, in callees through the table: no difference.
            expect(runFuelProgram(program, rewrite(plain, 'threaded'), slice)).toEqual(single)
            expect(runFuelProgram(program, rewrite(plain, 'cached'), slice)).toEqual(single)
          }
        },
      ),
      { numRuns: 60 },
    )
  }, 60_000)
})

describe('loops wrapped for their refill (cost model 6)', () => {
  // Branches that leave nested loops for outer blocks (br, br_if, br_table, a loop with a
  // result, a try in a loop with rethrow and delegate): their labels cross the three blocks
  // each wrapped loop gets, and must land where they did.
  const text = `(module
    (tag $e)
    (func $nested (param $n i32) (result i32)
      (local $i i32) (local $j i32) (local $acc i32)
      (block $out
        (loop $a
          (local.set $j (i32.const 0))
          (block $skip
            (loop $b
              (local.set $acc (i32.add (local.get $acc) (local.get $j)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br_table $b $skip $out $a (i32.rem_u (i32.add (local.get $i) (local.get $j)) (i32.const 7)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $a)))
      (local.get $acc))
    (func $valued (param $n i32) (result i32)
      (local $k i32)
      (loop $l (result i32)
        (local.set $k (i32.add (local.get $k) (i32.const 3)))
        (br_if $l (i32.lt_u (local.get $k) (local.get $n)))
        (local.get $k)))
    (func $tries (param $n i32) (result i32)
      (local $k i32)
      (block $done
        (loop $l
          try
            try
              (if (i32.eq (i32.rem_u (local.get $k) (i32.const 5)) (i32.const 4)) (then (throw $e)))
            delegate 0
          catch $e
            (local.set $k (i32.add (local.get $k) (i32.const 100)))
          end
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
          (br $l)))
      (local.get $k))
    (func (export "run") (param i32) (result i32)
      (i32.add (call $nested (local.get 0))
        (i32.add (call $valued (local.get 0)) (call $tries (local.get 0))))))`

  it('gives the same results and fuel at every slice size, in both schemes', async () => {
    const plain = await wat(text)
    const calls = [0, 1, 9, 50, 300].map((n) => ({ export: 'run', args: [n] }))
    const plainRun = new WebAssembly.Instance(
      new WebAssembly.Module(plain as Uint8Array<ArrayBuffer>),
      {},
    ).exports.run as (n: number) => number
    for (const fuel of [1_000_000n, 3_000n, 200n]) {
      const program: FuelProgram = { name: 'wrapped', wat: text, fuel, calls }
      const single = runFuelProgram(program, rewrite(plain, 'cached'))
      if (fuel === 1_000_000n) {
        expect(single.map((o) => o.result)).toEqual(
          calls.map((c) => String(plainRun(c.args[0] as number))),
        )
      }
      for (const slice of [1n, 2n, 7n, 64n]) {
        expect(runFuelProgram(program, rewrite(plain, 'threaded'), slice)).toEqual(single)
        expect(runFuelProgram(program, rewrite(plain, 'cached'), slice)).toEqual(single)
      }
    }
  })
})
