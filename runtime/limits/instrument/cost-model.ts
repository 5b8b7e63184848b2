/**
 * The static fuel cost model: what each instruction costs. The same input always costs the same.
 *
 * | instruction                                      | fuel |
 * | ------------------------------------------------ | ---- |
 * | any instruction (`block`, `end`, `else`… too)    | 1    |
 * | `call_indirect`, `return_call_indirect`          | 2    |
 * | `memory.grow`                                    | 8    |
 * | dead code (after `br`, `return`, `throw`, …)     | 0    |
 * | code inserted by the rewriter                    | 0    |
 *
 * A block's whole cost is charged when it is entered. Blocks start at function entry and right
 * after every structured-control instruction (`block` `loop` `if` `else` `end` `try` `catch`
 * `catch_all` `delegate`), `br_if` and call; code after `br`, `br_table`, `return`,
 * `unreachable`, `throw`, `rethrow` and `return_call*` is dead up to the next such
 * instruction and gets no charge. Fuel is checked (`fuel < 0` → trap reason 1) after the charge at
 * function entry and at every loop header, so each iteration and each call is checked.
 */

/**
 * Version of the static fuel cost model and of the code that meters it; part of the
 * instrumentation cache key. 2: same amounts as 1, fuel cached in a local per function.
 * 3: same amounts, fuel threaded through internal calls as an extra parameter and result.
 */
export const COST_MODEL_VERSION = 3

/** Fuel per instruction, by class. */
export const COST = {
  /** Every instruction that is reached, control instructions included. */
  instruction: 1,
  /** `call_indirect` and `return_call_indirect` (the table lookup and signature check). */
  callIndirect: 2,
  /** `memory.grow`. */
  memoryGrow: 8,
} as const
