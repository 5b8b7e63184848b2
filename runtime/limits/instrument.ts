/**
 * Binary-level rewriter that meters a WebAssembly core module: fuel, memory cap, host ceilings.
 *
 * The rewriter never decodes into an AST. It walks the module once, copies every byte it does not
 * need to change, and inserts code at basic-block boundaries. The walk is linear in the size of
 * the input; the only work per instruction is a table lookup and skipping its immediates.
 *
 * What it does to a module:
 * - appends three global imports from {@link METER_MODULE} (`fuel`, `trap`, `memory_cap`) at the
 *   end of the import section, so every defined global shifts by +3 (all references rewritten);
 * - charges fuel at the start of each basic block and checks it at function entry and loop headers;
 * - replaces `memory.grow` with a version that traps past the run's cap (`memory_cap`);
 * - lowers every memory's and table's maximum to the host ceilings;
 * - exports every defined memory as `warden:memory:N` and drops the `name` custom section.
 *
 * The cost model (what each instruction costs, where blocks start, where fuel is checked) and
 * {@link COST_MODEL_VERSION} are documented in one place, `instrument/cost-model.ts`.
 *
 * Fuel is cached in a local. The imported `fuel` global sits behind an indirection the engine
 * cannot keep in a register, so each function gets one extra i64 local `$f` (appended after its
 * own locals; existing indices do not move) and the charges and checks work on it:
 *
 * - entry: `$f = fuel - cost`, then the check; after a call returns, and at the start of a legacy
 *   `catch`/`catch_all` body, `$f` is reloaded from the global the same way (the callee, or the
 *   code that threw, charged the global);
 * - `$f` is flushed to the global (`local.get $f; global.set $fuel`) wherever another function or
 *   the host can read or charge it, or control leaves the function: before every call
 *   (`call`, `call_indirect`, `return_call*`), `return`, branch to the function's own label
 *   (`br`, `br_if`, any label of `br_table`), the final `end`, `throw`, `rethrow`,
 *   `unreachable`, `memory.grow`, and before the fuel trap.
 *
 * So whenever a callee, a caller, the host or a trap the rewriter inserted (fuel, memory cap) can
 * read the global, it holds exactly what version 1 had there: the amounts did not change. After a
 * guest trap the engine raises itself (out-of-bounds access, division by zero, stack overflow…),
 * `fuelUsed` counts up to the last call, return or check (the last flush): still deterministic,
 * possibly short of what the function charged since. Functions that already have the most
 * locals allowed keep charging the global directly, as in version 1.
 *
 * Accepted: what V8 in Node 20 runs without a flag, and Warden meters and isolates: MVP, sign
 * extension, saturating truncation, bulk memory, reference types (funcref, externref), fixed-width
 * SIMD, atomics on an unshared memory, legacy exception handling, tail calls, multi-value, and at
 * most one memory. Rejected, naming the feature (see {@link REFUSED_FEATURES}): shared memories,
 * multiple memories, memory64, relaxed SIMD, extended constant expressions and exception
 * references, which V8 only runs behind a flag or Warden does not meter; GC and typed function
 * references, unknown opcodes and sections.
 *
 * Layout (one streaming pass; no AST):
 * - `instrument/bytes.ts`: LEB128 reading and the growable output buffer;
 * - `instrument/opcodes.ts`: opcode, type and section tables, and immediate skipping;
 * - `instrument/sections.ts`: the section walk (order, sizes, imports, limits, exports…);
 * - `instrument/code.ts`: the code section, where the metering code is inserted;
 * - `instrument/cost-model.ts`: the fuel cost model and its version;
 * - `instrument/meter.ts`, `instrument/errors.ts`: the names, limits and errors of the API.
 */

import { ModuleRewriter } from './instrument/sections.js'
import type { InstrumentOptions, InstrumentedModule } from './instrument/meter.js'

export { COST_MODEL_VERSION } from './instrument/cost-model.js'
export { InstrumentError, REFUSED_FEATURES } from './instrument/errors.js'
export {
  MAX_FUNCTION_LOCALS,
  MEMORY_EXPORT_PREFIX,
  METER_MODULE,
  TRAP_FUEL,
  TRAP_MEMORY,
} from './instrument/meter.js'
export type { InstrumentOptions, InstrumentedModule } from './instrument/meter.js'

/**
 * Rewrites a core module for metering. Pure: same bytes and options, same output.
 * Throws {@link InstrumentError} for malformed or unsupported input, `TypeError` for bad options.
 *
 * @example
 * const opts = { maxMemoryPages: 1024, maxTableElements: 100_000 }
 * const { bytes, memories } = instrumentModule(core, opts)
 * const fuel = new WebAssembly.Global({ value: 'i64', mutable: true }, 1_000_000n)
 */
export function instrumentModule(
  bytes: Uint8Array,
  options: InstrumentOptions,
): InstrumentedModule {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError('instrumentModule: bytes must be a Uint8Array')
  }
  const { maxMemoryPages, maxTableElements } = options
  if (!Number.isInteger(maxMemoryPages) || maxMemoryPages < 0 || maxMemoryPages > 65_536) {
    throw new TypeError('instrumentModule: maxMemoryPages must be an integer in [0, 65536]')
  }
  if (
    !Number.isInteger(maxTableElements) ||
    maxTableElements < 0 ||
    maxTableElements > 0xffff_ffff
  ) {
    throw new TypeError('instrumentModule: maxTableElements must be an integer in [0, 2^32-1]')
  }
  return new ModuleRewriter(bytes, maxMemoryPages, maxTableElements).run()
}
