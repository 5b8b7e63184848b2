/**
 * The broker: the main-thread side of every host call that leaves the worker. It checks the
 * call against the run's effective grant (again: the worker's early check is an optimisation,
 * not the boundary), dispatches to the capability, and turns failures into answers.
 */
import { HostCallError, tellDecision } from '../../host-capabilities/types.js'
import type { BrokerCapability, RunContext } from '../../host-capabilities/types.js'
import { toWardenError } from '../errors.js'
import type { Decision, HostCallRequest, HostCallResponse } from '../sandbox/protocol.js'

const REFUSALS: ReadonlySet<string> = new Set(['denied', 'limit-exceeded', 'invalid'])

/**
 * Where the broker reports each host call of a traced run (telemetry's run tracer,
 * `runtime/telemetry/`): absent when telemetry is off, and then the broker computes nothing.
 */
export interface HostCallTrace {
  /**
   * A host call was decided: `startedAt` is its start (`performance.now()`), `answer` what it
   * answered (an http response, for its status). `settled` is false for the provisional record
   * of a call still in flight; the same call is reported again, settled, once it ends.
   */
  hostCall(entry: Decision, startedAt: number, answer: unknown, settled: boolean): void
}

/** The per-run record the broker appends to. */
export interface BrokerRunContext extends RunContext {
  decisions: Decision[]
  /** The run's tracer, when telemetry is on and the run is traced. */
  trace?: HostCallTrace | undefined
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
  /**
   * Answer one call. Synchronous when the capability answers synchronously: no promise, no
   * microtask between the guest's request and its answer (the bridge's hot path).
   */
  return function onHostCall(
    ctx: BrokerRunContext,
    request: HostCallRequest,
  ): HostCallResponse | Promise<HostCallResponse> {
    const started = performance.now()
    const egressBefore = ctx.counters.egressBytes
    const capability = byName.get(request.capability)
    const record = (
      decision: 'allow' | 'deny',
      reason: string | undefined,
      answer?: unknown,
      settled = true,
    ) => {
      const entry: Decision = {
        call: request.call,
        capability: request.capability,
        fn: request.fn,
        decision,
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      }
      if (reason !== undefined) {
        entry.reason = reason
      }
      try {
        const target = capability?.target?.(request.fn, request.args)
        if (target !== undefined) {
          entry.target = target
        }
      } catch {
        // An audit target is best effort; the decision is recorded regardless.
      }
      const egress = ctx.counters.egressBytes - egressBefore
      if (egress > 0) {
        entry.bytesOut = egress
      }
      ctx.decisions.push(entry)
      ctx.trace?.hostCall(entry, started, answer, settled)
      if (settled) {
        // Once answered; a call still in flight at the run's end is only in its decisions.
        tellDecision(ctx, entry)
      }
    }
    const fail = (error: unknown): HostCallResponse => {
      if (error instanceof HostCallError) {
        // Policy refusals (denied, over budget, malformed) are denials; an upstream failure or a
        // capability's own error case answered an allowed call.
        // The rule that refused, as the guest reads it (`denied: https only`), bounded: the audit
        // log's redactor still runs over it.
        const why = `${error.payload.tag}: ${String(error.payload.val ?? '')}`.slice(0, 200)
        record(REFUSALS.has(error.payload.tag) ? 'deny' : 'allow', why)
        return { ok: false, hostError: error.payload }
      }
      const fatal = toWardenError(error)
      record('deny', fatal.code)
      return { ok: false, fatal: fatal.toJSON() }
    }
    ctx.counters.brokerCalls++
    if (!capability || !ctx.granted.has(request.capability)) {
      record('deny', 'not granted')
      return {
        ok: false,
        hostError: { tag: 'denied', val: `${request.capability} is not granted to this run` },
      }
    }
    if (!capability.descriptor.functions.includes(request.fn) || !Array.isArray(request.args)) {
      record('deny', 'unknown function')
      return { ok: false, hostError: { tag: 'invalid', val: `unknown function ${request.fn}` } }
    }
    let value: unknown
    try {
      value = capability.handle(request.fn, request.args, ctx)
    } catch (error) {
      return fail(error)
    }
    if (value instanceof Promise) {
      // Recorded now, completed when it settles: a call still in flight when the run ends
      // (its deadline) is audited as started, never lost.
      const pending = ctx.decisions.length
      record('allow', 'unfinished when the run ended', undefined, false)
      const settle = () => ctx.decisions.splice(pending, 1)
      return value.then(
        (resolved: unknown): HostCallResponse => {
          settle()
          record('allow', undefined, resolved)
          return { ok: true, value: resolved }
        },
        (error: unknown) => {
          settle()
          return fail(error)
        },
      )
    }
    record('allow', undefined, value)
    return { ok: true, value }
  }
}
