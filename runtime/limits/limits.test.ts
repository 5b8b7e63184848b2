import { describe, expect, it } from 'vitest'
import { DEFAULT_CEILINGS, DEFAULT_LIMITS, resolveLimits } from './limits.js'

describe('resolveLimits', () => {
  it('fills defaults', () => {
    expect(resolveLimits({})).toEqual(DEFAULT_LIMITS)
  })

  it('clamps every budget to the host ceilings, whatever a token asks for', () => {
    const huge = resolveLimits({
      fuel: 1e15,
      memoryMb: 1e6,
      timeoutMs: 1e9,
      hostCalls: 1e9,
      egressBytes: 1e15,
      logLines: 1e9,
      logBytes: 1e12,
    })
    expect(huge).toEqual({
      fuel: DEFAULT_CEILINGS.maxFuel,
      memoryMb: DEFAULT_CEILINGS.maxMemoryMb,
      timeoutMs: DEFAULT_CEILINGS.maxTimeoutMs,
      hostCalls: 100_000,
      egressBytes: 1024 ** 3,
      logLines: 10_000,
      logBytes: 1024 * 1024,
    })
  })

  it.each([0, -1, 1.5, Number.NaN, 2 ** 60])('refuses %s as host misuse', (value) => {
    expect(() => resolveLimits({ fuel: value })).toThrow(TypeError)
  })
})
