/**
 * The host side of the metering imports (`warden:meter`), with the run's budget handed to the
 * guest in slices.
 *
 * The guest's `fuel` global (and the local it caches it in) holds only the current slice; the
 * host keeps the rest of the budget in reserve. When a fuel check finds the count below 0, the
 * instrumented code calls `refuel` with it (`instrument/code.ts`, `refuelSequence`), which:
 *
 * 1. ends the run with `trap` = {@link TRAP_FUEL} when count + reserve is below 0: the budget is
 *    spent. It returns count + reserve, which the guest flushes to the global before it traps:
 *    exactly what the global would hold with the whole budget in it;
 * 2. else ends the run with `trap` = {@link TRAP_DEADLINE} when the clock is past the run's
 *    deadline or the host asked the run to stop (a kill switch), returning the count unchanged
 *    (still below 0);
 * 3. else moves the next slice, max(slice, -count) capped at the reserve, from the reserve into
 *    the count, which leaves it at 0 or above, and adds it to the global too: the guest goes on.
 *
 * Fuel stays deterministic: count + reserve is what the single budget would hold at every
 * point, a check traps for fuel iff count + reserve is below 0 there (the count is at most
 * count + reserve, so every such check calls `refuel`), and the host reads count + reserve
 * ({@link FuelMeter.left}) wherever it reads the global: at a flush, and at the stale flush an
 * engine trap leaves. Only a deadline end depends on the clock, as it always did. The
 * deadline is noticed at the first fuel check after it at which the slice ran out: within one
 * slice's worth of work ({@link FUEL_SLICE}), unless the guest is in a host call or in work the
 * fuel does not pace; the pool's watchdog is the backstop for those.
 */
import { TRAP_DEADLINE, TRAP_FUEL } from './instrument/meter.js'

/**
 * Fuel per slice: 2^20 ≈ 1 M. On the Xeon VM (bench/README.md, "Deadlines end in the guest"),
 * a tight `loop br` burns it in ~0.5 ms of CPU and a refuel costs ~0.2–0.4 µs (< 0.1 %); code
 * that pays little fuel for slow work (cache misses, divisions, bulk copies at 64 bytes a fuel)
 * may take tens of ms per slice, which the pool's grace covers (`DEADLINE_GRACE_MS`).
 */
export const FUEL_SLICE = 1n << 20n

// Taken when the module loads: a sandbox worker deletes the `performance` global before any
// guest code runs (`../sandbox/lockdown.ts`), and `refuel` must never throw into a guest.
const timeOrigin = performance.timeOrigin
const monotonic = performance.now.bind(performance)

/** Epoch milliseconds, comparable across threads and processes of one machine. */
export function epochNow(): number {
  return timeOrigin + monotonic()
}

/** The imports an instrumented module takes from `warden:meter`. */
export interface MeterImports extends Record<string, WebAssembly.ImportValue> {
  fuel: WebAssembly.Global
  trap: WebAssembly.Global
  memory_cap: WebAssembly.Global
  refuel: (count: bigint) => bigint
}

/**
 * One run's fuel at a time: its globals are reset, not recreated, per run.
 *
 * @example
 * const meter = new FuelMeter()
 * meter.start(1_000_000n, epochNow() + 200)
 * new WebAssembly.Instance(module, { 'warden:meter': meter.imports(cap) })
 * const used = 1_000_000n - meter.left()
 */
export class FuelMeter {
  readonly fuel = new WebAssembly.Global({ value: 'i64', mutable: true }, 0n)
  readonly trap = new WebAssembly.Global({ value: 'i32', mutable: true }, 0)
  readonly #slice: bigint
  /** The slice of the current run: {@link FuelMeter.start}'s, or the meter's. */
  #runSlice: bigint
  readonly #clock: () => number
  readonly #stopped: () => boolean
  #reserve = 0n
  #deadline = Number.POSITIVE_INFINITY

  /**
   * `slice`: fuel per refuel (tests use small ones); `clock`: epoch ms, for the deadline;
   * `stopped`: whether the host wants the run ended now (read at each refuel, so it must not
   * throw: a sandbox worker reads a word of its shared channel).
   */
  constructor(
    slice: bigint = FUEL_SLICE,
    clock: () => number = epochNow,
    stopped: () => boolean = () => false,
  ) {
    if (slice < 1n) {
      throw new RangeError('the fuel slice must be at least 1')
    }
    this.#slice = slice
    this.#runSlice = slice
    this.#clock = clock
    this.#stopped = stopped
  }

  /**
   * A new run with `budget` fuel, ended in the guest past `deadline` (epoch ms), in slices of
   * `slice` (default the meter's). A budget that fits in one slice is never refuelled, so its
   * deadline and stop are read only when it is spent: work that must notice them soon (a
   * preparation, whose budget is small) takes a small slice.
   */
  start(budget: bigint, deadline = Number.POSITIVE_INFINITY, slice = this.#slice): void {
    if (slice < 1n) {
      throw new RangeError('the fuel slice must be at least 1')
    }
    this.#runSlice = slice
    const first = budget > slice ? slice : budget
    this.fuel.value = first
    this.#reserve = budget - first
    this.#deadline = deadline
    this.trap.value = 0
  }

  /**
   * Whether the run should end now, whatever its fuel: its deadline passed, or the host asked it
   * to stop. `refuel` reads it; so does the sandbox between core instantiations, work the fuel
   * does not pace.
   */
  due(): boolean {
    return this.#clock() >= this.#deadline || this.#stopped()
  }

  /** Fuel left in the run: what the `fuel` global would hold with the whole budget in it. */
  left(): bigint {
    return (this.fuel.value as bigint) + this.#reserve
  }

  /** The `refuel` import (see the file comment). */
  readonly refuel = (count: bigint): bigint => {
    if (count >= 0n) {
      return count
    }
    const total = count + this.#reserve
    if (total < 0n) {
      this.#reserve = 0n
      this.trap.value = TRAP_FUEL
      return total
    }
    if (this.due()) {
      this.trap.value = TRAP_DEADLINE
      return count
    }
    // biome-ignore lint/complexity/useMathMinMax: Math.max throws on bigints
    let add = -count > this.#runSlice ? -count : this.#runSlice
    if (add > this.#reserve) {
      add = this.#reserve
    }
    this.#reserve -= add
    // The global gets the slice too: where the guest's count lives in a local, the global holds
    // the count of the last flush, and global + reserve stays what the single budget's global
    // would hold, even after an engine trap that leaves no flush (the local is authoritative
    // until its next flush overwrites the global).
    this.fuel.value = (this.fuel.value as bigint) + add
    return count + add
  }

  /** The `warden:meter` imports, with `cap` as `memory_cap`. */
  imports(cap: WebAssembly.Global): MeterImports {
    return { fuel: this.fuel, trap: this.trap, memory_cap: cap, refuel: this.refuel }
  }
}
