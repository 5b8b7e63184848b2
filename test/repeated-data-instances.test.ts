/**
 * Eleventh outside attack: instantiation work no fuel check paces, multiplied by instantiating
 * one data-only core module many times.
 *
 * Only a module that *defines* a memory is refused when instantiated twice. A module that
 * imports the memory and carries a large (48 MiB) active data segment can be instantiated K times in
 * the component: each instantiation makes V8 copy the whole segment again, and no refuel sits
 * between them (jco's glue instantiates every core instance in a row, before any guest code).
 * The component stays small (one copy of the segment), but one instantiation does K × 48 MiB of
 * memcpy. Measured (1 worker): K = 990 instances of a 48 MiB segment (a 50 MB component) take
 * 2.1–2.3 s of instantiation and succeed under the default fuel (data segments cost none); with
 * a 100 ms timeout the run answers `timeout` at 100 ms, but the worker is not back within the
 * 500 ms grace: it is terminated and replaced on every run (victim waited ~650 ms each time). The
 * kill switch cannot end it in the guest either. (K is capped near 1,000 core instances by the
 * decoder; K = 300 of 16 MiB took ~0.2 s.)
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
const SEG_MIB = 48
const PAGES = SEG_MIB * 16 + 1

function component(): string {
  const seg = 'a'.repeat(SEG_MIB * 1024 * 1024)
  const instances = Array.from(
    { length: K },
    (_, i) => `(core instance $d${i} (instantiate $data (with "env" (instance $memory-i))))`,
  ).join('\n')
  return `(component
  (core module $memory (memory (export "memory") ${PAGES}))
  (core instance $memory-i (instantiate $memory))
  (core module $data
    (import "env" "memory" (memory ${PAGES}))
    (data (i32.const 65536) "${seg}"))
  ${instances}
  (core module $main
    (import "env" "memory" (memory ${PAGES}))
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

let bytes: Uint8Array
beforeAll(async () => {
  bytes = await parse(component())
}, 60_000)

describe('one data-only core module instantiated many times', () => {
  it('is refused at load under the default cap on instantiation work', async () => {
    await expect(strict.warden.load(bytes)).rejects.toMatchObject({
      code: 'invalid_component',
      message: expect.stringContaining('instantiating the component would copy'),
    })
  })

  it('ends at the run deadline without its worker being terminated (cap lifted)', async () => {
    console.log('component bytes', bytes.byteLength)
    const app = await rt.warden.load(bytes)
    const echo = await rt.warden.load(await guestFile('echo'))
    const before = rt.warden.pool.replacements
    const codes: (string | undefined)[] = []
    for (let i = 0; i < 2; i++) {
      const started = performance.now()
      const run = await rt.warden.invoke(app, 'x', { limits: { timeoutMs: 100 } })
      codes.push(run.error?.code)
      const s2 = performance.now()
      const other = await rt.warden.invoke(echo, 'hello', {
        interfaces: ['warden:platform/log'],
        limits: { timeoutMs: 30_000 },
      })
      console.log(
        'attacker',
        run.error,
        Math.round(s2 - started),
        'ms; victim waited',
        Math.round(performance.now() - s2),
        'ms; replacements',
        rt.warden.pool.replacements - before,
      )
      expect(other.error).toBeUndefined()
    }
    // With the attack every run's worker is terminated after its grace and replaced.
    expect(rt.warden.pool.replacements - before).toBe(0)
  }, 110_000)
})
