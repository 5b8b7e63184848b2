import type { BrokerRunContext } from '../../runtime/broker/broker.js'
import { resolveLimits } from '../../runtime/limits/limits.js'

/**
 * A run's context for tests that call a capability, the broker or a pool directly, without a
 * runtime: nothing granted, default limits, zeroed counters, a live signal, no decisions.
 * Any field can be overridden; it is also a valid `RunContext`.
 *
 * @example
 * const ctx = fakeRunContext({ appId: 'a', granted: new Set([ECHO_INTERFACE]) })
 * createTestEchoCapability().handle('echo', ['hi'], ctx)
 */
export function fakeRunContext(overrides: Partial<BrokerRunContext> = {}): BrokerRunContext {
  return {
    invocationId: 'test',
    appId: 'test',
    digest: 'test',
    limits: resolveLimits(),
    granted: new Set(),
    grants: {},
    counters: { brokerCalls: 0, egressBytes: 0 },
    signal: new AbortController().signal,
    decisions: [],
    ...overrides,
  }
}
