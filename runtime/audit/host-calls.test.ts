import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Decision } from '../../core/decisions.js'
import { groupHostCalls } from './host-calls.js'

const LOG = 'warden:platform/log'
const line = (call: number, target = 'info', bytesOut = 1): Decision => ({
  call,
  capability: LOG,
  fn: 'write',
  decision: 'allow',
  target,
  bytesOut,
})

describe('groupHostCalls', () => {
  it('makes 999 log lines one group that counts every call and byte', () => {
    const groups = groupHostCalls(Array.from({ length: 999 }, (_, i) => line(i + 1)))
    expect(groups).toEqual([
      {
        decision: {
          call: 1,
          capability: LOG,
          fn: 'write',
          decision: 'allow',
          target: 'info',
          bytesOut: 999,
        },
        calls: 999,
      },
    ])
  })

  it('merges allowed writes of one output across levels, listing the levels', () => {
    const levels = ['error', 'debug', 'info', 'error', 'warn']
    const groups = groupHostCalls(levels.map((level, i) => line(i + 1, level, i)))
    expect(groups).toHaveLength(1)
    expect(groups[0]?.decision).toMatchObject({ target: 'debug,info,warn,error', bytesOut: 10 })
    expect(groups[0]?.calls).toBe(5)
  })

  it('keeps apart what a record tells apart: outputs, decisions, reasons, targets', () => {
    const denied = (call: number, reason: string, target?: string): Decision => ({
      call,
      capability: 'warden:platform/http',
      fn: 'fetch',
      decision: 'deny',
      reason,
      ...(target === undefined ? {} : { target }),
    })
    const stdout = (call: number): Decision => ({
      call,
      capability: 'wasi:cli/stdout',
      fn: 'write',
      decision: 'allow',
      bytesOut: 4,
    })
    const budget: Decision = {
      ...line(0),
      decision: 'deny',
      reason: 'log budget spent',
      bytesOut: 0,
    }
    const decisions = [
      line(1),
      denied(2, 'not granted'),
      stdout(3),
      denied(4, 'not granted'),
      denied(5, 'host not granted', 'GET https://a.example/'),
      denied(6, 'host not granted', 'GET https://b.example/'),
      { ...budget, call: 7 },
      line(8),
      stdout(9),
      denied(10, 'host not granted', 'GET https://a.example/'),
      { ...budget, call: 11 },
    ]
    const groups = groupHostCalls(decisions)
    // In the order of each group's first call.
    expect(groups.map((g) => [g.decision.call, g.calls])).toEqual([
      [1, 2],
      [2, 2],
      [3, 2],
      [5, 2],
      [6, 1],
      [7, 2],
    ])
    expect(groups[2]?.decision.bytesOut).toBe(8)
    expect(groups[2]?.decision).not.toHaveProperty('target')
  })

  it('sums durations and bytes in both directions of identical calls', () => {
    const get = (call: number, durationMs: number, bytesIn: number): Decision => ({
      call,
      capability: 'warden:platform/data',
      fn: 'get',
      decision: 'allow',
      target: 'notes/today',
      durationMs,
      bytesIn,
    })
    const [group] = groupHostCalls([get(1, 0.5, 10), get(2, 1.25, 20)])
    expect(group).toEqual({ decision: { ...get(1, 1.75, 30) }, calls: 2 })
  })

  it('leaves the input alone and never loses or invents a call', () => {
    const decision = fc.record({
      capability: fc.constantFrom(LOG, 'wasi:cli/stdout', 'warden:platform/http'),
      fn: fc.constantFrom('write', 'fetch'),
      decision: fc.constantFrom('allow' as const, 'deny' as const),
      reason: fc.option(fc.constantFrom('not granted', 'x'), { nil: undefined }),
      target: fc.option(fc.constantFrom('info', 'warn', 'https://a/'), { nil: undefined }),
      bytesOut: fc.option(fc.nat(100), { nil: undefined }),
    })
    fc.assert(
      fc.property(fc.array(decision, { maxLength: 60 }), (raw) => {
        const decisions = raw.map((d, i) => {
          const out: Decision = {
            call: i + 1,
            capability: d.capability,
            fn: d.fn,
            decision: d.decision,
          }
          for (const key of ['reason', 'target', 'bytesOut'] as const) {
            if (d[key] !== undefined) {
              Object.assign(out, { [key]: d[key] })
            }
          }
          return out
        })
        const before = structuredClone(decisions)
        const groups = groupHostCalls(decisions)
        expect(decisions).toEqual(before)
        expect(groups.reduce((n, g) => n + g.calls, 0)).toBe(decisions.length)
        const bytes = (list: readonly Decision[]) => list.reduce((n, d) => n + (d.bytesOut ?? 0), 0)
        expect(bytes(groups.map((g) => g.decision))).toBe(bytes(decisions))
        const calls = groups.map((g) => g.decision.call)
        expect(calls).toEqual([...calls].sort((a, b) => a - b))
      }),
    )
  })
})
