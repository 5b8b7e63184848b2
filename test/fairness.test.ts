/**
 * One app's burst must not starve another app (issue 7, "Fairness"): a per-app cap on running
 * runs, a short per-app queue, and refusal at once past it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveLimits } from '../runtime/limits/limits.js'
import type { LoadedComponent } from '../runtime/loader/load.js'
import { SandboxPool } from '../runtime/sandbox/pool.js'
import type { PoolJob, PoolResult } from '../runtime/sandbox/pool.js'
import { fakeRunContext } from './support/context.js'
import { infiniteLoop } from './support/guests.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { compileWat, guestFile } from './support/wat.js'

let rt: TestRuntime
let pool: SandboxPool
let loop: LoadedComponent
let hello: LoadedComponent

beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
  loop = await rt.warden.load(await compileWat(infiniteLoop))
  hello = await rt.warden.load(await guestFile('echo'))
  pool = new SandboxPool({
    size: 3,
    maxRunningPerApp: 2,
    maxQueuedPerApp: 2,
    brokerInterfaces: {},
    onHostCall: () => ({ ok: true, value: null }),
  })
  await pool.warm()
})
afterAll(async () => {
  await pool.close()
  await rt.close()
})

function job(component: LoadedComponent, appId: string, timeoutMs: number): PoolJob {
  const limits = resolveLimits({ fuel: 1e12, timeoutMs })
  const context = fakeRunContext({
    invocationId: `${appId}-${Math.random()}`,
    appId,
    digest: component.digest,
    limits,
  })
  return {
    component: component.sandbox,
    exportName: 'run',
    args: ['hi'],
    limits,
    grant: { imported: component.imports, granted: [] },
    context,
  }
}

describe('per-app fairness', () => {
  it('refuses a burst past its cap at once, and another app runs while the burst holds its workers', async () => {
    const settled: PoolResult[] = []
    const burst = Array.from({ length: 20 }, () =>
      pool.run(job(loop, 'hostile-app', 1_500)).then((r) => {
        settled.push(r)
        return r
      }),
    )
    // Refusals are answered at once, before any runaway can end.
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(settled).toHaveLength(16)
    for (const r of settled) {
      expect(!r.ok && r.error.code).toBe('limit_exceeded')
    }
    // The healthy app gets the third worker while both runaways are still running.
    const healthy = await pool.run(job(hello, 'healthy-app', 5_000))
    expect(healthy.ok).toBe(true)
    expect(settled).toHaveLength(16)
    const all = await Promise.all(burst)
    expect(all.filter((r) => !r.ok && r.error.code === 'timeout')).toHaveLength(4)
  })
})
