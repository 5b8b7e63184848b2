import { describe, expect, it } from 'vitest'
import { MAX_PAYLOAD_DEPTH, payloadSize } from './payload-size.js'

const BIG = { bytes: Number.POSITIVE_INFINITY, values: Number.POSITIVE_INFINITY }

describe('payloadSize', () => {
  it('counts string units, byte lists and every value', () => {
    expect(payloadSize({ a: 'xy', b: [1, new Uint8Array(5)] }, BIG)).toEqual({
      bytes: 7,
      values: 5, // the record, 'xy', the list, 1, the bytes
    })
  })

  it('stops walking once past either stop', () => {
    const many = Array.from({ length: 1_000_000 }, () => ['', ''])
    // Past the stop by at most the value that crossed it (a pair here): never the million.
    const { values } = payloadSize(many, { bytes: 1e9, values: 100 })
    expect(values).toBeGreaterThan(100)
    expect(values).toBeLessThanOrEqual(103)
    expect(payloadSize(['aaaa', 'bbbb', 'cccc'], { bytes: 5, values: 1e9 }).bytes).toBe(8)
  })

  it(`counts a list nested deeper than ${MAX_PAYLOAD_DEPTH} as past any stop on values`, () => {
    let deep: unknown = ['x']
    for (let i = 0; i < MAX_PAYLOAD_DEPTH + 1; i++) {
      deep = [deep]
    }
    expect(payloadSize(deep, BIG).values).toBe(Number.POSITIVE_INFINITY)
  })
})
