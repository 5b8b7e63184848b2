/**
 * Ninth outside attack: a preparation hides unpaced work again (see test/hidden-preparation.test.ts).
 *
 * The eighth attack's fixes say a preparation "gives way to a waiting job at its next refuel",
 * has a deadline of its own (checked at a refuel too), and only components whose fresh
 * instantiation took at most 50 ms are prepared. But a preparation's budget is four times the
 * fresh instantiation's fuel plus 1,000,000, under one 2^20-fuel slice for any cheap start
 * function: it never calls `refuel`, so neither its deadline nor a waiting job is ever looked
 * at. And 1M fuel of `wasi:random` `get-random-u64` calls (2 fuel each, no budget) is ~0.5–1 s
 * of host CPU. The start function tells a preparation from the measured fresh instantiation by
 * the wall clock: cheap before a time baked into the component, heavy after.
 *
 * The attacker's run answers at once (from the prepared instance); the worker then spends most
 * of a second preparing the next one, unseen by the pool, which sends it another app's run: that
 * run's deadline passes while it waits, it answers `timeout`, its app takes the strike.
 *
 * Fixed: a preparation runs in slices of 2^14 fuel (`PREPARE_SLICE`), so its deadline and a
 * waiting job are read every ~16k fuel; a preparation that spends its budget counts as an overrun;
 * and WASI calls cost fuel (`WASI_CALL_FUEL`).
 */
import { parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { guestFile, LIFT_RUN } from './support/wat.js'

/**
 * The attacker. Its start function draws 1,000 random u64s (~1–2 ms: worth preparing), and
 * before that, once the wall clock reads \`heavyFrom\` (epoch s) or later, ~440,000 more: ~880,000
 * fuel, under the preparation's budget (4 × the fresh instantiation's fuel + 1,000,000).
 */
function attackerWat(heavyFrom: number): string {
  const draws = '(drop (call $u64))\n'.repeat(256)
  return `(component
  (import "wasi:clocks/wall-clock@0.2.0" (instance $clock
    (type $datetime-def (record (field "seconds" u64) (field "nanoseconds" u32)))
    (export $datetime "datetime" (type (eq $datetime-def)))
    (export "now" (func (result $datetime)))))
  (import "wasi:random/random@0.2.0" (instance $rand
    (export "get-random-u64" (func (result u64)))))
  (core module $memory (memory (export "memory") 1))
  (core instance $memory-i (instantiate $memory))
  (core func $u64 (canon lower (func $rand "get-random-u64")))
  (core func $now (canon lower (func $clock "now") (memory $memory-i "memory")))
  (core module $main
    (import "env" "memory" (memory 1))
    (import "r" "u64" (func $u64 (result i64)))
    (import "c" "now" (func $now (param i32)))
    (data (i32.const 512) "done")
    (func $init (local $i i32)
      (call $now (i32.const 256))
      (if (i64.ge_u (i64.load (i32.const 256)) (i64.const ${heavyFrom}))
        (then
          (loop $heavy
            ${draws}
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $heavy (i32.lt_u (local.get $i) (i32.const 1700))))))
      (local.set $i (i32.const 0))
      (loop $cheap
        (drop (call $u64))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $cheap (i32.lt_u (local.get $i) (i32.const 1000)))))
    (start $init)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
    (func (export "run") (param i32 i32) (result i32)
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.const 512))
      (i32.store (i32.const 24) (i32.const 4))
      (i32.const 16)))
  (core instance $main-i (instantiate $main
    (with "env" (instance $memory-i))
    (with "r" (instance (export "u64" (func $u64))))
    (with "c" (instance (export "now" (func $now))))))
${LIFT_RUN})`
}

let rt: TestRuntime
beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
}, 60_000)
afterAll(() => rt?.close())

describe('a preparation of unpaced work', () => {
  it("does not make another app's run time out", async () => {
    const heavyFrom = Math.floor(Date.now() / 1000) + 3
    const attacker = await rt.warden.load(await parse(attackerWat(heavyFrom)))
    const echo = await rt.warden.load(await guestFile('echo'))
    const victim = () =>
      rt.warden.invoke(echo, 'hello', {
        appId: 'victim',
        interfaces: ['warden:platform/log'],
        limits: { timeoutMs: 300 },
      })
    // Before the switch: a cheap fresh instantiation (worth preparing), then a cheap
    // preparation after each run. (Another app's run on this worker would drop the prepared
    // instance: the victim comes only after the switch.)
    for (let i = 0; i < 2; i++) {
      const run = await rt.warden.invoke(attacker, 'x', { appId: 'attacker' })
      expect(run.error).toBeUndefined()
      expect(run.output).toBe('done')
    }
    await new Promise((r) => setTimeout(r, Math.max(0, heavyFrom * 1000 - Date.now()) + 100))
    // After it: the run answers at once from the instance prepared before the switch, and the
    // worker starts preparing the next one: ~880,000 fuel of draws, no refuel on the way.
    const started = performance.now()
    const run = await rt.warden.invoke(attacker, 'x', { appId: 'attacker' })
    const attackerMs = performance.now() - started
    expect(run.output).toBe('done')
    // Another app's run comes 50 ms later (past the 10 ms a preparation waits for a job).
    await new Promise((r) => setTimeout(r, 50))
    const before = rt.warden.pool.replacements
    const other = await victim()
    console.log(
      `attacker run ${Math.round(attackerMs)} ms; victim ${other.error?.code ?? 'ok'} after ${Math.round(other.report.wallMs ?? 0)} ms; replacements ${rt.warden.pool.replacements - before}`,
    )
    expect(attackerMs).toBeLessThan(250)
    // The victim's run, 300 ms deadline, on the worker the pool saw free.
    expect(other.error).toBeUndefined()
  }, 90_000)
})
