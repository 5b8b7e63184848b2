import { describe, expect, it } from 'vitest'
import { resolveHostConfig } from '../host-config.js'
import { AppShares, BORROW_BELOW_MS } from './fairness.js'
import type { PoolResult } from './pool.js'

const ok: PoolResult = { ok: true, outcome: 'ok', value: '', metering: null as never, wallMs: 1 }
const timedOut: PoolResult = {
  ok: false,
  error: { code: 'timeout', message: 'deadline' },
  metering: null,
  wallMs: 100,
}

describe('AppShares.pickNext', () => {
  it('starts the oldest run when no app uses the pool', () => {
    const shares = new AppShares(2)
    expect(shares.pickNext(['a', 'b', 'a'])).toBe(0)
  })

  it('gives a free worker to the app running the fewest runs, not to the oldest run', () => {
    const shares = new AppShares(4)
    shares.start('hog')
    expect(shares.pickNext(['hog', 'hog', 'calm'])).toBe(2)
  })

  it('puts an app that keeps running into its limits behind the others', () => {
    const shares = new AppShares(2)
    for (let i = 0; i < 5; i++) {
      shares.start('loop')
      shares.finish('loop', timedOut)
    }
    // Nothing of either app runs: the striking app still waits behind the calm one.
    expect(shares.pickNext(['loop', 'loop', 'calm'])).toBe(2)
    // Runs that end well clear its record.
    for (let i = 0; i < 20; i++) {
      shares.start('loop')
      shares.finish('loop', ok)
    }
    expect(shares.pickNext(['loop', 'calm'])).toBe(0)
  })

  it('never picks an app at its cap, and answers -1 when none may start', () => {
    const shares = new AppShares(2)
    shares.start('a')
    expect(shares.maxRunning).toBe(1)
    expect(shares.pickNext(['a', 'a'])).toBe(-1)
    expect(shares.pickNext(['a', 'b'])).toBe(1)
  })

  it('lets hogs together hold no more workers than one app may, so others always find one', () => {
    const shares = new AppShares(3)
    expect(shares.maxRunning).toBe(2)
    for (const app of ['loop', 'bomb']) {
      for (let i = 0; i < 3; i++) {
        shares.start(app)
        shares.finish(app, timedOut)
      }
    }
    shares.start('loop')
    shares.start('bomb')
    // Two hogs hold two of three workers: no more for any hog, the third is the others'.
    expect(shares.canStart('loop')).toBe(false)
    expect(shares.canStart('bomb')).toBe(false)
    expect(shares.canStart('calm')).toBe(true)
    expect(shares.pickNext(['bomb', 'loop', 'calm'])).toBe(2)
  })
})

/** A run of `ms` that ended well. */
function took(ms: number): PoolResult {
  return { ...ok, wallMs: ms }
}

