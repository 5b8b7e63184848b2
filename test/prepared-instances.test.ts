/**
 * Prepared instances (`runtime/sandbox/worker.ts`, `prepareNext`): after a run of a component
 * that is slow to instantiate (the componentize-js agent), the worker makes a fresh instance
 * for its next run. That run must be indistinguishable from one on an instance made for it:
 * the same fuel, its own grant, its own memory cap, a clock that starts with it, no state.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentCacheDir, agentComponent, agentRequest } from '../runtime/index.js'
import { PREPARE_DELAY_MS } from '../runtime/sandbox/pool.js'
import type { InvokeOptions, LoadedComponent } from '../runtime/index.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'

const LOG = 'warden:platform/log'

let host: TestRuntime
let agent: LoadedComponent

beforeAll(async () => {
  // One worker: every run after the first finds the instance its predecessor prepared.
  host = await startTestRuntime({ poolSize: 1 })
  agent = await host.warden.load(await agentComponent(), { cacheDir: agentCacheDir() })
})

afterAll(async () => {
  await host?.close()
})

async function run(source: string, input: unknown = null, options: InvokeOptions = {}) {
  // A run that comes within PREPARE_DELAY_MS of the last answer gets a fresh instance; past
  // it, the worker is preparing or has prepared one, which the run then takes.
  await sleep(PREPARE_DELAY_MS * 2)
  return host.warden.invoke(agent, agentRequest(source, input), {
    interfaces: [LOG],
    limits: { fuel: 1e10 },
    ...options,
  })
}

function output(invocation: Awaited<ReturnType<typeof run>>): unknown {
  expect(invocation.error).toBeUndefined()
  return (JSON.parse(String(invocation.output)) as { ok: unknown }).ok
}

describe('prepared instances', () => {
  it('charge a run the same fuel as an instance made for it', async () => {
    const fuel: number[] = []
    for (let i = 0; i < 5; i++) {
      const r = await run('let s = 0; for (let i = 0; i < 1000; i++) s += i; return s')
      expect(output(r)).toBe(499500)
      fuel.push(r.report.fuelUsed!)
    }
    expect(new Set(fuel).size).toBe(1)
  })

  it('take the grant of their run, not of the run before', async () => {
    const granted = await run('warden.log("a line"); return 1')
    expect(granted.logs).toEqual([{ level: 'info', message: 'a line' }])
    const denied = await run('warden.log("a line"); return 1', null, { interfaces: [] })
    expect(output(denied)).toBe(1)
    expect(denied.logs).toEqual([])
    expect(denied.decisions).toEqual([
      expect.objectContaining({ capability: LOG, decision: 'deny', reason: 'not granted' }),
    ])
  })

  it('are not used for a run with another memory cap: the smaller cap holds', async () => {
    await run('return 1', null, { limits: { fuel: 1e10, memoryMb: 64 } })
    const bomb = await run('const a = []; for (;;) a.push(new Array(1 << 20).fill(1))', null, {
      limits: { fuel: 1e11, memoryMb: 16 },
    })
    expect(bomb.error?.code).toBe('memory_limit')
    expect(bomb.report.memoryPeakBytes).toBeLessThanOrEqual(16 * 1024 * 1024)
  })

  it('start the guest clock with the run, not when the instance was made', async () => {
    await run('return 1')
    await sleep(400)
    const r = await run('return performance.now()')
    expect(output(r)).toBeLessThan(400)
  })

  it('carry no state: globals, prototypes, built-ins and the warden object are fresh in 200 runs', async () => {
    const source = `
      const native = (f) => typeof f === 'function' && /[native code]/.test(Function.prototype.toString.call(f))
      const seen = [
        globalThis.mark ?? null, Object.prototype.leak ?? null, warden.extra ?? null,
        [].leak ?? null, Math.leaked ?? null, Object.getOwnPropertyNames(globalThis).length,
        native(JSON.parse), native(String), native(Promise.prototype.then),
        Error.stackTraceLimit ?? null,
      ]
      globalThis.mark = input; Object.prototype.leak = input; Array.prototype.leak = input
      Math.leaked = input; globalThis['g' + input] = input; Error.stackTraceLimit = input
      // The agent reads the next request through these before any script runs: a leak would
      // hijack it. (What this run still needs to answer, JSON.stringify and then, is left.)
      JSON.parse = () => ({ source: 'return "hijacked"', input: null })
      globalThis.String = () => 'return "hijacked"'
      try { warden.extra = input } catch {}
      return seen`
    let first: unknown
    for (let i = 0; i < 200; i++) {
      const seen = output(await run(source, i)) as unknown[]
      first ??= seen
      expect(seen).toEqual(first)
      expect(seen.slice(0, 5)).toEqual([null, null, null, null, null])
      expect(seen.slice(6, 9)).toEqual([true, true, true])
    }
  })
})
