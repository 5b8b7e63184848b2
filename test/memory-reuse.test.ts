/**
 * A worker hands each new instance of a component either a fresh memory or the memory of an
 * earlier run of the same component, zeroed (`runtime/sandbox/memories.ts`). These tests try to
 * see the difference from inside the guest: every run reads its whole memory before it writes
 * anything, then scribbles over all of it, and sometimes grows it, traps or runs past its
 * deadline. Each run must read exactly what the first run on a fresh memory read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LoadedComponent } from '../runtime/index.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { actionWat, compileWat } from './support/wat.js'

/**
 * `run(mode)`: hashes memory[2048, end) and answers "<hash hex>:<pages>", after it filled
 * memory[2048, end) with `fill`; mode `g` grows a page first (and fills it), `t` traps and
 * `l` loops forever after filling. A data segment puts "canary" at 40000.
 */
function scribbler(fill: number): string {
  return actionWat(`
  (data (i32.const 40000) "canary")
  (func $hex (param $at i32) (param $v i32)
    (local $i i32) (local $n i32)
    (loop $digits
      (local.set $n (i32.and (i32.shr_u (local.get $v) (i32.sub (i32.const 28)
        (i32.mul (local.get $i) (i32.const 4)))) (i32.const 15)))
      (i32.store8 (i32.add (local.get $at) (local.get $i))
        (i32.add (local.get $n) (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $n) (i32.const 10)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $digits (i32.lt_u (local.get $i) (i32.const 8)))))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (local $mode i32) (local $p i32) (local $end i32) (local $h i32)
    (local.set $mode (i32.load8_u (local.get $ptr)))
    (local.set $end (i32.mul (memory.size) (i32.const 65536)))
    (local.set $p (i32.const 2048))
    (loop $sum
      (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (i32.load8_u (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $sum (i32.lt_u (local.get $p) (local.get $end))))
    (call $hex (i32.const 1536) (local.get $h))
    (i32.store8 (i32.const 1544) (i32.const 58))
    (call $hex (i32.const 1545) (memory.size))
    (if (i32.eq (local.get $mode) (i32.const 103))
      (then (drop (memory.grow (i32.const 1)))
            (local.set $end (i32.mul (memory.size) (i32.const 65536)))))
    (memory.fill (i32.const 2048) (i32.const ${fill}) (i32.sub (local.get $end) (i32.const 2048)))
    (if (i32.eq (local.get $mode) (i32.const 116)) (then unreachable))
    (if (i32.eq (local.get $mode) (i32.const 108)) (then (loop $spin (br $spin))))
    (call $ok (i32.const 1536) (i32.const 17)))`)
}

let rt: TestRuntime
let a: LoadedComponent
let b: LoadedComponent

beforeAll(async () => {
  // One worker: every run of a component after the first gets the memory of the run before.
  rt = await startTestRuntime({ poolSize: 1 })
  a = await rt.warden.load(await compileWat(scribbler(0xa5)))
  b = await rt.warden.load(await compileWat(scribbler(0x5a)))
}, 60_000)

afterAll(async () => {
  await rt?.close()
})

async function run(app: LoadedComponent, mode: string) {
  return rt.warden.invoke(app, mode, { limits: { fuel: 1e12, timeoutMs: 300, memoryMb: 2 } })
}

describe('a memory reset for the next run', () => {
  it('reads as a fresh one, after runs that wrote all of it, grew it, trapped or timed out', async () => {
    const first = await run(a, 'c')
    expect(first.ok).toBe(true)
    expect(first.output).toMatch(/^[0-9a-f]{8}:00000001$/)
    const modes = ['c', 'g', 'c', 't', 'c', 'l', 'c', 'g', 'g', 't', 'c']
    for (const mode of [...modes, ...modes]) {
      const result = await run(a, mode)
      if (mode === 't') {
        expect(result.error?.code).toBe('guest_trap')
      } else if (mode === 'l') {
        expect(result.error?.code).toBe('timeout')
      } else {
        expect({ mode, output: result.output }).toEqual({ mode, output: first.output })
        expect(result.report.memoryPeakBytes).toBe(mode === 'g' ? 2 * 65536 : 65536)
      }
    }
  })

  it('is never handed to another component, and each reads what its own first run read', async () => {
    const firstA = await run(a, 'c')
    const firstB = await run(b, 'c')
    expect(firstB.output).toBe(firstA.output)
    for (let i = 0; i < 20; i++) {
      const [x, y] = [await run(i % 2 ? a : b, 'c'), await run(i % 3 ? b : a, 'g')]
      expect([x.output, y.output]).toEqual([firstA.output, firstA.output])
    }
  })
})
