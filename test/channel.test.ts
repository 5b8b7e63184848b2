/**
 * The main thread trusts nothing a worker sends (issue 6, step 5). A forged worker
 * (`fixtures/rogue-worker.ts`) sends every kind of malformed message; each retires that worker,
 * ends its run with `internal`, and never rejects an unhandled promise or ends the host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveLimits } from '../runtime/limits/limits.js'
import { SandboxPool } from '../runtime/sandbox/pool.js'
import type { PoolJob } from '../runtime/sandbox/pool.js'
import { fakeRunContext } from './support/context.js'

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)

let pool: SandboxPool
beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled)
  pool = new SandboxPool({
    size: 1,
    brokerInterfaces: {},
    onHostCall: () => ({ ok: true, value: null }),
    workerModule: { from: import.meta.url, name: './fixtures/rogue-worker' },
  })
  await pool.warm()
})
afterAll(async () => {
  await pool.close()
  process.off('unhandledRejection', onUnhandled)
})

/** What the listener of the `live-*` runs heard. */
const heard: number[] = []

function job(mode: string): PoolJob {
  // `live-*` runs have a listener, except the one whose worker posts unasked.
  const live = mode.startsWith('live-') && mode !== 'live-unasked'
  const context = fakeRunContext({
    invocationId: mode,
    appId: 'rogue',
    digest: 'rogue',
    ...(live ? { onDecision: (d) => heard.push(d.call) } : {}),
  })
  return {
    component: {
      key: 'rogue',
      glueSource: '',
      glueFile: 'rogue.js',
      modules: {},
      minMemoryPages: 0,
    },
    exportName: 'run',
    args: [mode],
    limits: resolveLimits({ timeoutMs: 10_000, logLines: 3 }),
    grant: { imported: [], granted: [] },
    context,
  }
}

const FORGERIES = [
  'unknown-tag',
  'trailing-bytes',
  'length-past-area',
  'negative-length',
  'deep-nesting',
  'wrong-shape',
  'unknown-code',
  'forged-decisions',
  'bad-host-call',
  'garbage-host-call',
  'unknown-message',
  'forged-result-message',
  'garbage-large-host-call',
  'not-bytes-large-host-call',
  'live-unasked',
  'live-past-cap',
  'live-other-run',
  'live-wrong-shape',
]

describe('a forged worker', () => {
  it('is answered normally while it speaks the protocol', async () => {
    const result = await pool.run(job('ok'))
    expect(result.ok).toBe(true)
  })

  it.each(FORGERIES)(
    'sending %s is retired, its run ends with internal, the pool heals',
    async (mode) => {
      const before = pool.replacements
      const result = await pool.run(job(mode))
      expect(result.ok).toBe(false)
      expect(!result.ok && result.error.code).toBe('internal')
      expect(pool.replacements).toBe(before + 1)
      await pool.warm()
      const next = await pool.run(job('ok'))
      expect(next.ok).toBe(true)
    },
  )

  it('tells a live run the decisions its worker posts up to the cap, never past it', () => {
    // live-past-cap posted 4 for a cap of 3; the others were refused before any was told.
    expect(heard).toEqual([1, 2, 3])
  })

  it('never left an unhandled rejection behind', async () => {
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(unhandled).toEqual([])
  })
})
