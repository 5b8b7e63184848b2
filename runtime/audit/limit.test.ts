import { describe, expect, it } from 'vitest'
import { createLimit } from './limit.js'

describe('createLimit', () => {
  it('runs at most max tasks at once, the others in call order, and frees a slot on failure', async () => {
    const limit = createLimit(2)
    let active = 0
    let most = 0
    const started: number[] = []
    const task = (i: number) => async () => {
      started.push(i)
      active++
      most = Math.max(most, active)
      await new Promise((resolve) => setTimeout(resolve, 2))
      active--
      if (i % 3 === 0) {
        throw new Error(`task ${i}`)
      }
      return i
    }
    const results = await Promise.allSettled(Array.from({ length: 9 }, (_, i) => limit(task(i))))
    expect(most).toBe(2)
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
    expect(results.map((r) => r.status === 'fulfilled')).toEqual([
      false,
      true,
      true,
      false,
      true,
      true,
      false,
      true,
      true,
    ])
    // Every slot came back: the next two start at once.
    let now = 0
    await Promise.all([limit(async () => now++), limit(async () => now++)])
    expect(now).toBe(2)
  })
})
