/**
 * Eighth outside attack: a publisher's start function made the instance a worker prepares after
 * each of its runs (`worker.ts`, `prepareNext`) hide work from the pool. The pool sees the worker
 * free once the result is posted and may send it another app's run, whose deadline starts at
 * dispatch; that run was answered `timeout` without having run, took the strike, and its worker
 * was terminated at the end of the grace. Now a preparation gives way to a waiting job at its
 * next refuel (within a slice of its work), a component whose fresh instantiation takes more
 * than 50 ms is not prepared at all, and the pool sends another component's run to a worker
 * that is not preparing when it has one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LoadedComponent } from '../runtime/index.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { actionWat, compileWat, LIFT_RUN } from './support/wat.js'

/**
 * The attacker: a start function that spends ~0.5 s on `n` fills of its 64 MiB memory (1 fuel per
 * 64 bytes: ~6e8 fuel, under the default 1e9), and a `run` that answers at once.
 */
function slowStart(n: number): string {
  return `(component
  (core module $memory (memory (export "memory") 1024))
  (core instance $memory-i (instantiate $memory))
  (core module $main
    (import "env" "memory" (memory 1))
    (func $burn (local $i i32)
      (loop $l
        (memory.fill (i32.const 0) (i32.const 0) (i32.const 67108864))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const ${n})))))
    (start $burn)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param $ptr i32) (param $len i32) (result i32)
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.const 100))
      (i32.store (i32.const 24) (i32.const 0))
      (i32.const 16)))
  (core instance $main-i (instantiate $main (with "env" (instance $memory-i))))
${LIFT_RUN})`
}

/**
 * The same attack at default limits (fuel 1e9, 5 s): `n` copies of 32 MiB inside its memory
 * (1 fuel per 64 bytes: 524,288 fuel each), work whose speed does not depend on V8's tiers.
 */
function copies(n: number): string {
  return slowStart(0)
    .replace(
      '(memory.fill (i32.const 0) (i32.const 0) (i32.const 67108864))',
      '(memory.copy (i32.const 0) (i32.const 33554432) (i32.const 33554432))',
    )
    .replace('(i32.const 0)))))\n    (start', `(i32.const ${n})))))\n    (start`)
}

const tiny = actionWat(
  `(func (export "run") (param i32 i32) (result i32) (call $ok (i32.const 0) (i32.const 0)))`,
)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// Both defences on their own: the attacker's instantiation (0.5–2 s) is not prepared at all; and
// with that bound lifted, its preparation gives way to the other app's job.
describe.each([
  { defence: 'a slow instantiation is not prepared', options: {} },
  {
    defence: 'a preparation gives way to a waiting job',
    options: { prepareBelowMs: Number.POSITIVE_INFINITY },
  },
])(
  'an instance prepared after a run is never work another app waits for ($defence)',
  ({ options }) => {
    let rt: TestRuntime
    let attacker: LoadedComponent
    let victim: LoadedComponent

    afterAll(async () => {
      await rt?.close()
    })

    describe('one worker', () => {
      beforeAll(async () => {
        rt = await startTestRuntime({ poolSize: 1, ...options })
        attacker = await rt.warden.load(await compileWat(slowStart(600)))
        victim = await rt.warden.load(await compileWat(tiny))
      }, 120_000)

      it("another app's tiny run, sent after the attacker's run answered, still runs", async () => {
        const alone = await rt.warden.invoke(victim, 'x', { limits: { timeoutMs: 300 } })
        expect(alone.ok).toBe(true)
        const codes: string[] = []
        for (let i = 0; i < 3; i++) {
          const a = await rt.warden.invoke(attacker, 'x')
          expect(a.ok).toBe(true) // an ordinary, successful run within default limits
          await sleep(50) // past PREPARE_DELAY_MS: the worker is preparing, the pool sees it free
          const v = await rt.warden.invoke(victim, 'x', { limits: { timeoutMs: 300 } })
          codes.push(v.ok ? 'ok' : v.error!.code)
        }
        // Before the fix: ['timeout', 'timeout', 'timeout'] (queuedMs ~0.3: dispatched at once).
        expect(codes).toEqual(['ok', 'ok', 'ok'])
      }, 60_000)

      it("at default limits, another app's run waits for no hidden preparation", async () => {
        const slow = await rt.warden.load(await compileWat(copies(1500)))
        const a = await rt.warden.invoke(slow, 'x') // default limits: fuel 1e9, 5 s
        expect(a.ok).toBe(true)
        expect(a.report.fuelUsed).toBeLessThan(1e9)
        await sleep(50)
        // Before the fix the victim's ~1 ms run was answered after ~1.9 s (the attacker's
        // instantiation, repeated after every run of the attacker, never counted).
        const v = await rt.warden.invoke(victim, 'x', { limits: { timeoutMs: 300 } })
        expect(v.ok).toBe(true)
      }, 60_000)

      it("does not make the pool kill the worker that another app's run was sent to", async () => {
        // The victim's run is answered `timeout` at 300 ms; its worker, still preparing the
        // attacker's instance (~1.7 s), has not come back after the 500 ms grace, so it is
        // terminated and replaced: every component and prepared instance in it is lost, and the
        // victim's app takes the strike (a hog: fewer workers, nice 19). The attacker's runs all
        // succeed, and nothing is counted against it.
        const slow = await rt.warden.load(await compileWat(copies(1500)))
        const before = rt.warden.pool.replacements
        for (let i = 0; i < 2; i++) {
          const a = await rt.warden.invoke(slow, 'x')
          expect(a.ok).toBe(true)
          await sleep(50)
          await rt.warden.invoke(victim, 'x', { limits: { timeoutMs: 300 } })
        }
        await sleep(1500)
        // Before the fix: 2 (one worker killed per pair of runs).
        expect(rt.warden.pool.replacements - before).toBe(0)
      }, 60_000)
    })

    describe('two workers', () => {
      beforeAll(async () => {
        await rt?.close()
        rt = await startTestRuntime({ poolSize: 2, ...options })
        attacker = await rt.warden.load(await compileWat(slowStart(600)))
        victim = await rt.warden.load(await compileWat(tiny))
      }, 120_000)

      it('two runs of the attacker at once do not leave another app without a worker', async () => {
        const codes: string[] = []
        for (let i = 0; i < 4; i++) {
          const pair = await Promise.all([
            rt.warden.invoke(attacker, 'x'),
            rt.warden.invoke(attacker, 'x'),
          ])
          expect(pair.every((r) => r.ok)).toBe(true)
          await sleep(50)
          const v = await rt.warden.invoke(victim, 'x', { limits: { timeoutMs: 300 } })
          codes.push(v.ok ? 'ok' : v.error!.code)
        }
        // Before the fix: most were 'timeout' (e.g. timeout, timeout, ok, timeout).
        expect(codes).toEqual(['ok', 'ok', 'ok', 'ok'])
      }, 60_000)
    })
  },
)
