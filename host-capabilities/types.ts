/**
 * The shapes every capability shares. A capability has three parts (STYLE.md §11):
 * `grant.ts` (pure: parse and compile the grant), `broker.ts` (main thread: check, do the I/O,
 * count budgets) and, for the few that answer inside the worker, `worker.ts`.
 */
import type { Decision, HostErrorPayload, LogLine } from '../core/decisions.js'
import type { ResolvedLimits } from '../core/limits.js'
import type { z } from 'zod'
import type { DataReader } from './data/store.js'
import type { HttpCapabilityDeps } from './http/broker.js'

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
  /**
   * Told each host call of the run as it is decided, while the run goes on (`warden dev`
   * prints it then): the broker's once answered, the worker's (log, WASI, early denials) as the
   * worker records them, up to the run's `logLines` (see {@link tellDecision}). Absent: nothing
   * is reported live and the worker posts nothing. A call still in flight when the run ends,
   * and the worker's past the cap, are only in the run's decisions.
   */
  onDecision?: ((decision: Decision) => void) | undefined
}

/**
 * Tell `ctx`'s listener of `decision`, if it has one: a copy, so the listener cannot change
 * the run's record, and a listener that throws changes nothing (the call's answer stands).
 */
export function tellDecision(ctx: RunContext, decision: Decision): void {
  if (!ctx.onDecision) {
    return
  }
  try {
    ctx.onDecision({ ...decision })
  } catch {
    // An observer's failure is not the guest's call's.
  }
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

/**
 * What a capability contributes to a capability token: one field of the token's `grants`, how
 * it is parsed, narrowed and compiled. The token code knows no capability by name: claims,
 * attenuation, the effective grant and compilation are all built from the list of
 * {@link Capability} values (`host-capabilities/index.ts`).
 */
export interface CapabilityGrant<
  Key extends string = string,
  Schema extends z.ZodType = z.ZodType,
  Compiled = unknown,
> {
  /** The field of a token's `grants` (`http`): a JSON key, stable once tokens carry it. */
  readonly key: Key
  /**
   * The field's strict zod schema. It normalises (defaults written out, so two grants compare
   * field by field) and defaults to granting nothing.
   */
  readonly schema: Schema
  /** True when `value` grants anything at all (a non-empty list, `true`). */
  grantsAnything(value: z.output<Schema>): boolean
  /**
   * Attenuation: the first part of `child` that `parent` does not cover, as a path suffix
   * (`[2]` for a list entry, `''` for the whole field), or undefined when `child` ⊆ `parent`.
   */
  widening(child: z.output<Schema>, parent: z.output<Schema>): string | undefined
  /**
   * Compile the value once per run for the brokers, read back from `RunContext.grants` under
   * the descriptor's interface. Absent: the brokers need nothing beyond "granted".
   */
  compile?(value: z.output<Schema>): Compiled
  /**
   * The compiled grant is also in force when the component does not import the interface:
   * secrets bind to `http` requests of a component that never calls `secrets` itself.
   */
  readonly appliesWithoutImport?: boolean
}

/** What a host gives capabilities to build their brokers from. */
export interface CapabilityHost {
  /** Secret values, for the brokers that substitute or hash them. */
  secrets: SecretSource
  /** Documents, for the data capability. */
  data: DataReader
  /** Derive a 32-byte key for one purpose from the data dir's master key. */
  subkey(purpose: string): Uint8Array
  /** Overrides of the http transport (a DNS `lookup`, extra CA roots), in tests. */
  http?: Pick<HttpCapabilityDeps, 'lookup' | 'ca' | 'transport'>
}

/**
 * One capability, whole: its WIT interface, its grant, and (for broker-side capabilities) how
 * to build its broker. Adding a capability is a folder that exports one of these and one line
 * in the list.
 */
export interface Capability<Grant extends CapabilityGrant = CapabilityGrant> {
  readonly descriptor: CapabilityDescriptor
  readonly grant: Grant
  /** Build the main-thread half, for capabilities whose calls are answered by the broker. */
  broker?(host: CapabilityHost): BrokerCapability
}
