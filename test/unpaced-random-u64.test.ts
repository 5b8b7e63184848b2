/**
 * Ninth outside attack: host work the fuel does not pace, again (see test/unpaced-work.test.ts).
 *
 * The seventh attack's fix budgets the random *bytes* a run may draw (16 MiB), but
 * `wasi:random/random` `get-random-u64` (and `wasi:random/insecure` `get-insecure-random-u64`)
 * has no budget: each call costs the guest 2 fuel (the call and a drop) and the host a
 * `crypto.getRandomValues` call, a typed array and a BigInt, ~1–2 µs of CPU. So one 2^20-fuel
 * slice of unrolled calls is ~0.5–1 s of work between two fuel checks: a run past its deadline
 * (or cancelled by the kill switch) is not back within the pool's 500 ms grace, and its worker
 * is terminated and replaced (a new isolate, ~350 ms of CPU) at the attacker's will; and a
 * preparation whose start function does it is not interrupted when another app's job comes.
 *
 * Fixed: every call of a WASI function costs the guest `WASI_CALL_FUEL` (1,000) on top of its
 * instructions (`host-capabilities/wasi/worker.ts`).
 */
import { parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { guestFile, LIFT_RUN } from './support/wat.js'

/** `run`: calls `fn` forever, 256 calls per loop iteration (2 fuel a call). */
function u64Looper(fn: string, iface: string): string {
  const body = '(drop (call $u64))\n'.repeat(256)
  return `(component
  (import "${iface}" (instance $rand
    (export "${fn}" (func (result u64)))))
  (core module $memory (memory (export "memory") 1))
  (core instance $memory-i (instantiate $memory))
  (core func $u64 (canon lower (func $rand "${fn}")))
  (core module $main
    (import "env" "memory" (memory 1))
    (import "r" "u64" (func $u64 (result i64)))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
    (func (export "run") (param i32 i32) (result i32)
      (loop $l
        ${body}
        (br $l))
      (i32.const 16)))
  (core instance $main-i (instantiate $main
    (with "env" (instance $memory-i))
    (with "r" (instance (export "u64" (func $u64))))))
${LIFT_RUN})`
}

let rt: TestRuntime
beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
}, 60_000)
afterAll(() => rt?.close())

describe('get-random-u64 in a loop', () => {
  for (const [fn, iface] of [
    ['get-random-u64', 'wasi:random/random@0.2.0'],
    ['get-insecure-random-u64', 'wasi:random/insecure@0.2.0'],
  ] as const) {
    it(`${fn}: a run past its deadline ends in the guest, and its worker serves the next run`, async () => {
      const app = await rt.warden.load(await parse(u64Looper(fn, iface)))
      const echo = await rt.warden.load(await guestFile('echo'))
      const before = rt.warden.pool.replacements
      const runs = []
      for (let i = 0; i < 3; i++) {
        const run = await rt.warden.invoke(app, 'x', { limits: { timeoutMs: 200, fuel: 1e12 } })
        runs.push(run.error?.code)
        // The next tenant's run, on the only worker.
        const other = await rt.warden.invoke(echo, 'hello', {
          interfaces: ['warden:platform/log'],
          limits: { timeoutMs: 30_000 },
        })
        expect(other.error).toBeUndefined()
      }
      expect(runs).toEqual(['timeout', 'timeout', 'timeout'])
      // Ended in the guest within the grace: no worker was terminated. With the attack, every
      // run costs one replacement.
      expect(rt.warden.pool.replacements - before).toBe(0)
    }, 60_000)
  }
})
