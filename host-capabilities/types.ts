/**
 * The shapes every capability shares. A capability has three parts (STYLE.md §11):
 * `grant.ts` (pure: parse and compile the grant), `broker.ts` (main thread: check, do the I/O,
 * count budgets) and, for the few that answer inside the worker, `worker.ts`.
 */
import type { Decision, HostErrorPayload, LogLine } from '../core/decisions.js'
import type { ResolvedLimits } from '../core/limits.js'

/** Where a capability's calls are answered. */
export type CapabilitySide = 'worker' | 'broker'

/** Static facts about one WIT interface that Warden can provide. */
export interface CapabilityDescriptor {
  /** The interface as jco keys imports: `warden:platform/log` (no version). */
  interface: string
  /** The versions of the interface Warden accepts, e.g. `0.1.0`. */
  versions: readonly string[]
  /** The functions jco expects on the import object, camelCased as jco names them. */
  functions: readonly string[]
  /** `worker` capabilities answer without a round trip; `broker` ones cross to the main thread. */
  side: CapabilitySide
  /** Interfaces that only carry types: always provided, never granted, never called. */
  typesOnly?: boolean
}

/** What the broker knows about the run a host call belongs to. */
export interface RunContext {
  invocationId: string
  appId: string
  digest: string
  limits: ResolvedLimits
  /** Interfaces the effective grant allows. */
  granted: ReadonlySet<string>
  /**
   * Each granted capability's compiled grant, keyed by interface (`warden:platform/http` →
   * `CompiledHttpGrant`). Compiled once per token, never per call.
   */
  grants: Readonly<Record<string, unknown>>
  /** Budgets spent so far by broker-side calls. */
  counters: { brokerCalls: number; egressBytes: number }
  /** Aborted when the run ends, for any reason. */
  signal: AbortSignal
}

/** The main-thread half of a capability: one call in, an answer or a typed error out. */
export interface BrokerCapability {
  descriptor: CapabilityDescriptor
  /**
   * Answer one call. Return the WIT `ok` value. Throw {@link HostCallError} for the WIT `err`
   * case (the run goes on), or a `WardenError` to end the run.
   */
  handle(fn: string, args: unknown[], ctx: RunContext): unknown
  /**
   * What a call reaches, for the audit record: a URL as the guest wrote it, a secret name, a
   * data key. Pure; must not throw on malformed arguments (return undefined).
   */
  target?(fn: string, args: readonly unknown[]): string | undefined
}

/** A failure the guest sees as its WIT `host-error`; the run continues. */
export class HostCallError extends Error {
  readonly payload: HostErrorPayload
  constructor(tag: HostErrorPayload['tag'], message: string) {
    super(message)
    this.name = 'HostCallError'
    this.payload = { tag, val: message }
  }
}

/** State a worker-side capability may touch during one run. */
export interface WorkerRunState {
  limits: ResolvedLimits
  /** Host calls made so far; the current call's index while a capability answers it. */
  hostCalls: number
  logs: LogLine[]
  logsDropped: number
  logBytes: number
  decisions: Decision[]
}

/** Where the broker reads secret values. Only broker code holds one; workers never do. */
export interface SecretSource {
  /** The plaintext of secret `name`, or undefined when there is none. */
  read(name: string): Promise<string | undefined>
}
