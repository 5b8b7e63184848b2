import { describe, expect, it } from 'vitest'
import { Channel, ON_PORT, Spinner, stateSet } from './channel.js'
import { CHANNEL } from './protocol.js'

function channel(areaBytes = 256): Channel {
  return new Channel(Channel.allocate(areaBytes))
}

describe('Channel', () => {
  it('carries a value through the area and sets STATE', () => {
    const c = channel()
    const value = { call: 1, capability: 'warden:test/echo', fn: 'echo', args: ['hé', 7n, null] }
    expect(c.send(CHANNEL.REQUEST, value, () => expect.unreachable())).toBe(true)
    expect(c.state).toBe(CHANNEL.REQUEST)
    expect(c.read()).toEqual(value)
  })

  it('hands a payload too large for the area to overflow, and says so in LENGTH', () => {
    const c = channel(16)
    const sent: Uint8Array[] = []
    c.send(CHANNEL.RESPONSE, 'x'.repeat(100), (payload) => sent.push(payload.slice()))
    expect(sent).toHaveLength(1)
    expect(c.state).toBe(CHANNEL.RESPONSE)
    expect(c.read()).toBe(ON_PORT)
  })

  it('leaves STATE alone when a payload does not fit and there is no overflow', () => {
    const c = channel(16)
    expect(c.send(CHANNEL.RESULT, 'x'.repeat(100))).toBe(false)
    expect(c.state).toBe(CHANNEL.IDLE)
  })

  it.each([
    ['past the area', 10_000],
    ['negative', -7],
  ])('refuses a LENGTH %s', (_name, length) => {
    const c = channel()
    Atomics.store(c.header, CHANNEL.LENGTH, length)
    expect(() => c.read()).toThrow(RangeError)
  })

  it('refuses bytes that do not decode', () => {
    const c = channel()
    c.area.set([0xee, 1, 2])
    Atomics.store(c.header, CHANNEL.LENGTH, 3)
    expect(() => c.read()).toThrow(TypeError)
  })
})

describe('watching the channel', () => {
  it('sees a STATE that is already there without spinning', () => {
    const c = channel()
    c.settle(CHANNEL.RESULT)
    const spinner = new Spinner(0)
    expect(c.watch(stateSet(CHANNEL.REQUEST, CHANNEL.RESULT), spinner)).toBe(true)
  })

  it('backs off after a watch that missed, then tries again', () => {
    const c = channel()
    const spinner = new Spinner(20)
    expect(c.watch(stateSet(CHANNEL.RESULT), spinner)).toBe(false)
    const skipped: number[] = []
    for (let i = 0; i < 16; i++) {
      skipped.push(spinner.next())
    }
    expect(skipped.every((us) => us === 0)).toBe(true)
    expect(spinner.next()).toBe(20)
  })

  it('waitFor returns at once when STATE is in the set', () => {
    const c = channel()
    c.settle(CHANNEL.JOB)
    expect(c.waitFor(stateSet(CHANNEL.JOB), new Spinner(10))).toBe(CHANNEL.JOB)
  })

  it('waitFor with a timeout gives up and answers the STATE it saw', () => {
    const c = channel()
    c.settle(CHANNEL.RESULT)
    expect(c.waitFor(stateSet(CHANNEL.JOB), undefined, 5)).toBe(CHANNEL.RESULT)
    expect(c.waitFor(stateSet(CHANNEL.JOB), undefined, 0)).toBe(CHANNEL.RESULT)
    c.settle(CHANNEL.JOB)
    expect(c.waitFor(stateSet(CHANNEL.JOB), undefined, 5)).toBe(CHANNEL.JOB)
  })
})
