/**
 * The kill switch in the runtime: `WardenRuntime.cancelApp` (the pools' `cancel`) ends an app's
 * queued and running runs at once with `app_disabled`, in both isolation modes, whether the
 * guest spins or waits in a host call; other apps' runs go on, and the pool keeps its size.
 * `Warden.disableApp`/`enableApp` refuse and let through new runs, and the audit log has it all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestEchoCapability, ECHO_INTERFACE } from '../host-capabilities/test-echo/index.js'
import type { BrokerCapability } from '../host-capabilities/types.js'
import type { AuditRecord } from '../runtime/audit/index.js'
import type { Invocation, LoadedComponent, Warden } from '../runtime/index.js'
import type { Isolation } from '../runtime/sandbox/sandbox.js'
import { ECHO_CALLER, infiniteLoop, logsThenLoops } from './support/guests.js'
import { refusal } from './support/refusal.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { openTestWarden } from './support/warden.js'
import type { TestWarden } from './support/warden.js'
import { compileWat, guestFile } from './support/wat.js'

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

    // Two runs of different apps are in flight at once again. In threads, the ended run's host
    // call was aborted with its signal, so its guest ended and its worker came back; the
    // sandbox process answers no host call of a cancelled run, so its worker is replaced there
    // at the end of the grace.
    waiting.length = 0
    held = gate()
    const both = [callEcho('app-c', 'gated c'), callEcho('app-d', 'gated d')]
    await expect.poll(() => waiting.length, { timeout: 20_000 }).toBe(2)
    held.open()
    expect((await Promise.all(both)).map((r) => r.output)).toEqual(['gated c', 'gated d'])
    await expect
      .poll(() => rt.warden.pool.replacements, { timeout: 20_000 })
      .toBe(replacements + (isolation === 'process' ? 1 : 0))
  })

  it("keeps a run answered at its deadline in its app's share until its worker is back (seventh outside attack)", async () => {
    if (isolation === 'process') {
      // The sandbox process is ended at the deadline: no grace, nothing held past the answer.
      return
    }
    waiting.length = 0
    held = gate()
    const replacements = rt.warden.pool.replacements
    // Blocked in a host call past its deadline: answered `timeout`, its worker held for the
    // pool's grace, then terminated.
    const late = await rt.warden.invoke(caller, 'gated late', {
      appId: 'late',
      interfaces: [ECHO_INTERFACE],
      limits: { timeoutMs: 200, fuel: 1e12 },
    })
    expect(late.error?.code).toBe('timeout')
    // The app may run on one worker of two: its next run starts only once that worker is back
    // (here: terminated at the end of the grace), never beside it on the other one.
    const next = await callEcho('late', 'after')
    expect(next.output).toBe('after')
    expect(rt.warden.pool.replacements).toBe(replacements + 1)
    held.open()
  })

  it('ends a guest spinning in a loop with huge fuel and a long deadline', async () => {
    const spinning = rt.warden.invoke(loop, 'x', { appId: 'spinner', limits: LONG })
    // Let it get going: it is dispatched at once, and the cancel finds it running.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const replacements = rt.warden.pool.replacements
    expect(rt.warden.cancelApp('spinner')).toBe(1)
    const run = await spinning
    expect(run.error?.code).toBe('app_disabled')
    expect(run.report.wallMs).toBeGreaterThan(0)
    expect(run.report.fuelUsed).toBeNull()
    // The guest ended itself at its next refuel: its worker takes the next runs, none replaced.
    const after = await Promise.all([callEcho('after-1', 'one'), callEcho('after-2', 'two')])
    expect(after.map((r) => r.output)).toEqual(['one', 'two'])
    expect(rt.warden.pool.replacements).toBe(replacements)
  })

  it('ends nothing of other apps, and ends nothing at all for an app with no runs', async () => {
    expect(rt.warden.cancelApp('nobody')).toBe(0)
    const run = await callEcho('other', 'still fine')
    expect(run.output).toBe('still fine')
  })

  it('ends a queued run whose caller hung up; a running one goes on to its end', async () => {
    waiting.length = 0
    held = gate()
    const options = (signal: AbortSignal) => ({
      appId: 'hung-up',
      interfaces: [ECHO_INTERFACE],
      limits: LONG,
      signal,
    })
    const runningCaller = new AbortController()
    const first = rt.warden.invoke(caller, 'gated first', options(runningCaller.signal))
    let firstSettled = false
    void first.then(() => {
      firstSettled = true
    })
    await expect.poll(() => waiting.length, { timeout: 20_000 }).toBe(1)
    // One app runs on one worker of two at most: this one waits in the queue.
    const queuedCaller = new AbortController()
    const queued = rt.warden.invoke(caller, 'never runs', options(queuedCaller.signal))
    queuedCaller.abort()
    const ended = await queued
    expect(ended.error).toEqual({
      code: 'client_closed',
      message: 'the client hung up before the run started',
    })
    expect(ended.report.outcome).toBe('client_closed')
    expect(firstSettled).toBe(false)
    // A caller already gone: the run never starts either.
    const goneCaller = new AbortController()
    goneCaller.abort()
    const never = await rt.warden.invoke(caller, 'never runs', options(goneCaller.signal))
    expect(never.error?.code).toBe('client_closed')
    // The running run's caller hangs up too: it is not killed, it answers as usual.
    runningCaller.abort()
    held.open()
    const done = await first
    expect(done.error).toBeUndefined()
    expect(done.output).toBe('gated first')
  })

  it("reads its caller's signal only when the run has to wait for a sandbox", async () => {
    waiting.length = 0
    held = gate()
    let reads = 0
    const lazy = (controller: AbortController) => ({
      appId: 'lazy-signal',
      interfaces: [ECHO_INTERFACE],
      limits: LONG,
      get signal() {
        reads++
        return controller.signal
      },
    })
    // Starts at once: its signal is never made (an HTTP request's is made when first read).
    const quick = await rt.warden.invoke(caller, 'at once', lazy(new AbortController()))
    expect(quick.output).toBe('at once')
    expect(reads).toBe(0)
    // Waits while both workers are busy (the app's run and another app's: an app with short
    // runs may borrow a free worker): read, and a hang-up still ends it unstarted.
    const first = rt.warden.invoke(caller, 'gated holder', lazy(new AbortController()))
    const other = callEcho('lazy-other', 'gated other')
    await expect.poll(() => waiting.length, { timeout: 20_000 }).toBe(2)
    expect(reads).toBe(0)
    const queuedCaller = new AbortController()
    const queued = rt.warden.invoke(caller, 'never runs', lazy(queuedCaller))
    expect(reads).toBe(1)
    queuedCaller.abort()
    expect((await queued).error?.code).toBe('client_closed')
    held.open()
    expect((await first).output).toBe('gated holder')
    expect((await other).output).toBe('gated other')
  })

  it('counts the host calls of a run ended before its worker could report them', async () => {
    const app = await rt.warden.load(await compileWat(logsThenLoops))
    const options = {
      interfaces: ['warden:platform/log'],
      limits: { timeoutMs: 1_000, fuel: 1e12 },
    }
    const timedOut = await rt.warden.invoke(app, 'x', { ...options, appId: 'counted' })
    expect(timedOut.error?.code).toBe('timeout')
    expect(timedOut.report.hostCalls).toBe(5)
    if (isolation === 'process') {
      // The host answers a cancel at once, before the child could tell it the count.
      return
    }
    // Cancelled while it spins: the same count. Cancelled once its five calls were heard (a
    // slow or loaded machine may take longer than any fixed sleep to get there).
    const heard = gate()
    let calls = 0
    const spinning = rt.warden.invoke(app, 'x', {
      ...options,
      appId: 'counted-cancel',
      limits: LONG,
      onDecision: () => {
        if (++calls === 5) {
          heard.open()
        }
      },
    })
    await heard.opened
    expect(rt.warden.cancelApp('counted-cancel')).toBe(1)
    expect((await spinning).report.hostCalls).toBe(5)
  })

  it('takes the error it is given', async () => {
    const spinning = rt.warden.invoke(loop, 'x', { appId: 'custom', limits: LONG })
    const error = { code: 'internal', message: 'the host is going down' } as const
    expect(rt.warden.cancelApp('custom', error)).toBe(1)
    expect((await spinning).error).toEqual(error)
  })
})

describe('Warden: disableApp and enableApp', () => {
  let host: TestWarden
  let warden: Warden
  let loop: LoadedComponent
  let echo: LoadedComponent

  beforeAll(async () => {
    host = await openTestWarden({ poolSize: 2 })
    warden = host.warden
    ;[loop, echo] = await Promise.all([
      warden.load(await compileWat(infiniteLoop)),
      warden.load(await guestFile('echo')),
    ])
  })

  afterAll(async () => {
    await host?.close()
  })

  async function token(appId: string, app: LoadedComponent): Promise<string> {
    const request = { appId, digest: app.digest, grants: { log: true }, lifetimeSeconds: 600 }
    return (await warden.grantToken({ ...request, limits: LONG })).token
  }

  async function since(seq: number): Promise<AuditRecord[]> {
    return (await warden.audit.read({ limit: 10_000 })).filter((r) => r.seq > seq)
  }

  it('ends the app in flight, refuses it, lets other apps run, and lets it run again once enabled', async () => {
    const [shopLoop, shopEcho, otherEcho] = await Promise.all([
      token('shop', loop),
      token('shop', echo),
      token('other', echo),
    ])
    const before = warden.audit.head.seq
    const inFlight = warden.run(loop, '"x"', { token: shopLoop })
    await new Promise((resolve) => setTimeout(resolve, 300))

    expect(await warden.disableApp('shop', 'admin:ada')).toBe(1)
    expect(warden.disabledApps()).toEqual(['shop'])
    const ended = await inFlight
    expect(ended.error?.code).toBe('app_disabled')

    const refused = await refusal(warden.run(echo, '"hi"', { token: shopEcho }))
    expect(refused.code).toBe('app_disabled')
    expect((await warden.run(echo, '"hi"', { token: otherEcho })).error).toBeUndefined()

    await warden.enableApp('shop', 'admin:ada')
    expect(warden.disabledApps()).toEqual([])
    expect((await warden.run(echo, '"hi"', { token: shopEcho })).output).toBe('"hi"')

    const records = await since(before)
    const about = (r: AuditRecord) => r.appId === 'shop' && (r.kind === 'admin' || r.kind === 'run')
    expect(records.filter(about)).toMatchObject([
      { kind: 'admin', op: 'app.disable', actor: 'admin:ada', target: 'shop', decision: 'allow' },
      { kind: 'run', op: 'run', decision: 'deny', reason: 'app_disabled' },
      {
        kind: 'run',
        op: 'run',
        actor: 'app:shop',
        decision: 'deny',
        reason: 'app_disabled',
        durationMs: null,
      },
      { kind: 'admin', op: 'app.enable', actor: 'admin:ada', target: 'shop', decision: 'allow' },
      { kind: 'run', op: 'run', decision: 'allow', reason: 'ok' },
    ])
    expect((await warden.audit.verify()).ok).toBe(true)
  })

  it('refuses a malformed app id, on the record without its text', async () => {
    const before = warden.audit.head.seq
    expect((await refusal(warden.disableApp('no such\napp'))).code).toBe('invalid_request')
    expect(await since(before)).toMatchObject([
      {
        kind: 'admin',
        op: 'app.disable',
        decision: 'deny',
        reason: 'invalid_request',
        target: null,
      },
    ])
  })
})

describe('Warden: disabled apps from the start', () => {
  it('refuses the runs of an app it was opened with as disabled', async () => {
    const host = await openTestWarden({ disabledApps: ['shop'] })
    try {
      const { warden } = host
      const echo = await warden.load(await guestFile('echo'))
      const request = { appId: 'shop', digest: echo.digest, grants: { log: true } }
      const { token } = await warden.grantToken({ ...request, lifetimeSeconds: 600 })
      expect((await refusal(warden.run(echo, '"hi"', { token }))).code).toBe('app_disabled')
      expect(warden.disabledApps()).toEqual(['shop'])
    } finally {
      await host.close()
    }
  })

  it('refuses to open with a malformed id', async () => {
    await expect(openTestWarden({ disabledApps: ['../etc'] })).rejects.toThrow(TypeError)
  })
})
