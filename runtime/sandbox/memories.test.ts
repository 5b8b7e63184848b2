import { describe, expect, it } from 'vitest'
import { MemoryShelf } from './memories.js'

const LIMITS = { minPages: 2, maxPages: 8 }
const PAGE = 65_536

function scribbled(pages = LIMITS.minPages): WebAssembly.Memory {
  const memory = new WebAssembly.Memory({ initial: pages, maximum: LIMITS.maxPages })
  new Uint8Array(memory.buffer).fill(0xa5)
  return memory
}

describe('MemoryShelf', () => {
  it('hands out a fresh memory of the limits when it keeps none', () => {
    const shelf = new MemoryShelf<object>()
    const memory = shelf.take({}, LIMITS)
    expect(memory.buffer.byteLength).toBe(2 * PAGE)
    expect(memory.grow(6)).toBe(2)
    expect(() => memory.grow(1)).toThrow(RangeError)
  })

  it('hands a memory given back to the same owner only, once, zeroed as it is taken', () => {
    const shelf = new MemoryShelf<object>()
    const owner = {}
    const other = {}
    const memory = scribbled()
    expect(shelf.give(owner, LIMITS, memory)).toBe(true)
    expect(shelf.bytes).toBe(2 * PAGE)
    // Giving back touches nothing: the zeroing is the taker's, in its own time.
    expect(new Uint8Array(memory.buffer)[PAGE]).toBe(0xa5)
    expect(shelf.take(other, LIMITS)).not.toBe(memory)
    expect(shelf.take(owner, LIMITS)).toBe(memory)
    expect(new Uint8Array(memory.buffer).every((b) => b === 0)).toBe(true)
    expect(shelf.bytes).toBe(0)
    expect(shelf.take(owner, LIMITS)).not.toBe(memory)
  })

  it('keeps no memory larger than the largest kept', () => {
    const shelf = new MemoryShelf<object>(64 * PAGE, 2 * PAGE)
    const big = { minPages: 3, maxPages: 8 }
    const memory = new WebAssembly.Memory({ initial: 3, maximum: 8 })
    expect(shelf.give({}, big, memory)).toBe(false)
    expect(shelf.give({}, LIMITS, scribbled())).toBe(true)
  })

  it('never keeps a memory that grew: the next instance would see a larger memory.size', () => {
    const shelf = new MemoryShelf<object>()
    const owner = {}
    const memory = scribbled()
    memory.grow(1)
    expect(shelf.give(owner, LIMITS, memory)).toBe(false)
    expect(shelf.bytes).toBe(0)
    expect(shelf.take(owner, LIMITS)).not.toBe(memory)
  })

  it('keeps one memory per owner: a second one replaces the first', () => {
    const shelf = new MemoryShelf<object>()
    const owner = {}
    const first = scribbled()
    const second = scribbled()
    shelf.give(owner, LIMITS, first)
    shelf.give(owner, LIMITS, second)
    expect(shelf.bytes).toBe(2 * PAGE)
    expect(shelf.take(owner, LIMITS)).toBe(second)
  })

  it('stays within its capacity, dropping the memories given back longest ago', () => {
    const shelf = new MemoryShelf<object>(5 * PAGE)
    const owners = [{}, {}, {}]
    const memories = owners.map(() => scribbled())
    for (const [i, owner] of owners.entries()) {
      expect(shelf.give(owner, LIMITS, memories[i]!)).toBe(true)
    }
    expect(shelf.bytes).toBe(4 * PAGE)
    expect(shelf.take(owners[0]!, LIMITS)).not.toBe(memories[0])
    expect(shelf.take(owners[1]!, LIMITS)).toBe(memories[1])
    expect(shelf.take(owners[2]!, LIMITS)).toBe(memories[2])
    // Larger than the whole capacity: not kept at all.
    const big = { minPages: 6, maxPages: 8 }
    const memory = new WebAssembly.Memory({ initial: 6, maximum: 8 })
    expect(shelf.give({}, big, memory)).toBe(false)
  })

  it('forgets an owner it is told to drop', () => {
    const shelf = new MemoryShelf<object>()
    const owner = {}
    const memory = scribbled()
    shelf.give(owner, LIMITS, memory)
    shelf.drop(owner)
    expect(shelf.bytes).toBe(0)
    expect(shelf.take(owner, LIMITS)).not.toBe(memory)
  })
})
