/**
 * The static fuel cost model: what each instruction costs. The same input always costs the same.
 *
 * | instruction                                      | fuel |
 * | ------------------------------------------------ | ---- |
 * | any instruction (`block`, `end`, `else`… too)    | 1    |
 * | `call_indirect`, `return_call_indirect`          | 2    |
 * | `memory.grow`                                    | 8    |
 * | `memory.copy`, `memory.fill`, `memory.init`: n bytes | 1 + ceil(n / 64) |
 * | `table.copy`, `table.fill`, `table.init`, `table.grow`: n elements | 1 + ceil(n / 16) |
 * | dead code (after `br`, `return`, `throw`, …)     | 0    |
 * | code inserted by the rewriter                    | 0    |
 *
 * A block's whole cost is charged when it is entered. Blocks start at function entry and right
 * after every structured-control instruction (`block` `loop` `if` `else` `end` `try` `catch`
 * `catch_all` `delegate`), `br_if` and call; code after `br`, `br_table`, `return`,
 * `unreachable`, `throw`, `rethrow` and `return_call*` is dead up to the next such
 * instruction and gets no charge. Fuel is checked (`fuel < 0` → trap reason 1) after the charge at
 * function entry and at every loop header, so each iteration and each call is checked. (The
 * guest holds its budget in slices: a check that finds its slice spent first asks the host for
 * the next one, which makes no difference to any of the above: `../refuel.ts`.)
 *
 * That is what the host can observe; the code may get there another way. A small one-block loop
 * (`loop; S; br_if 0; end`, S straight-line, an iteration of at most 32 fuel; until such loops
 * have added 1/8 of the code section's size) is charged for 4 iterations at once when the fuel can pay for them, and gives back what it did not run when it
 * leaves early; when the fuel cannot, it runs the per-iteration code. The trap point, the fuel
 * count wherever the host can read it and `fuelUsed` are those of a charge and check per
 * iteration (`instrument/code.ts`, `emitBatchedLoop`).
 *
 * The length part of a bulk op's cost (n is its last operand, `table.grow`'s delta) is known only
 * when it runs: it is charged right before the op and checked there, so an op the fuel cannot pay
 * for traps (reason 1) without touching memory or the table. Without it, a guest could copy
 * gigabytes for one fuel per instruction and only the wall-clock deadline would stop it.
 */

/**
 * Version of the static fuel cost model and of the code that meters it; part of the
 * instrumentation cache key. 2: same amounts as 1, fuel cached in a local per function.
 * 3: same amounts, fuel threaded through internal calls as an extra parameter and result.
 * 4: bulk memory and table ops also pay for their length (see the table above).
 * 5: same amounts; small one-block loops are charged once per batch of 4 iterations (above).
 * 6: same amounts; the budget reaches the guest in slices: a check that finds the count below 0
 *    calls the `refuel` import, which adds the next slice or ends the run (fuel spent, or past
 *    the deadline: `../refuel.ts`); a defined function's index moves up by one past that import.
 */
export const COST_MODEL_VERSION = 6

/** Fuel per instruction, by class. */
export const COST = {
  /** Every instruction that is reached, control instructions included. */
  instruction: 1,
  /** `call_indirect` and `return_call_indirect` (the table lookup and signature check). */
  callIndirect: 2,
  /** `memory.grow`. */
  memoryGrow: 8,
  /** Bulk memory ops pay one more fuel per 2^6 = 64 bytes of their length, rounded up. */
  bulkBytesLog2: 6,
  /** Bulk table ops (and `table.grow`) pay one more fuel per 2^4 = 16 elements, rounded up. */
  bulkElementsLog2: 4,
} as const
