/**
 * The broker: the main-thread side of every host call that leaves the worker. It checks the
 * call against the run's effective grant (again: the worker's early check is an optimisation,
 * not the boundary), dispatches to the capability, and turns failures into answers.
 */
import { HostCallError } from '../../host-capabilities/types.js'
import type { BrokerCapability, RunContext } from '../../host-capabilities/types.js'
import { toWardenError } from '../errors.js'
import type { Decision, HostCallRequest, HostCallResponse } from '../sandbox/protocol.js'

const REFUSALS: ReadonlySet<string> = new Set(['denied', 'limit-exceeded', 'invalid'])

/** The per-run record the broker appends to. */
export interface BrokerRunContext extends RunContext {
  decisions: Decision[]
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
    const egressBefore = ctx.counters.egressBytes
    const capability = byName.get(request.capability)
    const record = (decision: 'allow' | 'deny', reason?: string) => {
      let target: string | undefined
      try {
        target = capability?.target?.(request.fn, request.args)
      } catch {
        target = undefined
      }
      const egress = ctx.counters.egressBytes - egressBefore
      ctx.decisions.push({
        call: request.call,
        capability: request.capability,
        fn: request.fn,
        decision,
        ...(reason === undefined ? {} : { reason }),
        ...(target === undefined ? {} : { target }),
        ...(egress > 0 ? { bytesOut: egress } : {}),
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      })
    }
    ctx.counters.brokerCalls++
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
        // Policy refusals (denied, over budget, malformed) are denials; an upstream failure or a
        // capability's own error case answered an allowed call.
        record(REFUSALS.has(error.payload.tag) ? 'deny' : 'allow', error.payload.tag)
        return { ok: false, hostError: error.payload }
      }
      const fatal = toWardenError(error)
      record('deny', fatal.code)
      return { ok: false, fatal: fatal.toJSON() }
    }
  }
}
