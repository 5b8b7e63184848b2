/**
 * Host work that the fuel does not pace (seventh outside attack): `get-random-bytes(1 MiB)` costs
 * the guest a few fuel and the host ~1 ms of CPU, so a loop of draws went minutes between two
 * fuel checks, past its deadline (which a guest notices at a fuel check) and the pool's grace,
 * in a run and in the preparation of the next instance, which no watchdog watches.
 */
import { parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_RANDOM_BYTES_PER_RUN } from '../host-capabilities/wasi/index.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { attackerWat } from './support/unpaced-guest.js'
import { guestFile } from './support/wat.js'

describe('host work the fuel does not pace', () => {
  let rt: TestRuntime
  beforeAll(async () => {
    rt = await startTestRuntime({ poolSize: 1 })
  })
  afterAll(async () => {
    await rt?.close()
  })

  it('ends a run drawing randomness in a loop at its randomness budget, not past its deadline', async () => {
    const app = await rt.warden.load(await parse(attackerWat('always')))
    const replacements = rt.warden.pool.replacements
    const run = await rt.warden.invoke(app, 'x', { limits: { timeoutMs: 60_000, fuel: 1e12 } })
    expect(run.error?.code).toBe('guest_trap')
    expect(run.error?.message).toContain(`at most ${MAX_RANDOM_BYTES_PER_RUN} random bytes`)
    // Ended in the guest: the worker takes the next run.
    expect(rt.warden.pool.replacements).toBe(replacements)
  })

  it('serves another app after instances that draw randomness on start, prepared or not', async () => {
    const attacker = await rt.warden.load(await parse(attackerWat('coin')))
    const echo = await rt.warden.load(await guestFile('echo'))
    for (let i = 0; i < 12; i++) {
      // Each run may be followed by a preparation whose start function loops on draws: it is
      // bounded by the randomness budget and the preparation's own deadline, so the other
      // app's run on the same (only) worker still answers.
      await rt.warden.invoke(attacker, 'x', { limits: { timeoutMs: 2_000, fuel: 1e12 } })
      const other = await rt.warden.invoke(echo, 'hello', {
        interfaces: ['warden:platform/log'],
        limits: { timeoutMs: 30_000 },
      })
      expect(other.error).toBeUndefined()
    }
  }, 180_000)
})
