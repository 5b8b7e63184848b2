/**
 * A run past its deadline ends in the guest, at its next refuel (`runtime/limits/refuel.ts`),
 * and its worker takes the next run: no worker is terminated or replaced. The pool's watchdog
 * stays the backstop for a guest that does not come back (stuck in a host call), and answers
 * `timeout` at the deadline either way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestEchoCapability, ECHO_INTERFACE } from '../host-capabilities/test-echo/index.js'
import { resolveLimits } from '../runtime/limits/limits.js'
import type { Limits } from '../runtime/limits/limits.js'
import type { LoadedComponent } from '../runtime/loader/load.js'
import { SandboxPool } from '../runtime/sandbox/pool.js'
import type { PoolJob, PoolResult, SandboxPoolOptions } from '../runtime/sandbox/pool.js'
import { fakeRunContext } from './support/context.js'
import * as guests from './support/guests.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { actionWat, compileWat } from './support/wat.js'

/**
 * Counts its runs in a global and in memory, answers the count; input `loop…` then spins
 * forever. A second run on the same instance would answer 2.
 */
const COUNT_THEN_MAYBE_SPIN = actionWat(`
  (global $runs (mut i32) (i32.const 0))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
    (i32.store8 (i32.const 512) (i32.add (i32.load8_u (i32.const 512)) (i32.const 1)))
    (i32.store8 (i32.const 513) (i32.add (i32.const 48) (global.get $runs)))
    (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 108))
      (then (loop $l (br $l))))
    (i32.store8 (i32.const 514) (i32.add (i32.const 48) (i32.load8_u (i32.const 512))))
    (call $ok (i32.const 513) (i32.const 2)))`)

let rt: TestRuntime
const apps: Record<string, LoadedComponent> = {}
const pools: SandboxPool[] = []

beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1, brokerCapabilities: [createTestEchoCapability()] })
  apps.counter = await rt.warden.load(await compileWat(COUNT_THEN_MAYBE_SPIN))
  apps.loop = await rt.warden.load(await compileWat(guests.infiniteLoop))
  apps.startLoop = await rt.warden.load(await compileWat(guests.startLoop))
  apps.kernel = await rt.warden.load(await compileWat(guests.cpuKernel(200)))
  apps.caller = await rt.warden.load(await compileWat(guests.ECHO_CALLER))
}, 60_000)

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()))
  await rt?.close()
})

async function pool(options: Partial<SandboxPoolOptions> = {}): Promise<SandboxPool> {
  const p = new SandboxPool({
    size: 1,
    brokerInterfaces: {},
    onHostCall: () => ({ ok: true, value: null }),
    ...options,
  })
  pools.push(p)
  await p.warm()
  return p
}

function job(app: LoadedComponent, input: string, limits: Limits, granted: string[] = []): PoolJob {
  const resolved = resolveLimits(limits)
  return {
    component: app.sandbox,
    exportName: 'run',
    args: [input],
    limits: resolved,
    grant: { imported: app.imports, granted },
    context: fakeRunContext({ appId: 'app', digest: app.digest, limits: resolved }),
  }
}

const output = (r: PoolResult) => (r.ok ? r.value : r.error.code)

describe('a deadline ends the run in the guest', () => {
  it('answers timeout without terminating the worker; the next run on it sees no state', async () => {
    const p = await pool()
    const spun = await p.run(job(apps.counter!, 'loop', { fuel: 1e12, timeoutMs: 150 }))
    expect(spun).toMatchObject({
      ok: false,
      error: { code: 'timeout', message: 'the run passed its 150 ms deadline' },
      metering: null,
      hostCalls: 0,
    })
    expect(spun.wallMs).toBeGreaterThanOrEqual(149)
    // Same worker (pool of one), fresh instance: count 1, memory byte 1.
    const next = await p.run(job(apps.counter!, 'once', {}))
    expect(output(next)).toBe('11')
    expect(p.replacements).toBe(0)
  })

  it('ends runaway after runaway on the same worker, and one in a start function', async () => {
    const p = await pool()
    for (let i = 0; i < 4; i++) {
      const r = await p.run(job(apps.loop!, '', { fuel: 1e12, timeoutMs: 60 }))
      expect(!r.ok && r.error.code).toBe('timeout')
    }
    const started = await p.run(job(apps.startLoop!, '', { fuel: 1e12, timeoutMs: 60 }))
    expect(!started.ok && started.error.code).toBe('timeout')
    expect(p.replacements).toBe(0)
    expect(output(await p.run(job(apps.counter!, 'once', {})))).toBe('11')
  })

  it('still ends fuel exhaustion exactly, whatever the slice size', async () => {
    const small = await pool({ fuelSlice: 7 })
    const big = await pool()
    const cost = async (p: SandboxPool, fuel: number) => p.run(job(apps.kernel!, '', { fuel }))
    const full = await cost(big, 1e9)
    expect(full.ok).toBe(true)
    const fuel = full.ok ? full.metering.fuelUsed : 0
    for (const p of [small, big]) {
      const exact = await cost(p, fuel)
      expect(exact.ok && exact.metering.fuelUsed).toBe(fuel)
      const starved = await cost(p, fuel - 1)
      expect(!starved.ok && starved.error.code).toBe('fuel_exhausted')
      expect(!starved.ok && starved.metering?.fuelUsed).toBe(fuel - 1)
    }
    // A slice of 7 refuels at nearly every check: the deadline still ends a runaway.
    const r = await small.run(job(apps.loop!, '', { fuel: 1e12, timeoutMs: 60 }))
    expect(!r.ok && r.error.code).toBe('timeout')
    expect(small.replacements + big.replacements).toBe(0)
  })

  it('keeps the watchdog for a guest stuck in a host call: timeout at the deadline, then a replacement', async () => {
    const p = await pool({
      brokerInterfaces: { [ECHO_INTERFACE]: ['fail', 'hang'] },
      // A host call that never answers: the guest never reaches its next fuel check.
      onHostCall: () => new Promise(() => {}),
      deadlineGraceMs: 100,
    })
    const started = performance.now()
    const r = await p.run(job(apps.caller!, 'hang', { timeoutMs: 150 }, [ECHO_INTERFACE]))
    expect(!r.ok && r.error.code).toBe('timeout')
    // Answered at the deadline, not at the end of the grace.
    expect(performance.now() - started).toBeLessThan(150 + 100)
    expect(p.replacements).toBe(0)
    await expect.poll(() => p.replacements, { timeout: 5_000 }).toBe(1)
    expect(output(await p.run(job(apps.counter!, 'once', {})))).toBe('11')
  })

  it('keeps a worker whose host call answers after the deadline, within the grace', async () => {
    let calls = 0
    const p = await pool({
      brokerInterfaces: { [ECHO_INTERFACE]: ['fail', 'hang'] },
      // The first call answers only after the deadline; the guest calls no more after it.
      onHostCall: () => {
        calls++
        return new Promise((resolve) => setTimeout(() => resolve({ ok: true, value: null }), 200))
      },
      deadlineGraceMs: 2_000,
    })
    const r = await p.run(job(apps.caller!, 'hang', { timeoutMs: 100 }, [ECHO_INTERFACE]))
    expect(!r.ok && r.error.code).toBe('timeout')
    // The worker came back within the grace once its call was answered: not replaced.
    const next = await p.run(job(apps.counter!, 'once', {}))
    expect(output(next)).toBe('11')
    expect(p.replacements).toBe(0)
    expect(calls).toBe(1)
  })
})
