/**
 * One app's burst must not starve another app (issue 7, "Fairness"): a per-app cap on running
 * runs, a short per-app queue, and refusal at once past it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveLimits } from '../runtime/limits/limits.js'
import type { LoadedComponent } from '../runtime/loader/load.js'
import { ownThread, SandboxPool } from '../runtime/sandbox/pool.js'
import { checkFromWorker } from '../runtime/sandbox/validate.js'
import type { PoolJob, PoolResult } from '../runtime/sandbox/pool.js'
import type { RunContext } from '../host-capabilities/types.js'
import type { HostCallResponse } from '../runtime/sandbox/protocol.js'
import { fakeRunContext } from './support/context.js'
import { growForever, infiniteLoop } from './support/guests.js'
import { platformCaller } from './support/platform-guest.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { compileWat, guestFile } from './support/wat.js'

let rt: TestRuntime
let pool: SandboxPool
let loop: LoadedComponent
let hello: LoadedComponent
let bomb: LoadedComponent
let caller: LoadedComponent

beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
  loop = await rt.warden.load(await compileWat(infiniteLoop))
  hello = await rt.warden.load(await guestFile('echo'))
  bomb = await rt.warden.load(await compileWat(growForever))
  caller = await rt.warden.load(await platformCaller())
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

function job(
  component: LoadedComponent,
  appId: string,
  timeoutMs: number,
  memoryMb?: number,
  input = 'hi',
): PoolJob {
  const limits = resolveLimits({ fuel: 1e12, timeoutMs, ...(memoryMb ? { memoryMb } : {}) })
  const context = fakeRunContext({
    invocationId: `${appId}-${Math.random()}`,
    appId,
    digest: component.digest,
    limits,
  })
  return {
    component: component.sandbox,
    exportName: 'run',
    args: [input],
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

describe('borrowed workers', () => {
  it('lets a lone app run on every worker, and gives the first freed one to another app', async () => {
    // Each run waits in a broker call until the test answers it: runs in calls at once are
    // runs on workers at once.
    const held: { app: string; answer: (r: HostCallResponse) => void }[] = []
    const pool = new SandboxPool({
      size: 2,
      // The runs here wait on the test, and a worker's first run loads the component: not short.
      borrowBelowMs: 60_000,
      brokerInterfaces: {
        'warden:platform/http': ['fetch'],
        'warden:platform/secrets': ['hmac-sha256', 'reveal'],
        'warden:platform/data': ['get'],
      },
      onHostCall: (ctx: RunContext) =>
        new Promise<HostCallResponse>((answer) => held.push({ app: ctx.appId, answer })),
    })
    const denied: HostCallResponse = { ok: false, hostError: { tag: 'denied', val: 'no' } }
    const until = async (check: () => boolean) => {
      for (let i = 0; i < 500 && !check(); i++) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      return check()
    }
    const get = (app: string) => {
      const j = job(caller, app, 10_000, undefined, 'get|c|k')
      j.grant.granted = ['warden:platform/data']
      return pool.run(j)
    }
    try {
      await pool.warm()
      // One short run on record: the app may borrow from now on.
      const first = get('lone')
      expect(await until(() => held.length === 1)).toBe(true)
      held.shift()!.answer(denied)
      expect((await first).ok).toBe(true)
      // Two runs of the lone app: both are in their calls at once, the second on the borrowed worker.
      const runs = [get('lone'), get('lone')]
      expect(await until(() => held.length === 2)).toBe(true)
      // A third run of it and one of another app queue; the first worker freed goes to the other app.
      runs.push(get('lone'))
      const other = get('other')
      await new Promise((resolve) => setTimeout(resolve, 50))
      held.shift()!.answer(denied)
      expect(await until(() => held.length === 2)).toBe(true)
      expect(held.map((h) => h.app).sort()).toEqual(['lone', 'other'])
      while (held.length > 0 || (await until(() => held.length > 0))) {
        held.shift()!.answer(denied)
      }
      for (const r of [...(await Promise.all(runs)), await other]) {
        expect(r.ok).toBe(true)
      }
    } finally {
      await pool.close()
    }
  })
})

/** The nice value of each thread of this process (Linux). */
function nices(): number[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])]
    } catch {
      return [] // the thread ended meanwhile
    }
  })
}

describe.runIf(process.platform === 'linux')('the CPU of apps that hog their limits', () => {
  it('runs a hog at the lowest priority, and nothing else: its worker is back at its own priority after', async () => {
    const pool = new SandboxPool({
      size: 2,
      brokerInterfaces: {},
      onHostCall: () => ({ ok: true, value: null }),
    })
    try {
      await pool.warm()
      expect(nices()).not.toContain(19)
      // A first strike (the memory cap) makes the app a hog; that run was not niced.
      const first = await pool.run(job(bomb, 'greedy', 5_000, 1))
      expect(!first.ok && first.error.code).toBe('memory_limit')
      // Its next run loops: while it does, one thread of ours runs at nice 19.
      const looping = pool.run(job(loop, 'greedy', 400))
      await new Promise((resolve) => setTimeout(resolve, 150))
      expect(nices().filter((n) => n === 19)).toHaveLength(1)
      // Another app's run meanwhile is not niced.
      expect((await pool.run(job(hello, 'calm', 5_000))).ok).toBe(true)
      expect(nices().filter((n) => n === 19)).toHaveLength(1)
      expect(!(await looping).ok).toBe(true)
      // A hog's run that ends in its worker (the memory cap again): the worker stays, restored,
      // or, where a priority cannot be raised again (no CAP_SYS_NICE), is replaced.
      const before = pool.replacements
      const again = await pool.run(job(bomb, 'greedy', 5_000, 1))
      expect(!again.ok && again.error.code).toBe('memory_limit')
      for (let i = 0; i < 50 && nices().includes(19); i++) {
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      expect(nices()).not.toContain(19)
      expect(pool.replacements - before).toBeLessThanOrEqual(1)
      expect((await pool.run(job(hello, 'calm', 5_000))).ok).toBe(true)
    } finally {
      await pool.close()
    }
  })

  it("takes a worker's thread id only for a thread of this process, never the main one", () => {
    const threads = readdirSync('/proc/self/task').map(Number)
    const other = threads.find((tid) => tid !== process.pid) as number
    expect(ownThread(other)).toBe(other)
    expect(ownThread(process.pid)).toBeUndefined()
    expect(ownThread(2 ** 31)).toBeUndefined()
    expect(ownThread(undefined)).toBeUndefined()
    for (const tid of [-1, 1.5, '12', null, 2 ** 60]) {
      expect(checkFromWorker({ type: 'ready', tid })).toBeUndefined()
    }
    expect(checkFromWorker({ type: 'ready', tid: 7 })).toEqual({ type: 'ready', tid: 7 })
  })

  it('refuses a hogNice that is not a nice value', () => {
    for (const hogNice of [-1, 20, 1.5, Number.NaN]) {
      expect(
        () =>
          new SandboxPool({
            size: 1,
            hogNice,
            brokerInterfaces: {},
            onHostCall: () => ({ ok: true, value: null }),
          }),
      ).toThrow(TypeError)
    }
  })

  it('leaves priorities alone with hogNice 0', async () => {
    const pool = new SandboxPool({
      size: 2,
      hogNice: 0,
      brokerInterfaces: {},
      onHostCall: () => ({ ok: true, value: null }),
    })
    try {
      await pool.warm()
      await pool.run(job(bomb, 'greedy', 5_000, 1))
      const looping = pool.run(job(loop, 'greedy', 300))
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(nices()).not.toContain(19)
      await looping
    } finally {
      await pool.close()
    }
  })
})
