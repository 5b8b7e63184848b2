/**
 * The kill switch in the runtime: `WardenRuntime.cancelApp` (the pools' `cancel`) ends an app's
 * queued and running runs at once with `app_disabled`, in both isolation modes, whether the
 * guest spins or waits in a host call; other apps' runs go on, and the pool keeps its size.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestEchoCapability, ECHO_INTERFACE } from '../host-capabilities/test-echo/index.js'
import type { BrokerCapability } from '../host-capabilities/types.js'
import type { Invocation, LoadedComponent } from '../runtime/index.js'
import type { Isolation } from '../runtime/sandbox/sandbox.js'
import { ECHO_CALLER, infiniteLoop } from './support/guests.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { compileWat } from './support/wat.js'

/** Long enough that only a cancel, never a deadline, ends a run within the test timeout. */
const LONG = { timeoutMs: 120_000, fuel: 1e12 }

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {}
  const opened = new Promise<void>((resolve) => {
    open = resolve
  })
  return { opened, open }
}

describe.each<Isolation>(['thread', 'process'])('cancelApp (isolation: %s)', (isolation) => {
  let rt: TestRuntime
  let caller: LoadedComponent
  let loop: LoadedComponent
  /** Held until opened: `fail` calls whose reason starts with `gated`. */
  let held = gate()
  /** Reasons of the `fail` calls waiting at the gate. */
  const waiting: string[] = []
  /** The signal of each run that called `hang`. */
  const hung: AbortSignal[] = []

  beforeAll(async () => {
    const echo = createTestEchoCapability()
    const gated: BrokerCapability = {
      descriptor: echo.descriptor,
      handle(fn, args, ctx) {
        if (fn === 'hang') {
          hung.push(ctx.signal)
        }
        const reason = args[0]
        if (fn === 'fail' && typeof reason === 'string' && reason.startsWith('gated')) {
          waiting.push(reason)
          return held.opened.then(() => echo.handle(fn, args, ctx))
        }
        return echo.handle(fn, args, ctx)
      },
    }
    rt = await startTestRuntime({ poolSize: 2, isolation, brokerCapabilities: [gated] })
    caller = await rt.warden.load(await compileWat(ECHO_CALLER))
    loop = await rt.warden.load(await compileWat(infiniteLoop))
  })

  afterAll(async () => {
    await rt?.close()
  })

  function callEcho(appId: string, input: string): Promise<Invocation> {
    return rt.warden.invoke(caller, input, { appId, interfaces: [ECHO_INTERFACE], limits: LONG })
  }

  it('ends a run blocked in a host call and a queued run; another app run in flight completes', async () => {
    hung.length = 0
    waiting.length = 0
    held = gate()
    const replacements = rt.warden.pool.replacements
    // One app runs on one worker of two at most: the second run of `shop` waits in the queue.
    const blocked = callEcho('shop', 'hang')
    const queued = callEcho('shop', 'hang')
    const other = callEcho('other', 'gated other')
    await expect.poll(() => hung.length + waiting.length, { timeout: 20_000 }).toBe(2)

    expect(rt.warden.cancelApp('shop')).toBe(2)
    const [a, b] = await Promise.all([blocked, queued])
    for (const run of [a, b]) {
      expect(run.ok).toBe(false)
      expect(run.error).toEqual({ code: 'app_disabled', message: 'the app was disabled' })
      expect(run.report.outcome).toBe('app_disabled')
    }
    // Broker-side I/O of the ended run stops with its signal.
    expect(hung).toHaveLength(1)
    expect(hung[0]!.aborted).toBe(true)

    held.open()
    const done = await other
    expect(done.error).toBeUndefined()
    expect(done.output).toBe('gated other')

    // The killed sandbox was replaced: two runs of different apps are in flight at once again.
    await expect.poll(() => rt.warden.pool.replacements, { timeout: 20_000 }).toBe(replacements + 1)
    waiting.length = 0
    held = gate()
    const both = [callEcho('app-c', 'gated c'), callEcho('app-d', 'gated d')]
    await expect.poll(() => waiting.length, { timeout: 20_000 }).toBe(2)
    held.open()
    expect((await Promise.all(both)).map((r) => r.output)).toEqual(['gated c', 'gated d'])
  })

  it('ends a guest spinning in a loop with huge fuel and a long deadline', async () => {
    const spinning = rt.warden.invoke(loop, 'x', { appId: 'spinner', limits: LONG })
    // Let it get going: it is dispatched at once, and the cancel finds it running.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(rt.warden.cancelApp('spinner')).toBe(1)
    const run = await spinning
    expect(run.error?.code).toBe('app_disabled')
    expect(run.report.wallMs).toBeGreaterThan(0)
    expect(run.report.fuelUsed).toBeNull()
  })

  it('ends nothing of other apps, and ends nothing at all for an app with no runs', async () => {
    expect(rt.warden.cancelApp('nobody')).toBe(0)
    const run = await callEcho('other', 'still fine')
    expect(run.output).toBe('still fine')
  })

  it('takes the error it is given', async () => {
    const spinning = rt.warden.invoke(loop, 'x', { appId: 'custom', limits: LONG })
    const error = { code: 'internal', message: 'the host is going down' } as const
    expect(rt.warden.cancelApp('custom', error)).toBe(1)
    expect((await spinning).error).toEqual(error)
  })
})
