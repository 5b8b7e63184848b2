/** What the rewriter adds to a module and promises the loader: names, trap reasons, limits, types. */

/** Import module name of the metering globals. A guest may not import from it itself. */
export const METER_MODULE = 'warden:meter'
/** Value written to the `trap` global when fuel ran out (the guest then hits `unreachable`). */
export const TRAP_FUEL = 1
/** Value written to the `trap` global when `memory.grow` went past the cap or failed. */
export const TRAP_MEMORY = 2
/**
 * Value the host writes to the `trap` global when its `refuel` finds the run past its deadline
 * (the guest then hits `unreachable`): the run ends with `timeout` and its worker lives on.
 */
export const TRAP_DEADLINE = 3
/**
 * The function the rewriter imports from {@link METER_MODULE}, as the last function import:
 * `(i64) -> i64`. A fuel check that finds the count below 0 calls it with the count; the host
 * returns it with more of the run's budget added (the next slice), or, to end the run, returns
 * it still below 0 having set `trap` to {@link TRAP_FUEL} (the budget is spent) or
 * {@link TRAP_DEADLINE}. See `../refuel.ts`.
 */
export const REFUEL_IMPORT = 'refuel'
/**
 * Most locals (parameters included) a function may have, as in V8. The rewriter adds one (the
 * fuel parameter or cached local, also the `memory.grow` scratch); a module with a function
 * already at the limit falls back to the cached scheme, where that function is metered on the
 * global instead, and then rejected only if it uses `memory.grow`.
 */
export const MAX_FUNCTION_LOCALS = 50_000
/** Prefix of the names under which every defined memory is exported: `warden:memory:0`, … */
export const MEMORY_EXPORT_PREFIX = 'warden:memory:'
/**
 * With {@link InstrumentOptions.provideMemory}, the import from {@link METER_MODULE} that takes
 * the place of the memory a module defines: the host hands it a memory of the declared limits.
 */
export const MEMORY_IMPORT = 'memory'

/** Host ceilings applied while instrumenting. */
export interface InstrumentOptions {
  /**
   * Host-wide ceiling for every linear memory, in 64 KiB pages. Declared maxima above it (or
   * absent) are lowered to it. At most 65536.
   */
  maxMemoryPages: number
  /** Host-wide ceiling for every table, in elements. */
  maxTableElements: number
  /**
   * Turn the memory the module defines, if it defines one, into the import
   * {@link METER_MODULE} {@link MEMORY_IMPORT} with the same limits (after the rewrite), still
   * exported as `warden:memory:0`. The host then chooses the memory: a fresh one, or one it has
   * reset to zeros, which an instance cannot tell apart (its data segments are written at
   * instantiation either way). Default false.
   */
  provideMemory?: boolean
}

/** A rewritten module and what the loader needs to know about it. */
export interface InstrumentedModule {
  /**
   * The instrumented core module; it imports the globals `fuel`, `trap`, `memory_cap` and the
   * function `refuel` from `warden:meter`.
   */
  bytes: Uint8Array
  /**
   * One entry per defined (not imported) memory, in index order: its exported name and min pages
   * after rewrite.
   */
  memories: { exportName: string; minPages: number; maxPages: number; provided: boolean }[]
  /**
   * {@link COST_MODEL_VERSION}: bumped when the cost model or the metering code changes (used as a
   * cache key).
   */
  costModelVersion: number
}
