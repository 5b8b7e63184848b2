/**
 * Eleventh outside attack: unpaced instantiation from a tiny component. Only a module that
 * defines a memory is refused when instantiated twice; a module defining a 100,000-element
 * funcref table (the instrumenter's table bound) can be instantiated ~990 times (the decoder's
 * instance bound) by a component of a few KB. Instantiating it costs the sandbox worker
 * 1.3–1.4 s of CPU, before any guest code and with no refuel, for ~0 fuel: with the default
 * limits the run succeeds; with a 100 ms timeout the worker is not back within the 500 ms grace
 * and is terminated and replaced (~350 ms CPU) on every run. The tables (~0.8 GB of elements
 * over the run) are outside `memoryMb` too (reported peak: 64 KiB).
 *
 * Fixed: the sandbox reads the deadline and the kill switch (and, in a preparation, a waiting
 * job) before each core instantiation (`runtime/sandbox/worker.ts`, `instantiate`), so such a run
 * ends within one instance's work and its worker takes the next run. And since then, the load
 * refuses it (`invalid_component`): a component's instantiation work, summed over every core
 * instance, is capped (`DEFAULT_MAX_INSTANTIATION_BYTES`, 128 MiB, in
 * `runtime/loader/component-binary.ts`). The run-time defence is tested here on a runtime whose
 * host lifted that cap (`maxInstantiationBytes: Infinity`).
 */
import { parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { guestFile, LIFT_RUN } from './support/wat.js'

const K = 990
const ELEMS = 100_000

function component(): string {
  const instances = Array.from(
    { length: K },
    (_, i) => `(core instance $t${i} (instantiate $tab))`,
  ).join('\n')
  return `(component
  (core module $memory (memory (export "memory") 1))
  (core instance $memory-i (instantiate $memory))
  (core module $tab (table ${ELEMS} funcref))
  ${instances}
  (core module $main
    (import "env" "memory" (memory 1))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
    (func (export "run") (param i32 i32) (result i32) (i32.const 16)))
  (core instance $main-i (instantiate $main (with "env" (instance $memory-i))))
${LIFT_RUN})`
}

let rt: TestRuntime
let strict: TestRuntime
beforeAll(async () => {
  ;[rt, strict] = await Promise.all([
    startTestRuntime({ poolSize: 1, maxInstantiationBytes: Number.POSITIVE_INFINITY }),
    startTestRuntime({ poolSize: 1 }),
  ])
}, 60_000)
afterAll(() => Promise.all([rt?.close(), strict?.close()]))

describe('one table-defining core module instantiated many times', () => {
  it('is refused at load under the default cap on instantiation work', async () => {
    await expect(strict.warden.load(await parse(component()))).rejects.toMatchObject({
      code: 'invalid_component',
      message: expect.stringContaining('instantiating the component would copy'),
    })
  })

  it('ends by its limits, without a worker replaced (cap lifted)', async () => {
    const app = await rt.warden.load(await parse(component()))
    const echo = await rt.warden.load(await guestFile('echo'))
    const before = rt.warden.pool.replacements
    for (let i = 0; i < 2; i++) {
      const started = performance.now()
      const run = await rt.warden.invoke(app, 'x', { limits: { timeoutMs: 100 } })
      console.log(
        'attacker',
        run.error,
        run.report?.memoryPeakBytes,
        Math.round(performance.now() - started),
        'ms; replacements',
        rt.warden.pool.replacements - before,
      )
      const other = await rt.warden.invoke(echo, 'hello', { interfaces: ['warden:platform/log'] })
      expect(other.error).toBeUndefined()
    }
    expect(rt.warden.pool.replacements - before).toBe(0)
  }, 110_000)
})
