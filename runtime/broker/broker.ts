/**
 * The broker: the main-thread side of every host call that leaves the worker. It checks the
 * call against the run's effective grant (again: the worker's early check is an optimisation,
 * not the boundary), dispatches to the capability, and turns failures into answers.
 */
import { HostCallError } from '../../host-capabilities/types.js'
import type { BrokerCapability, RunContext } from '../../host-capabilities/types.js'
import { toWardenError } from '../errors.js'
import type { HostCallRequest, HostCallResponse } from '../sandbox/protocol.js'

/** One decision the broker made, kept with the run (and, from issue 3 on, in the audit log). */
export interface BrokerDecision {
  capability: string
  fn: string
  decision: 'allow' | 'deny'
  reason?: string
  durationMs: number
}

/** The per-run record the broker appends to. */
export interface BrokerRunContext extends RunContext {
  decisions: BrokerDecision[]
}

/**
 * Build the host-call handler for a set of broker-side capabilities.
 *
 * @example
 * const onHostCall = createBroker([testEchoCapability])
 * const answer = await onHostCall(ctx, { capability: 'warden:test/echo', fn: 'echo', args: ['hi'] })
 */
export function createBroker(capabilities: readonly BrokerCapability[]) {
  const byName = new Map(capabilities.map((c) => [c.descriptor.interface, c]))
  return async function onHostCall(
    ctx: BrokerRunContext,
    request: HostCallRequest,
  ): Promise<HostCallResponse> {
    const started = performance.now()
    const record = (decision: 'allow' | 'deny', reason?: string) =>
      ctx.decisions.push({
        capability: request.capability,
        fn: request.fn,
        decision,
        ...(reason === undefined ? {} : { reason }),
        durationMs: performance.now() - started,
      })
    ctx.counters.brokerCalls++
    const capability = byName.get(request.capability)
    if (!capability || !ctx.granted.has(request.capability)) {
      record('deny', 'not granted')
      return { ok: false, hostError: { tag: 'denied', val: `${request.capability} is not granted to this run` } }
    }
    if (!capability.descriptor.functions.includes(request.fn) || !Array.isArray(request.args)) {
      record('deny', 'unknown function')
      return { ok: false, hostError: { tag: 'invalid', val: `unknown function ${request.fn}` } }
    }
    try {
      const value = await capability.handle(request.fn, request.args, ctx)
      record('allow')
      return { ok: true, value }
    } catch (error) {
      if (error instanceof HostCallError) {
        record(error.payload.tag === 'denied' ? 'deny' : 'allow', error.payload.tag)
        return { ok: false, hostError: error.payload }
      }
      const fatal = toWardenError(error)
      record('deny', fatal.code)
      return { ok: false, fatal: fatal.toJSON() }
    }
  }
}
