/**
 * The transpile pool. A worker is never reused after a job that failed: a component that makes
 * jco trap can leave jco's own wasm state broken for every later upload (found in issue 6).
 * One slow upload does not hold up the others, and one uploader cannot take every worker
 * (issue 7: a tiny upload waited 20 s behind a slow one).
 */
import { afterAll, describe, expect, it } from 'vitest'
import { DEFAULT_TRANSPILE_BUDGET, Transpiler } from '../runtime/loader/transpile.js'
import type { TranspileRequest } from '../runtime/loader/transpile.js'
import { buildJsGuest } from './support/js-guest.js'
import { guestFile, compileWat } from './support/wat.js'

const transpiler = new Transpiler()
afterAll(() => transpiler.close())

// Passes the name and structure checks, but its lift does not type-check: jco refuses it.
const MISTYPED = `(component
  (core module $m (func (export "run") (param i32) (result i32) (local.get 0)))
  (core instance $i (instantiate $m))
  (func (export "run") (param "input" string) (result string) (canon lift (core func $i "run"))))`

const request = (bytes: Uint8Array, uploader?: string): TranspileRequest => ({
  bytes,
  maxMemoryPages: 16_384,
  maxTableElements: 1_000_000,
  ...(uploader ? { uploader } : {}),
})

describe('the transpile worker', () => {
  it('is replaced after a refused component, and the next upload transpiles', async () => {
    await transpiler.transpile(request(await guestFile('echo')))
    expect(transpiler.workersStarted).toBe(1)
    await expect(transpiler.transpile(request(await compileWat(MISTYPED)))).rejects.toMatchObject({
      code: 'invalid_component',
    })
    const out = await transpiler.transpile(request(await guestFile('echo')))
    expect(out.ok).toBe(true)
    expect(transpiler.workersStarted).toBe(2)
  })
})

describe('the transpile pool', () => {
  it('serves a tiny upload during a slow one; one uploader never holds every worker', async () => {
    // A 12 MB componentize-js build: seconds of jco; echo: milliseconds.
    const [slow, tiny] = [await buildJsGuest('bridge'), await guestFile('echo')]
    const pool = new Transpiler()
    try {
      const done: string[] = []
      const track = (name: string, job: Promise<unknown>) => job.then(() => void done.push(name))
      await Promise.all([
        track('alice-slow', pool.transpile(request(slow, 'alice'))),
        track('alice-tiny', pool.transpile(request(tiny, 'alice'))),
        track('bob-tiny', pool.transpile(request(tiny, 'bob'))),
      ])
      // Bob does not wait for Alice's slow upload; Alice's second upload does (one worker each
      // while others wait), and the slow one fits the default budget.
      expect(done.indexOf('bob-tiny')).toBeLessThan(done.indexOf('alice-slow'))
      expect(done.indexOf('alice-tiny')).toBeGreaterThan(done.indexOf('alice-slow'))
    } finally {
      await pool.close()
    }
  }, 120_000)

  it('has a default budget of seconds, not minutes', () => {
    expect(DEFAULT_TRANSPILE_BUDGET.timeoutMs).toBeLessThanOrEqual(30_000)
  })

  it('retires a worker after a large upload: jco keeps memory for the largest', async () => {
    const pool = new Transpiler({ retireAfterBytes: 1 })
    try {
      await pool.transpile(request(await guestFile('echo')))
      await pool.transpile(request(await guestFile('echo')))
      expect(pool.workersStarted).toBe(2)
    } finally {
      await pool.close()
    }
  })

  it('refuses an uploader more waiting jobs than its allowance', async () => {
    const pool = new Transpiler({ workers: 1, maxQueuedPerUploader: 1 })
    try {
      const bytes = await guestFile('echo')
      const first = pool.transpile(request(bytes, 'alice'))
      const second = pool.transpile(request(bytes, 'alice'))
      await expect(pool.transpile(request(bytes, 'alice'))).rejects.toMatchObject({
        code: 'limit_exceeded',
      })
      // Another uploader still gets in line.
      const other = pool.transpile(request(bytes, 'bob'))
      await Promise.all([first, second, other])
    } finally {
      await pool.close()
    }
  })

  it('fails waiting jobs with internal when closed', async () => {
    const pool = new Transpiler({ workers: 1 })
    const bytes = await guestFile('echo')
    const running = expect(pool.transpile(request(bytes))).rejects.toMatchObject({
      code: 'internal',
    })
    const waiting = expect(pool.transpile(request(bytes))).rejects.toMatchObject({
      code: 'internal',
    })
    await pool.close()
    await Promise.all([running, waiting])
  })

  it("counts a job's budget from when its worker has loaded jco, not from the worker's start", async () => {
    // A budget shorter than jco's start-up (about a second) refused every load on a cold worker
    // (found by npm run fuzz).
    const pool = new Transpiler({ workers: 1, budget: { timeoutMs: 800, maxHeapMb: 512 } })
    try {
      const out = await pool.transpile(request(await guestFile('echo')))
      expect(out.ok).toBe(true)
    } finally {
      await pool.close()
    }
  })
})
