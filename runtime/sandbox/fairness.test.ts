import { describe, expect, it } from 'vitest'
import { AppShares } from './fairness.js'
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
