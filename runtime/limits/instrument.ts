/**
 * Binary-level rewriter that meters a WebAssembly core module: fuel, memory cap, host ceilings.
 *
 * The rewriter never decodes into an AST. It walks the module once, copies every byte it does not
 * need to change, and inserts code at basic-block boundaries. The walk is linear in the size of
 * the input; the only work per instruction is a table lookup and skipping its immediates.
 *
 * What it does to a module:
 * - appends three global imports from {@link METER_MODULE} (`fuel`, `trap`, `memory_cap`) at the
 *   end of the import section, so every defined global shifts by +3 (all references rewritten),
 *   and the function import `refuel` (type (i64) -> (i64), appended to the type section) after
 *   the module's function imports, so every defined function shifts by +1 (exports, elements,
 *   `ref.func`, `start`, calls rewritten);
 * - hands the run's budget to the guest in slices: a fuel check that finds the count below 0
 *   calls `refuel`, which adds the next slice or ends the run (fuel spent, deadline passed:
 *   `refuel.ts`), with the same fuel at every point the host reads as with one budget. A loop
 *   without parameters becomes `block bt; loop; block; loop bt … end; br 2; end; <refill>;
 *   br 0; end; unreachable; end`: its header check leaves the loop to refill and re-enters it
 *   (branch labels that cross the three added blocks are shifted), so no call merges back into
 *   the loop's hot path (`instrument/code.ts`, `emitRefillTail`);
 * - charges fuel at the start of each basic block and checks it at function entry and loop headers
 *   (a small one-block loop pays for 4 iterations at once, with the same observable fuel: see
 *   `emitBatchedLoop` in `instrument/code.ts`);
 * - replaces `memory.grow` with a version that traps past the run's cap (`memory_cap`);
 * - lowers every memory's and table's maximum to the host ceilings;
 * - exports every defined memory as `warden:memory:N` and drops the `name` custom section;
 * - with `provideMemory`, turns the defined memory into the import `warden:meter` `memory` (same
 *   limits), so the host can hand a run a memory it reset instead of a fresh one.
 *
 * The cost model (what each instruction costs, where blocks start, where fuel is checked) and
 * {@link COST_MODEL_VERSION} are documented in one place, `instrument/cost-model.ts`.
 *
 * Fuel lives in a local `$f` in every function (the imported `fuel` global sits behind an
 * indirection the engine cannot keep in a register) and is threaded through internal calls
 * (cost model 3's code; model 4 adds the length charge of bulk ops):
 *
 * - every defined function i of type T = (params) -> (results) gets a twin i' = i + n (n defined
 *   functions) of type T' = (params, i64) -> (results, i64), appended to the type section (with,
 *   for two or more results, the block type [] -> (results)). i' holds the instrumented body;
 *   `$f` is its fuel parameter, so its declared locals move up by one (`local.*` indices
 *   rewritten). i keeps its type and becomes a wrapper: `global.get $fuel`, `call i'`,
 *   `global.set $fuel`. Exports, tables, elements, `ref.func`, `start` and the host keep seeing
 *   the original types and indices, and read the fuel in the global;
 * - entry: `$f -= cost` and the check. A direct call of a defined function j becomes
 *   `local.get $f; call j'; local.set $f`, a `return_call j` becomes `local.get $f;
 *   return_call j'`: fuel goes in as the last argument and comes back as the last result, with
 *   no store to the global;
 * - the body runs in an outer `block` with the function's results, then `local.get $f`: `br`,
 *   `br_if` and `br_table` to the function's label land in that block and leave unchanged;
 *   `return` becomes `local.get $f; return`;
 * - `$f` is flushed to the global (`local.get $f; global.set $fuel`) wherever the host or code
 *   outside the threading can read or charge it: before a call of an import and
 *   `call_indirect` (both reload `$f` from the global after), `throw`, `rethrow`,
 *   `unreachable`, `memory.grow` and the length-charged bulk ops (both reloaded after), and the
 *   fuel trap. A legacy `catch` or `catch_all` reloads `$f` from the global (the code that threw
 *   flushed it).
 *
 * So whenever the host, a caller outside the threading or a trap the rewriter inserted (fuel,
 * memory cap) reads the global, it holds exactly what versions 1 and 2 had there. After a guest
 * trap the engine raises itself (out-of-bounds access, division by zero, stack overflow…),
 * the global holds the count of the last flush only, which can be short of what the run charged
 * by everything since the export was entered or the host last saw the fuel; so the worker
 * reports such a run as having spent its whole budget (`runtime/sandbox/worker.ts`): trapping on
 * purpose never under-reports, and the figure stays deterministic.
 *
 * A module falls back as a whole, before or during the code section (the walk restarts), to
 * version 2's code, with no added types or functions: fuel cached in an added local per function,
 * flushed to the global before every call, `return`, branch to the function's label and final
 * `end`, and reloaded after every call. It does when it has a `return_call` of an import or a
 * `return_call_indirect` (a tail call into something that returns no fuel; turning it into a plain
 * call would break the constant stack of tail-call loops), a function at the locals limit, a
 * function type at V8's 1000-parameter or 1000-result limit, or when the added types or
 * functions would pass V8's 1,000,000. In that scheme, functions that already have the most
 * locals allowed charge the global directly, as in version 1.
 *
 * Measured (`npx tsx bench/index.ts fuel`; figures and machine in bench/README.md, "Fuel at
 * call speed" and "Batched loop charges"): recursive fib went from ×1.03–1.05 of the plain
 * module to ×0.71–0.73 on the EPYC VM (it was ×1.34–1.78 on the Xeon VM with version 2); the
 * loop kernel stays at ×0.82–1.03; the memory kernel measured ×1.28–1.32 with a charge and
 * check per iteration of its very tight loop, which threading does not touch; with the loop
 * batched (version 5) it is at ×0.96–1.00, in runs where the per-iteration code measured
 * ×1.04–1.07 (the machine was slower for the plain module then: see the README).
 *
 * Function and type indices past the input's are refused wherever they appear (exports,
 * elements, `ref.func`, `start`, calls, block and `call_indirect` types): in the output they
 * would name the added functions and types, which take fuel as an argument. So are local
 * indices past a function's locals (in the output: the fuel local) and branch labels past the
 * function's (in the output: a block the rewriter added, from which a threaded body returns the
 * fuel it has on the stack). The loader validates components first (jco), so these only reach
 * code that calls the rewriter on unvalidated modules.
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

import { InstrumentError } from './instrument/errors.js'
import { rewriteModule } from './instrument/sections.js'
import type { InstrumentOptions, InstrumentedModule } from './instrument/meter.js'

export { COST_MODEL_VERSION } from './instrument/cost-model.js'
export { InstrumentError, REFUSED_FEATURES } from './instrument/errors.js'
export {
  MAX_FUNCTION_LOCALS,
  MEMORY_EXPORT_PREFIX,
  MEMORY_IMPORT,
  METER_MODULE,
  REFUEL_IMPORT,
  TRAP_DEADLINE,
  TRAP_FUEL,
  TRAP_MEMORY,
} from './instrument/meter.js'
export type { InstrumentOptions, InstrumentedModule } from './instrument/meter.js'

/**
 * How much bigger than its input a metered module may be: 4 times plus 1 MiB. Real code grows
 * ×1.1–1.4 (StarlingMonkey ×1.39); a module made of nothing but empty loops grows ×10.7 (each
 * loop gets its charge and check), so without a bound a 64 MiB upload would have the host read
 * and compile ~700 MB. Past it the module is refused.
 */
export const MAX_INSTRUMENTED_SIZE = { factor: 4, slackBytes: 1024 * 1024 } as const

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
  const out = rewriteModule(
    bytes,
    maxMemoryPages,
    maxTableElements,
    'threaded',
    true,
    options.provideMemory === true,
  )
  const bound = bytes.byteLength * MAX_INSTRUMENTED_SIZE.factor + MAX_INSTRUMENTED_SIZE.slackBytes
  if (out.bytes.byteLength > bound) {
    throw new InstrumentError(
      `unsupported module: metering would make it ${(out.bytes.byteLength / bytes.byteLength).toFixed(1)} times its size (at most ${MAX_INSTRUMENTED_SIZE.factor} times plus 1 MiB)`,
    )
  }
  return out
}
