import { describe, expect, it } from 'vitest'
import { TRAP_DEADLINE, TRAP_FUEL } from './instrument.js'
import { FuelMeter } from './refuel.js'

/** A fuel check in the guest that found `count`, flushed to the global as the code does. */
function check(meter: FuelMeter, count: bigint): bigint {
  meter.fuel.value = count
  return meter.refuel(count)
}

describe('FuelMeter.refuel', () => {
  it('adds the next slice while the budget lasts, then ends the run for fuel', () => {
    const meter = new FuelMeter(10n, () => 0)
    meter.start(25n)
    expect(meter.fuel.value).toBe(10n)
    expect(check(meter, -3n)).toBe(7n)
    expect(meter.left()).toBe(12n)
    expect(check(meter, -2n)).toBe(3n)
    expect(meter.left()).toBe(3n)
    expect(check(meter, -5n)).toBe(-5n)
    expect(meter.trap.value).toBe(TRAP_FUEL)
  })

  it('ends the run past its deadline, with the count unchanged', () => {
    let now = 0
    const meter = new FuelMeter(10n, () => now)
    meter.start(100n, 50)
    expect(check(meter, -1n)).toBe(9n)
    now = 50
    expect(check(meter, -1n)).toBe(-1n)
    expect(meter.trap.value).toBe(TRAP_DEADLINE)
  })

  it('ends the run when the host asks it to stop (a kill switch), as at a deadline', () => {
    let stop = false
    const meter = new FuelMeter(
      10n,
      () => 0,
      () => stop,
    )
    meter.start(100n)
    expect(check(meter, -1n)).toBe(9n)
    stop = true
    expect(check(meter, -1n)).toBe(-1n)
    expect(meter.trap.value).toBe(TRAP_DEADLINE)
    expect(meter.left()).toBe(79n)
  })

  it('does not look at the clock or the stop while the slice lasts', () => {
    const meter = new FuelMeter(
      10n,
      () => {
        throw new Error('clock read')
      },
      () => {
        throw new Error('stop read')
      },
    )
    meter.start(100n)
    expect(meter.refuel(0n)).toBe(0n)
    expect(meter.refuel(5n)).toBe(5n)
  })

  it('takes the slice of the run when start names one', () => {
    const meter = new FuelMeter(1_000n, () => 0)
    meter.start(100n, Number.POSITIVE_INFINITY, 10n)
    expect(meter.fuel.value).toBe(10n)
    expect(check(meter, -1n)).toBe(9n)
    expect(meter.left()).toBe(89n)
    meter.start(100n)
    expect(meter.fuel.value).toBe(100n)
  })
})