describe('AppShares: borrowed workers', () => {
  it('lets a lone app with short runs take every worker, past its share', () => {
    const shares = new AppShares(2)
    shares.start('hot')
    shares.finish('hot', took(10))
    shares.start('hot')
    expect(shares.canStart('hot')).toBe(false)
    expect(shares.mayBorrow('hot')).toBe(true)
    expect(shares.pickNext(['hot', 'hot'])).toBe(0)
  })

  it('never lends a worker another app may take within its share', () => {
    const shares = new AppShares(2)
    shares.start('hot')
    shares.finish('hot', took(10))
    shares.start('hot')
    expect(shares.pickNext(['hot', 'hot', 'calm'])).toBe(2)
  })

  it('never lends to an app not yet seen to end a run, nor with borrowBelowMs 0', () => {
    const fresh = new AppShares(2)
    fresh.start('new')
    expect(fresh.mayBorrow('new')).toBe(false)
    expect(fresh.pickNext(['new'])).toBe(-1)
    const off = new AppShares(2, { borrowBelowMs: 0 })
    off.start('hot')
    off.finish('hot', took(0))
    off.start('hot')
    expect(off.pickNext(['hot'])).toBe(-1)
    for (const borrowBelowMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new AppShares(2, { borrowBelowMs })).toThrow(TypeError)
    }
  })

  it('never lends to a hog, nor to an app with any strike left, until its runs clear it', () => {
    const shares = new AppShares(2)
    shares.start('loop')
    shares.finish('loop', { ...timedOut, wallMs: 1 })
    shares.start('loop')
    expect(shares.isHog('loop')).toBe(true)
    expect(shares.pickNext(['loop'])).toBe(-1)
    // Good short runs fade the strike; while any of it is left, still no borrowing.
    for (let i = 0; i < 5; i++) {
      shares.finish('loop', took(1))
      shares.start('loop')
    }
    expect(shares.isHog('loop')).toBe(false)
    expect(shares.pickNext(['loop'])).toBe(-1)
    for (let i = 0; i < 20; i++) {
      shares.finish('loop', took(1))
      shares.start('loop')
    }
    expect(shares.pickNext(['loop'])).toBe(0)
  })

  it('stops lending after a long run, until enough short runs have faded it', () => {
    const shares = new AppShares(2, { borrowBelowMs: 50 })
    shares.start('slow')
    shares.finish('slow', took(49))
    shares.start('slow')
    expect(shares.pickNext(['slow'])).toBe(0)
    shares.finish('slow', took(2_000))
    shares.start('slow')
    expect(shares.pickNext(['slow'])).toBe(-1)
    let runs = 0
    while (shares.pickNext(['slow']) < 0) {
      shares.finish('slow', took(1))
      shares.start('slow')
      runs++
    }
    // 2,000 × 0.75^n < 50: n = 13 short runs.
    expect(runs).toBe(13)
    // A run that reports no usable time counts as long.
    shares.finish('slow', took(Number.NaN))
    shares.start('slow')
    expect(shares.pickNext(['slow'])).toBe(-1)
  })

  it('still refuses past the queue share with limit_exceeded while it borrows', () => {
    const shares = new AppShares(2, { maxQueuedPerApp: 2 })
    shares.start('hot')
    shares.finish('hot', took(1))
    for (let i = 0; i < 3; i++) {
      expect(shares.admit('hot')).toBeUndefined()
    }
    shares.start('hot')
    shares.start('hot') // borrowed: two running, one waiting, the share's 1 + 2 admitted
    const refusal = shares.admit('hot')
    expect(refusal?.ok === false && refusal.error.code).toBe('limit_exceeded')
  })

  /**
   * A pool of `size` workers in simulated time: `hot` keeps its queue full of runs of `runMs`,
   * each other app sends one run at its own time. Returns how long each other run waited.
   */
  function simulate(size: number, runMs: number, arrivals: [string, number][]): number[] {
    const shares = new AppShares(size)
    // One ended run of `hot` on record: it may borrow from the start.
    shares.start('hot')
    shares.finish('hot', took(runMs))
    const queue: { app: string; at: number }[] = []
    const workers: { app: string; ends: number }[] = []
    const waits: number[] = []
    const pending = [...arrivals].sort((a, b) => a[1] - b[1])
    for (let now = 0; now <= 2_000; now++) {
      for (let w = workers.length - 1; w >= 0; w--) {
        if (workers[w]!.ends <= now) {
          shares.finish(workers[w]!.app, took(runMs))
          workers.splice(w, 1)
        }
      }
      while (pending.length > 0 && pending[0]![1] <= now) {
        queue.push({ app: pending.shift()![0], at: now })
      }
      while (queue.filter((q) => q.app === 'hot').length < 8) {
        queue.push({ app: 'hot', at: now })
      }
      while (workers.length < size) {
        const i = shares.pickNext(queue.map((q) => q.app))
        if (i < 0) {
          break
        }
        const [run] = queue.splice(i, 1)
        shares.start(run!.app)
        workers.push({ app: run!.app, ends: now + (run!.app === 'hot' ? runMs : 1) })
        if (run!.app !== 'hot') {
          waits.push(now - run!.at)
        }
      }
      // With nothing else waiting, the hot app holds every worker.
      if (queue.every((q) => q.app === 'hot') && workers.every((w) => w.app === 'hot')) {
        expect(workers).toHaveLength(size)
      }
    }
    return waits
  }

  it('makes another app wait at most one run of a borrowing app, whatever the pool size', () => {
    for (const size of [2, 3, 4, 8]) {
      const arrivals: [string, number][] = []
      for (let t = 3; t < 1_900; t += 37) {
        arrivals.push([`app-${t % 5}`, t], [`app-${(t + 1) % 5}`, t])
      }
      const waits = simulate(size, 20, arrivals)
      expect(waits).toHaveLength(arrivals.length)
      expect(Math.max(...waits)).toBeLessThanOrEqual(20)
    }
  })
})

describe('WARDEN_BORROW_BELOW_MS', () => {
  it('reads 0 (never borrow) and positive ms, and refuses anything else', () => {
    expect(resolveHostConfig({}).borrowBelowMs).toBeUndefined()
    expect(new AppShares(2).borrowBelowMs).toBe(BORROW_BELOW_MS)
    expect(resolveHostConfig({ WARDEN_BORROW_BELOW_MS: '0' }).borrowBelowMs).toBe(0)
    expect(resolveHostConfig({ WARDEN_BORROW_BELOW_MS: '20' }).borrowBelowMs).toBe(20)
    for (const bad of ['-1', '1.5', 'x', '1e400']) {
      expect(() => resolveHostConfig({ WARDEN_BORROW_BELOW_MS: bad })).toThrow(TypeError)
    }
    // The positive settings still refuse 0.
    expect(() => resolveHostConfig({ WARDEN_MAX_RUNNING_PER_APP: '0' })).toThrow(TypeError)
  })
})
