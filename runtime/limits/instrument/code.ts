/**
 * The code section: streams each function body once, inserting fuel charges and checks at
 * basic-block starts, the `memory.grow` cap, and the code that keeps fuel in a local (threaded
 * through internal calls, or flushed to the global around them), and shifting global indices
 * past the meter imports. See `../instrument.ts` for the two schemes.
 */
import { ByteWriter, decodeU32, lebEnd, lebLength } from './bytes.js'
import { COST } from './cost-model.js'
import { InstrumentError, REFUSED_FEATURES, malformed, refused, unsupported } from './errors.js'
import { MAX_FUNCTION_LOCALS, TRAP_MEMORY } from './meter.js'
import {
  IMM,
  IMMEDIATES,
  NUMERIC_OPS,
  OP,
  TYPE,
  skipAtomic,
  FC,
  skipBlockType,
  skipFc,
  skipMemarg,
  skipSimd,
  skipValType,
} from './opcodes.js'

/** What the code section needs to know about the rest of the module. */
export interface CodeContext {
  /**
   * Thread fuel through internal calls: function i's body moves to i + n (n defined functions)
   * with an extra trailing i64 parameter and result, and i becomes a wrapper. Otherwise every
   * function keeps its index and caches fuel in an added local (cost model 2's code).
   */
  threaded: boolean
  /**
   * Charge small one-block loops (`loop; S; br_if 0; end`, no call or branch in S) for
   * {@link LOOP_BATCH} iterations at once, with the per-iteration code as the slow path: see
   * `emitBatchedLoop`. The fuel the host sees is the same either way.
   */
  batchLoops: boolean
  /** Parameter count of every type, by type index. */
  paramCounts: readonly number[]
  /** Types in the input module: a type index at or above this is invalid. */
  typeCount: number
  /** Block type (`[] -> results`) of every type, encoded; used by threaded bodies. */
  resultBlockTypes: readonly Uint8Array[]
  /**
   * Imported functions: a function index below this is an import. The `refuel` import comes
   * next, at this index, and every defined function moves up by one.
   */
  importedFuncs: number
  /** Type index of every defined function. */
  funcTypes: readonly number[]
  /** Imported globals: defined globals at or above this index shift by the meter imports. */
  importedGlobals: number
  /** How far defined globals shift (the meter imports). */
  globalShift: number
  fuelGlobal: number
  trapGlobal: number
  capGlobal: number
}

/**
 * The module cannot be metered with fuel threaded through calls (a tail call to an import or
 * through a table, a function at the locals limit, a type or function count near V8's limits);
 * the caller starts over with the cached scheme.
 */
export class FuelThreadingUnsupported extends Error {}

// Kinds of in-place rewrites recorded while scanning a straight-line segment.
const RW_GLOBAL = 0
const RW_GROW = 1
/** Threaded: a local index at or past the fuel parameter, shifted by one. */
const RW_LOCAL = 2
/** Threaded: `call f` → `local.get $f; call f'; local.set $f`. */
const RW_CALL = 3
/** Threaded: `return_call f` → `local.get $f; return_call f'`. */
const RW_RETURN_CALL = 4
/** Threaded: `return` → `local.get $f; return`. */
const RW_RETURN = 5
/** A bulk memory or table op (inserted before it): value is the log2 of bytes/elements per fuel. */
const RW_BULK = 6
/** A defined function's index (`call`, `return_call`, `ref.func`), past the `refuel` import. */
const RW_FUNC = 7
/** A branch label past wrapped loops (see `wrapLoops`): value is the new label. */
const RW_LABEL = 8
/** Inserted before a wrapped `loop`: `block bt; loop; block` (value: where bt starts). */
const RW_WRAP = 9
/** Blocks the rewriter adds around a wrapped loop: `$done`, `$retry`, `$refill`. */
const WRAP_BLOCKS = 3

/**
 * Iterations a batched loop pays for at once. The memory-heavy kernel of `bench/fuel.bench.ts`
 * over 32 KiB instead of 1 MiB (in cache, so the loop's own instructions are the cost), CPU
 * time ÷ the plain module, one process per line: per-iteration code ×1.05–1.07; batches of 2
 * ×1.05, of 4 ×0.97, of 8 ×0.97 (bench/README.md, "Batched loop charges").
 */
export const LOOP_BATCH = 4
/**
 * Only loops whose iteration costs at most this much fuel are batched: past it the
 * per-iteration charge and check (a subtraction, a compare, a branch) is a few percent of the
 * iteration, and each batched loop grows the output by its body × LOOP_BATCH plus ~75 bytes
 * (StarlingMonkey: +3.6 % at 32, +5.2 % at 64).
 */
export const LOOP_BATCH_MAX_COST = 32
/** Nor loops whose body is longer than this many bytes: a bound on the copies, whatever S holds. */
export const LOOP_BATCH_MAX_BYTES = 256
/**
 * Batched loops may add at most the code section's size >> this many bytes to it (1/8); past
 * that, loops keep the per-iteration code. Without it a module of nothing but tiny loops would
 * come out ~17.6 times its size instead of ~6.1 (StarlingMonkey's batched loops use 7 % of its
 * code section's size).
 */
export const LOOP_BATCH_BUDGET_SHIFT = 3

// What functionBody found in a body.
const BODY_GROW = 1 // it uses memory.grow or a bulk op (the rewrite needs the scratch local)

// What an instruction does to the basic-block structure.
const K_BOUNDARY = 1 // a new basic block starts right after it
const K_TERMINATOR = 2 // what follows (up to the next boundary) is dead
const K_FINAL = 3 // the `end` of the function body

const NUMERIC_FIRST = NUMERIC_OPS.first
const NUMERIC_LAST = NUMERIC_OPS.last

export class CodeRewriter {
  private readonly b: Uint8Array
  private readonly ctx: CodeContext
  private readonly fw = new ByteWriter(1 << 16)
  /** The global-only fuel check (uncached functions): `global.get $fuel; …; end`. */
  private readonly checkBytes: Uint8Array

  // Per function.
  /**
   * Index of the fuel local `$f`: the added i64 local (cached scheme) or the fuel parameter
   * (threaded scheme); also the `memory.grow` scratch.
   */
  private fuelLocal = 0
  /** Whether the current function meters on `fuelLocal` (else on the global, as in v1). */
  private cached = false
  /** Whether the current function's fuel arrives as its last parameter and leaves as its last result. */
  private threaded = false
  /** `fuelLocal` is stale: the next charge starts from the global (after entry, call, catch). */
  private reload = false
  /** Locals of the current function in the input, parameters included: indices must be below. */
  private localCount = 0
  /** Bytes batched loops may still add to the code section (see LOOP_BATCH_BUDGET_SHIFT). */
  private batchBytesLeft = 0
  /**
   * Per open block, by index (0: the function's): whether it is a loop the rewriter wrapped
   * (see `emitRefillTail`) and its header's charge; `wrapBelow[k]`: how many wrapped loops
   * have an index below k, for shifting branch labels that cross the wrappers.
   */
  private readonly wrapped: boolean[] = [false]
  private readonly wrapCost: number[] = [0]
  private readonly wrapBelow: number[] = [0, 0]

  private readonly rwStart: number[] = []
  private readonly rwEnd: number[] = []
  private readonly rwKind: number[] = []
  private readonly rwValue: number[] = []

  constructor(bytes: Uint8Array, ctx: CodeContext) {
    this.b = bytes
    this.ctx = ctx
    const w = new ByteWriter(48)
    // global.get $fuel; i64.const 0; i64.lt_s; if … refuel or trap … end
    w.byte(OP.globalGet)
    w.u32(ctx.fuelGlobal)
    w.byte(OP.i64Const)
    w.byte(0x00)
    w.byte(OP.i64LtS)
    this.refuelSequence(w, false)
    this.checkBytes = w.buf.slice(0, w.pos)
  }

  /** Rewrites the code section b[start, end) and returns its new contents. */
  codeSection(start: number, end: number): ByteWriter {
    const b = this.b
    let p = lebEnd(b, start, end, 5)
    const count = decodeU32(b, start, p)
    const { paramCounts, funcTypes, threaded } = this.ctx
    this.batchBytesLeft = (end - start) >>> LOOP_BATCH_BUDGET_SHIFT
    if (count !== funcTypes.length) {
      throw malformed('function and code section counts differ', start)
    }
    const code = new ByteWriter(Math.ceil((end - start) * 1.4) + 1024 + (threaded ? count * 16 : 0))
    if (threaded) {
      code.u32(2 * count)
      for (let i = 0; i < count; i++) {
        this.emitWrapper(code, i)
      }
    } else {
      code.u32(count)
    }
    const fw = this.fw
    for (let i = 0; i < count; i++) {
      let q = lebEnd(b, p, end, 5)
      const size = decodeU32(b, p, q)
      p = q
      const bodyEnd = p + size
      if (bodyEnd > end) {
        throw malformed('function body runs past the code section', p)
      }
      const localsAt = p
      q = lebEnd(b, p, bodyEnd, 5)
      const groups = decodeU32(b, p, q)
      p = q
      const groupsAt = p
      const params = paramCounts[funcTypes[i]]
      let total = params
      for (let j = 0; j < groups; j++) {
        q = lebEnd(b, p, bodyEnd, 5)
        total += decodeU32(b, p, q)
        p = q
        if (total > MAX_FUNCTION_LOCALS) {
          throw new InstrumentError(`function ${i} has too many locals`)
        }
        p = skipValType(b, p, bodyEnd)
      }
      this.localCount = total
      if (threaded) {
        // The fuel parameter takes one more local slot.
        if (total + 1 > MAX_FUNCTION_LOCALS) {
          throw new FuelThreadingUnsupported(`function ${i} is at the locals limit`)
        }
        this.fuelLocal = params
        this.cached = true
        this.threaded = true
        this.functionBody(p, bodyEnd, funcTypes[i])
        // The locals as they were: the fuel local is the parameter.
        code.u32(p - localsAt + fw.pos)
        code.copy(b, localsAt, p)
        code.copy(fw.buf, 0, fw.pos)
        p = bodyEnd
        continue
      }
      this.fuelLocal = total
      this.cached = total < MAX_FUNCTION_LOCALS
      this.threaded = false
      const body = this.functionBody(p, bodyEnd, funcTypes[i])
      if (this.cached || body & BODY_GROW) {
        if (total + 1 > MAX_FUNCTION_LOCALS) {
          throw new InstrumentError(`function ${i} has too many locals`)
        }
        // The locals as they were, then one i64.
        const header = lebLength(groups + 1) + (p - groupsAt) + 2
        code.u32(header + fw.pos)
        code.u32(groups + 1)
        code.copy(b, groupsAt, p)
        code.byte(0x01)
        code.byte(TYPE.i64)
      } else {
        code.u32(p - localsAt + fw.pos)
        code.copy(b, localsAt, p)
      }
      code.copy(fw.buf, 0, fw.pos)
      p = bodyEnd
    }
    if (p !== end) {
      throw malformed('code section size does not match its contents', p)
    }
    return code
  }

  /**
   * The body left at defined function i's own index (threaded scheme), with its original type:
   * `local.get 0 … local.get P-1; global.get $fuel; call i'; global.set $fuel`. Exports, tables,
   * `ref.func`, `start` and the host keep calling i and see the fuel in the global.
   */
  private emitWrapper(code: ByteWriter, i: number): void {
    const { paramCounts, funcTypes, importedFuncs, fuelGlobal } = this.ctx
    const params = paramCounts[funcTypes[i]]
    const w = this.fw
    w.pos = 0
    w.byte(0x00) // no locals
    for (let k = 0; k < params; k++) {
      w.byte(OP.localGet)
      w.u32(k)
    }
    w.byte(OP.globalGet)
    w.u32(fuelGlobal)
    w.byte(OP.call)
    w.u32(importedFuncs + 1 + funcTypes.length + i)
    w.byte(OP.globalSet)
    w.u32(fuelGlobal)
    w.byte(OP.end)
    code.u32(w.pos)
    code.copy(w.buf, 0, w.pos)
  }

  /**
   * The out-of-line path of a fuel check (`fuel < 0` on the stack): the `refuel` import gets the
   * count and returns it with the next slice of the run's budget added, or, when the budget is
   * spent or the run is past its deadline, returns it still below 0 with the reason in `trap`;
   * then the guest traps, with the count flushed to the global for the host to read.
   * On `$f` (`onLocal`):
   *
   *     if  local.get $f; call $refuel; local.tee $f; i64.const 0; i64.lt_s
   *         if  local.get $f; global.set $fuel; unreachable  end  end
   *
   * on the global: `if  global.get $fuel; call $refuel; global.set $fuel; global.get $fuel;
   * i64.const 0; i64.lt_s; if unreachable end  end`.
   *
   * The guest goes on after the `if`: used at function entries, before bulk ops and at the
   * header of a loop that takes parameters. A loop header's check in a function that meters on
   * `$f` branches out of the loop instead (`emitRefillTail`): a call that merges back into a
   * loop makes V8 keep the loop's values in memory on its hot path.
   */
  private refuelSequence(w: ByteWriter, onLocal: boolean): void {
    w.ensure(2)
    w.byte(OP.if)
    w.byte(TYPE.empty)
    this.refuelOrTrap(w, onLocal)
    w.byte(OP.end)
  }

  /**
   * The count (of `$f` or the global) through `refuel`, and the trap if it is still below 0:
   * `local.get $f; call $refuel; local.tee $f; i64.const 0; i64.lt_s; if local.get $f;
   * global.set $fuel; unreachable end` (on the global: `global.get; call; global.set;
   * global.get; …; if unreachable end`).
   */
  private refuelOrTrap(w: ByteWriter, onLocal: boolean): void {
    const { fuelGlobal, importedFuncs } = this.ctx
    w.ensure(40)
    w.byte(onLocal ? OP.localGet : OP.globalGet)
    w.u32(onLocal ? this.fuelLocal : fuelGlobal)
    w.byte(OP.call)
    w.u32(importedFuncs)
    if (onLocal) {
      w.byte(OP.localTee)
      w.u32(this.fuelLocal)
    } else {
      w.byte(OP.globalSet)
      w.u32(fuelGlobal)
      w.byte(OP.globalGet)
      w.u32(fuelGlobal)
    }
    w.byte(OP.i64Const)
    w.byte(0x00)
    w.byte(OP.i64LtS)
    w.byte(OP.if)
    w.byte(TYPE.empty)
    if (onLocal) {
      w.byte(OP.localGet)
      w.u32(this.fuelLocal)
      w.byte(OP.globalSet)
      w.u32(fuelGlobal)
    }
    w.byte(OP.unreachable)
    w.byte(OP.end)
  }

  /** `if; i32.const reason; global.set $trap; unreachable; end` (the memory cap). */
  private trapSequence(w: ByteWriter, reason: number): void {
    w.ensure(16)
    w.byte(OP.if)
    w.byte(TYPE.empty)
    w.byte(OP.i32Const)
    w.byte(reason)
    w.byte(OP.globalSet)
    w.u32(this.ctx.trapGlobal)
    w.byte(OP.unreachable)
    w.byte(OP.end)
  }

  /**
   * Streams one function's instructions into `this.fw`, inserting fuel charges and checks at
   * basic-block starts (and, when `this.cached`, the flushes and reloads of the fuel local) and
   * rewriting global indices and `memory.grow`. Returns BODY_GROW when the body uses
   * `memory.grow` (and so needs the scratch local).
   */
  private functionBody(start: number, end: number, type: number): number {
    const b = this.b
    const ctx = this.ctx
    const gImported = ctx.importedGlobals
    const gShift = ctx.globalShift
    const typeCount = ctx.typeCount
    const importedFuncs = ctx.importedFuncs
    const totalFuncs = importedFuncs + ctx.funcTypes.length
    const threaded = this.threaded
    // Threaded: locals at or past the fuel parameter move up by one. Cached: none moves, and
    // every index is checked against the locals (the added fuel local comes next).
    const firstShifted = threaded ? this.fuelLocal : this.localCount
    const localCount = this.localCount
    const rwStart = this.rwStart
    const rwEnd = this.rwEnd
    const rwKind = this.rwKind
    const rwValue = this.rwValue
    const cached = this.cached
    // Batching needs the fuel local (not the global of an uncached function).
    const batchLoops = ctx.batchLoops && cached
    this.fw.pos = 0
    // Threaded: fuel arrives in the parameter. Cached: it is loaded from the global at entry.
    this.reload = cached && !threaded
    if (threaded) {
      // The body runs in a block with the function's results, so that every branch to the
      // function's label lands before the `local.get $f` that appends the fuel result.
      const bt = ctx.resultBlockTypes[type]
      this.fw.byte(OP.block)
      this.fw.copy(bt, 0, bt.length)
    }
    let nrw = 0
    let p = start
    let segStart = start
    let live = true
    let check = true
    // This segment is the header of a `loop` with no parameters and no results.
    let loopHeader = false
    let cost = 0
    let depth = 1
    let usesGrow = false
    // Index of the innermost block the current segment starts in (a loop header's: the loop).
    let depthAtSegment = 0

    for (;;) {
      if (p >= end) {
        throw malformed('function body has no end', p)
      }
      const opAt = p
      const op = b[p++]
      cost += COST.instruction
      if (op >= NUMERIC_FIRST && op <= NUMERIC_LAST) {
        continue
      }
      switch (IMMEDIATES[op]) {
        case IMM.none:
          continue
        case IMM.local: {
          if (p < end && b[p] < 0x80 && b[p] < firstShifted) {
            p++
            continue
          }
          const q = lebEnd(b, p, end, 5)
          const idx = decodeU32(b, p, q)
          // Past the input's locals: in the output it would name the fuel local (or, threaded,
          // another local), letting invalid input set its own fuel.
          if (idx >= localCount) {
            throw malformed(`local index ${idx} out of range`, p)
          }
          if (idx >= firstShifted) {
            rwStart[nrw] = p
            rwEnd[nrw] = q
            rwKind[nrw] = RW_LOCAL
            rwValue[nrw] = idx + 1
            nrw++
          }
          p = q
          continue
        }
        case IMM.global: {
          const q = lebEnd(b, p, end, 5)
          const idx = b[p] < 0x80 ? b[p] : decodeU32(b, p, q)
          if (idx >= gImported) {
            rwStart[nrw] = p
            rwEnd[nrw] = q
            rwKind[nrw] = RW_GLOBAL
            rwValue[nrw] = idx + gShift
            nrw++
          }
          p = q
          continue
        }
        case IMM.memarg:
          p = skipMemarg(b, p, end)
          continue
        case IMM.leb32:
          if (p < end && b[p] < 0x80) {
            p++
          } else {
            p = lebEnd(b, p, end, 5)
          }
          continue
        case IMM.leb64:
          p = lebEnd(b, p, end, 10)
          continue
        case IMM.funcIndex: {
          const q = lebEnd(b, p, end, 5)
          const idx = decodeU32(b, p, q)
          if (idx >= totalFuncs) {
            throw malformed('function index out of range', p)
          }
          if (idx >= importedFuncs) {
            nrw = this.recordFunc(nrw, p, q, idx)
          }
          p = q
          continue
        }
        case IMM.f32:
          p += 4
          if (p > end) {
            throw malformed('unexpected end', end)
          }
          continue
        case IMM.f64:
          p += 8
          if (p > end) {
            throw malformed('unexpected end', end)
          }
          continue
        case IMM.selectT: {
          const q = lebEnd(b, p, end, 5)
          const n = decodeU32(b, p, q)
          p = q
          for (let i = 0; i < n; i++) {
            p = skipValType(b, p, end)
          }
          continue
        }
        case IMM.memoryGrow: {
          const q = lebEnd(b, p, end, 5)
          rwStart[nrw] = p - 1
          rwEnd[nrw] = q
          rwKind[nrw] = RW_GROW
          rwValue[nrw] = decodeU32(b, p, q)
          nrw++
          p = q
          cost += COST.memoryGrow - COST.instruction
          usesGrow = true
          continue
        }
        case IMM.prefixFc: {
          const shift = bulkShift(b, p, end)
          if (shift >= 0) {
            // Charged by its length operand, right before it runs.
            rwStart[nrw] = opAt
            rwEnd[nrw] = opAt
            rwKind[nrw] = RW_BULK
            rwValue[nrw] = shift
            nrw++
            usesGrow = true
          }
          p = skipFc(b, p, end)
          continue
        }
        case IMM.prefixSimd:
          p = skipSimd(b, p, end)
          continue
        case IMM.prefixAtomic:
          p = skipAtomic(b, p, end)
          continue
        case IMM.control:
          break
        default:
          throw unsupported(`unknown opcode 0x${op.toString(16)}`, p - 1)
      }

      let kind = 0
      // This `end` closes a wrapped loop: its refill path follows (see emitRefillTail).
      let closesWrap = false
      // Batch the loop whose header segment ends here (see emitBatchedLoop).
      let batch = false
      // Flush the fuel local to the global before this instruction (cached functions only).
      let flush = false
      // Reload the fuel local from the global after it (cached functions only).
      let reload = false
      switch (op) {
        case OP.block:
        case OP.loop:
        case OP.if:
        case OP.try: {
          // (try: legacy exception handling)
          p = skipBlockType(b, p, end, typeCount)
          const wrap = op === OP.loop && cached && this.noParams(opAt + 1)
          if (wrap) {
            rwStart[nrw] = opAt
            rwEnd[nrw] = opAt
            rwKind[nrw] = RW_WRAP
            rwValue[nrw] = opAt + 1
            nrw++
          }
          this.wrapped[depth] = wrap
          this.wrapBelow[depth + 1] = this.wrapBelow[depth] + (wrap ? 1 : 0)
          depth++
          kind = K_BOUNDARY
          break
        }
        case OP.tryTable:
        case OP.throwRef:
          throw refused(REFUSED_FEATURES.exnref, opAt)
        case OP.else:
          kind = K_BOUNDARY
          break
        case OP.catchAll:
          // The code that threw charged the global.
          reload = cached
          kind = K_BOUNDARY
          break
        case OP.catch: // tagidx
          p = lebEnd(b, p, end, 5)
          reload = cached
          kind = K_BOUNDARY
          break
        case OP.call: {
          // funcidx
          const q = lebEnd(b, p, end, 5)
          const callee = decodeU32(b, p, q)
          if (callee >= totalFuncs) {
            throw malformed(`function index ${callee} out of range`, p)
          }
          if (threaded && callee >= importedFuncs) {
            // `local.get $f; call callee'; local.set $f`: fuel goes in and comes back.
            rwStart[nrw] = opAt
            rwEnd[nrw] = q
            rwKind[nrw] = RW_CALL
            rwValue[nrw] = callee + 1 + ctx.funcTypes.length
            nrw++
          } else {
            // An import, or the cached scheme: the callee reads and charges the global.
            if (callee >= importedFuncs) {
              nrw = this.recordFunc(nrw, p, q, callee)
            }
            flush = cached
            reload = cached
          }
          p = q
          kind = K_BOUNDARY
          break
        }
        case OP.brIf: {
          const q = lebEnd(b, p, end, 5)
          const label = this.label(p, q, depth)
          nrw = this.shiftLabel(nrw, p, q, label, depth)
          flush = cached && !threaded && label === depth - 1
          p = q
          kind = K_BOUNDARY
          // `loop; S; br_if 0; end`, S straight-line: the whole loop is this segment.
          batch =
            loopHeader &&
            live &&
            !this.reload &&
            label === 0 &&
            p < end &&
            b[p] === OP.end &&
            cost <= LOOP_BATCH_MAX_COST &&
            opAt - segStart <= LOOP_BATCH_MAX_BYTES &&
            this.batchBytesLeft > 0 &&
            this.onlyRenumbered(nrw)
          break
        }
        case OP.delegate: {
          // label (of the blocks around the try it closes)
          const q = lebEnd(b, p, end, 5)
          if (--depth === 0) {
            throw malformed('delegate closes the function body', p)
          }
          nrw = this.shiftLabel(nrw, p, q, this.label(p, q, depth), depth)
          p = q
          kind = K_BOUNDARY
          break
        }
        case OP.callIndirect: // type table
          p = this.typeIndex(p, end, typeCount)
          p = lebEnd(b, p, end, 5)
          cost += COST.callIndirect - COST.instruction
          flush = cached
          reload = cached
          kind = K_BOUNDARY
          break
        case OP.end:
          if (--depth === 0) {
            // Threaded: the fuel result is appended after this `end` (see below).
            flush = cached && !threaded
            kind = K_FINAL
          } else {
            kind = K_BOUNDARY
            closesWrap = this.wrapped[depth]
          }
          break
        case OP.unreachable:
          flush = cached
          kind = K_TERMINATOR
          break
        case OP.return:
          if (threaded) {
            rwStart[nrw] = opAt
            rwEnd[nrw] = p
            rwKind[nrw] = RW_RETURN
            rwValue[nrw] = 0
            nrw++
          } else {
            flush = cached
          }
          kind = K_TERMINATOR
          break
        case OP.throw: // tagidx
          p = lebEnd(b, p, end, 5)
          flush = cached
          kind = K_TERMINATOR
          break
        case OP.rethrow: {
          // depth (of the try whose catch it is in)
          const q = lebEnd(b, p, end, 5)
          nrw = this.shiftLabel(nrw, p, q, this.label(p, q, depth), depth)
          p = q
          flush = cached
          kind = K_TERMINATOR
          break
        }
        case OP.returnCall: {
          // funcidx
          const q = lebEnd(b, p, end, 5)
          const callee = decodeU32(b, p, q)
          if (callee >= totalFuncs) {
            throw malformed(`function index ${callee} out of range`, p)
          }
          if (threaded) {
            if (callee < importedFuncs) {
              throw new FuelThreadingUnsupported('return_call of an import')
            }
            rwStart[nrw] = opAt
            rwEnd[nrw] = q
            rwKind[nrw] = RW_RETURN_CALL
            rwValue[nrw] = callee + 1 + ctx.funcTypes.length
            nrw++
          } else {
            if (callee >= importedFuncs) {
              nrw = this.recordFunc(nrw, p, q, callee)
            }
            flush = cached
          }
          p = q
          kind = K_TERMINATOR
          break
        }
        case OP.br: {
          const q = lebEnd(b, p, end, 5)
          const label = this.label(p, q, depth)
          nrw = this.shiftLabel(nrw, p, q, label, depth)
          flush = cached && !threaded && label === depth - 1
          p = q
          kind = K_TERMINATOR
          break
        }
        case OP.returnCallIndirect: // type table
          if (threaded) {
            throw new FuelThreadingUnsupported('return_call_indirect')
          }
          p = this.typeIndex(p, end, typeCount)
          p = lebEnd(b, p, end, 5)
          cost += COST.callIndirect - COST.instruction
          flush = cached
          kind = K_TERMINATOR
          break
        case OP.brTable: {
          // vec(label) label
          const q = lebEnd(b, p, end, 5)
          const n = decodeU32(b, p, q)
          p = q
          for (let i = 0; i <= n; i++) {
            const r = lebEnd(b, p, end, 5)
            const label = this.label(p, r, depth)
            nrw = this.shiftLabel(nrw, p, r, label, depth)
            p = r
            if (label === depth - 1) {
              flush = cached && !threaded
            }
          }
          kind = K_TERMINATOR
          break
        }
      }

      // A basic block ends here: emit the segment (charge first, then check, then the code).
      // A wrapped loop's header check branches out of the loop to refill (label 1: $refill).
      const header = check && segStart !== start && this.wrapped[depthAtSegment]
      if (header) {
        this.wrapCost[depthAtSegment] = cost
      }
      if (batch) {
        this.emitBatchedLoop(segStart, opAt, p, nrw, cost, header)
      } else {
        this.emitSegment(
          segStart,
          opAt,
          p,
          nrw,
          live ? cost : -1,
          live && check,
          live && flush,
          header ? 1 : -1,
        )
      }
      if (closesWrap) {
        this.emitRefillTail(this.wrapCost[depth])
      }
      depthAtSegment = depth - 1
      nrw = 0
      segStart = p
      if (kind === K_FINAL) {
        if (threaded) {
          // The `end` just copied closes the body's block; the function returns $f last.
          this.fw.ensure(8)
          this.fw.byte(OP.localGet)
          this.fw.u32(this.fuelLocal)
          this.fw.byte(OP.end)
        }
        break
      }
      live = kind === K_BOUNDARY
      check = op === OP.loop
      loopHeader = check && batchLoops && b[opAt + 1] === TYPE.empty
      cost = 0
      // After a call returns, or an exception was caught, the global is ahead of the local.
      if (reload) {
        this.reload = true
      }
    }
    if (p !== end) {
      throw malformed('code after the end of the function body', p)
    }
    return usesGrow ? BODY_GROW : 0
  }

  /**
   * Records rewrite number `nrw`: the defined function index `idx` at b[p, q) moves up by one,
   * past the `refuel` import. Returns the new count of rewrites.
   */
  private recordFunc(nrw: number, p: number, q: number, idx: number): number {
    this.rwStart[nrw] = p
    this.rwEnd[nrw] = q
    this.rwKind[nrw] = RW_FUNC
    this.rwValue[nrw] = idx + 1
    return nrw + 1
  }

  /**
   * The branch label b[p, q), rejected unless one of the `depth` enclosing blocks (the function's
   * included): the rewriter wraps code in blocks of its own (a threaded body in one with the
   * function's results), where a label past the input's would land and could return a fuel
   * count of the guest's choosing.
   */
  private label(p: number, q: number, depth: number): number {
    const label = decodeU32(this.b, p, q)
    if (label >= depth) {
      throw malformed(`branch label ${label} out of range`, p)
    }
    return label
  }

  /** Skips a type index (of `call_indirect`), rejecting one past the input's types. */
  private typeIndex(p: number, end: number, typeCount: number): number {
    const q = lebEnd(this.b, p, end, 5)
    if (decodeU32(this.b, p, q) >= typeCount) {
      throw malformed('type index out of range', p)
    }
    return q
  }

  /**
   * Writes charge (cost > 0) and check, then b[from, to) with the recorded rewrites applied; `at`
   * is where the block's last instruction starts, and `flush` stores the fuel local to the global
   * right before it.
   */
  private emitSegment(
    from: number,
    at: number,
    to: number,
    nrw: number,
    cost: number,
    check: boolean,
    flush: boolean,
    refill = -1,
  ): void {
    const fw = this.fw
    const fuelGlobal = this.ctx.fuelGlobal
    if (this.cached) {
      const f = this.fuelLocal
      fw.ensure(32)
      if (cost > 0 || this.reload) {
        // (global.get $fuel | local.get $f); i64.const cost; i64.sub; (local.set | local.tee) $f
        if (this.reload) {
          fw.byte(OP.globalGet)
          fw.u32(fuelGlobal)
          this.reload = false
        } else {
          fw.byte(OP.localGet)
          fw.u32(f)
        }
        if (cost > 0) {
          fw.byte(OP.i64Const)
          fw.s64(cost)
          fw.byte(OP.i64Sub)
        }
        fw.byte(check ? OP.localTee : OP.localSet)
        fw.u32(f)
      } else if (check) {
        fw.byte(OP.localGet)
        fw.u32(f)
      }
      if (check) {
        // i64.const 0; i64.lt_s; if … refuel or trap … end
        fw.byte(OP.i64Const)
        fw.byte(0x00)
        fw.byte(OP.i64LtS)
        if (refill >= 0) {
          // A wrapped loop's header: out of the loop to its refill path (`emitRefillTail`).
          fw.byte(OP.brIf)
          fw.u32(refill)
        } else {
          this.refuelSequence(fw, true)
        }
      }
    } else {
      if (cost > 0) {
        // global.get $fuel; i64.const cost; i64.sub; global.set $fuel
        fw.ensure(24)
        fw.byte(OP.globalGet)
        fw.u32(fuelGlobal)
        fw.byte(OP.i64Const)
        fw.s64(cost)
        fw.byte(OP.i64Sub)
        fw.byte(OP.globalSet)
        fw.u32(fuelGlobal)
      }
      if (check) {
        fw.copy(this.checkBytes, 0, this.checkBytes.length)
      }
    }
    if (flush) {
      // The rewrites before the block's last instruction, the flush, then that instruction
      // (a call's or return_call's own index may be rewritten).
      let first = nrw
      while (first > 0 && this.rwStart[first - 1] >= at) {
        first--
      }
      fw.copy(this.b, this.copyRewritten(from, 0, first), at)
      this.emitFlush()
      fw.copy(this.b, this.copyRewritten(at, first, nrw), to)
    } else {
      fw.copy(this.b, this.copyRewritten(from, 0, nrw), to)
    }
  }

  /**
   * Copies b from `from` to the end of the last of the recorded rewrites [first, last), applying
   * them; returns where the copy stopped (the caller copies the rest).
   */
  private copyRewritten(from: number, first: number, last: number): number {
    const fw = this.fw
    const b = this.b
    let cur = from
    for (let k = first; k < last; k++) {
      fw.copy(b, cur, this.rwStart[k])
      const value = this.rwValue[k]
      switch (this.rwKind[k]) {
        case RW_GLOBAL:
        case RW_LOCAL:
        case RW_FUNC:
        case RW_LABEL:
          fw.u32(value)
          break
        case RW_WRAP: {
          // block bt; loop; block — `$done` (with the loop's results), `$retry`, `$refill`
          let bt = value
          while (b[bt] & 0x80) {
            bt++
          }
          fw.ensure(16)
          fw.byte(OP.block)
          fw.copy(b, value, bt + 1)
          fw.byte(OP.loop)
          fw.byte(TYPE.empty)
          fw.byte(OP.block)
          fw.byte(TYPE.empty)
          break
        }
        case RW_GROW:
          this.emitGrow(value)
          break
        case RW_BULK:
          this.emitBulkCharge(value)
          break
        case RW_CALL:
          fw.ensure(20)
          fw.byte(OP.localGet)
          fw.u32(this.fuelLocal)
          fw.byte(OP.call)
          fw.u32(value)
          fw.byte(OP.localSet)
          fw.u32(this.fuelLocal)
          break
        case RW_RETURN_CALL:
          fw.ensure(12)
          fw.byte(OP.localGet)
          fw.u32(this.fuelLocal)
          fw.byte(OP.returnCall)
          fw.u32(value)
          break
        default: // RW_RETURN
          fw.ensure(8)
          fw.byte(OP.localGet)
          fw.u32(this.fuelLocal)
          fw.byte(OP.return)
          break
      }
      cur = this.rwEnd[k]
    }
    return cur
  }

  /**
   * After the `end` of a wrapped loop (`loop` became `block bt; loop; block; loop`, its header
   * check `br_if $refill`): leave with the loop's results, else refill and re-enter it.
   *
   *       br $done  end                    ;; the loop ended: leave; $refill:
   *       local.get $f; call $refuel; local.tee $f; i64.const 0; i64.lt_s
   *       if  local.get $f; global.set $fuel; unreachable  end
   *       $f += cost; br $retry            ;; the header charges `cost` again
   *     end  unreachable
   *   end
   *
   * A refill path that merged back into the loop made V8 keep the loop's values in memory on
   * its hot path (a tight loop ran ×1.2–2.1 slower); out of the loop, it does not.
   */
  private emitRefillTail(cost: number): void {
    const fw = this.fw
    fw.ensure(4)
    fw.byte(OP.br)
    fw.byte(2) // $done
    fw.byte(OP.end) // $refill
    this.refuelOrTrap(fw, true)
    fw.ensure(32)
    if (cost > 0) {
      this.emitAddFuel(cost, false)
    }
    fw.byte(OP.br)
    fw.byte(0) // $retry
    fw.byte(OP.end) // $retry
    fw.byte(OP.unreachable)
    fw.byte(OP.end) // $done
  }

  /**
   * Records a branch label at b[p, q) that crosses wrapped loops (`label` of a branch at
   * `depth`): each adds {@link WRAP_BLOCKS} blocks between the branch and its target. Returns
   * the new count of rewrites.
   */
  private shiftLabel(nrw: number, p: number, q: number, label: number, depth: number): number {
    const crossed = this.wrapBelow[depth] - this.wrapBelow[depth - label]
    if (crossed === 0) {
      return nrw
    }
    this.rwStart[nrw] = p
    this.rwEnd[nrw] = q
    this.rwKind[nrw] = RW_LABEL
    this.rwValue[nrw] = label + WRAP_BLOCKS * crossed
    return nrw + 1
  }

  /** Whether the block type at b[p] (already validated) takes no parameters. */
  private noParams(p: number): boolean {
    const t = this.b[p]
    if (t >= 0x40 && t < 0x80) {
      return true // [] or a single result type; else a type index (s33, not negative)
    }
    let end = p
    while (this.b[end] & 0x80) {
      end++
    }
    return this.ctx.paramCounts[decodeU32(this.b, p, end + 1)] === 0
  }

  /** Whether the first `nrw` recorded rewrites only renumber locals and globals. */
  private onlyRenumbered(nrw: number): boolean {
    for (let k = 0; k < nrw; k++) {
      const kind = this.rwKind[k]
      if (kind !== RW_LOCAL && kind !== RW_GLOBAL && kind !== RW_FUNC) {
        return false
      }
    }
    return true
  }

  /**
   * A loop `loop; S; br_if 0; end` whose header segment is b[from, to) (S is b[from, at), the
   * `br_if 0` b[at, to)), where S has no call, branch or other control instruction, no
   * `memory.grow` and no bulk op, so nothing in S reads or writes the fuel global. Cost model 4
   * charges `cost` and checks at each iteration; this pays for {@link LOOP_BATCH} = U iterations
   * at once and copies S U times, the U - 1 early exits giving back what they did not run:
   *
   *     block                            ;; $exit
   *       loop                           ;; $fast
   *         $f -= U·cost
   *         if ($f < 0)                  ;; cannot pay for U: one iteration's code, exactly
   *           $f += U·cost
   *           $f -= cost; check; S; br_if $fast
   *           br $exit
   *         end
   *         S; i32.eqz; if  $f += (U-1)·cost; br $exit  end
   *         …                            ;; U - 1 copies, giving back (U-j)·cost after copy j
   *         S; br_if $fast
   *       end
   *     end
   *
   * (then the stream goes on with the `end` of the original loop, which no longer loops).
   * Exact: the fast path runs only when `$f` ≥ U·cost, where cost model 4 cannot trap in the
   * next U iterations either (each leaves `$f` ≥ 0), and leaves `$f` at what model 4 leaves after
   * the same iterations; otherwise one iteration runs with model 4's charge and check (whose
   * refuel may add the next slice of the budget) and the next tries the batch again: at most
   * U - 1 such iterations before the loop ends, fuel runs out or a refuel succeeds. Within S nothing flushes `$f`, and a trap the engine raises
   * in S is reported as the whole budget (the worker), so the host sees the same fuel at every
   * point it can look: flushes, the fuel trap, the export's return.
   */
  private emitBatchedLoop(
    from: number,
    at: number,
    to: number,
    nrw: number,
    cost: number,
    wrapped: boolean,
  ): void {
    const fw = this.fw
    const start = fw.pos
    const batch = LOOP_BATCH * cost
    fw.byte(OP.block)
    fw.byte(TYPE.empty)
    fw.byte(OP.loop)
    fw.byte(TYPE.empty)
    this.emitAddFuel(-batch, true)
    fw.byte(OP.i64Const)
    fw.byte(0x00)
    fw.byte(OP.i64LtS)
    fw.byte(OP.if)
    fw.byte(TYPE.empty)
    this.emitAddFuel(batch, false)
    // One iteration with its own charge and check (S without the br_if), then back to $fast.
    // A refill leaves through the wrapped loop's `$refill` (if, $fast, $exit, the loop, $refill).
    this.emitSegment(from, at, at, nrw, cost, true, false, wrapped ? 4 : -1)
    fw.ensure(8)
    fw.byte(OP.brIf)
    fw.byte(1) // $fast: if, $fast
    fw.byte(OP.br)
    fw.byte(2) // $exit: if, $fast, $exit
    fw.byte(OP.end)
    for (let j = 1; j < LOOP_BATCH; j++) {
      fw.copy(this.b, this.copyRewritten(from, 0, nrw), at)
      fw.byte(OP.i32Eqz)
      fw.byte(OP.if)
      fw.byte(TYPE.empty)
      this.emitAddFuel((LOOP_BATCH - j) * cost, false)
      fw.byte(OP.br)
      fw.byte(2)
      fw.byte(OP.end)
    }
    fw.copy(this.b, this.copyRewritten(from, 0, nrw), at)
    fw.byte(OP.brIf)
    fw.byte(0) // $fast
    fw.byte(OP.end)
    fw.byte(OP.end)
    // What the loop added beside its per-iteration code (one copy of S and the br_if).
    this.batchBytesLeft -= fw.pos - start - (to - from)
  }

  /** `local.get $f; i64.const |n|; i64.add|i64.sub; local.set|local.tee $f`. */
  private emitAddFuel(n: number, tee: boolean): void {
    const fw = this.fw
    fw.byte(OP.localGet)
    fw.u32(this.fuelLocal)
    fw.byte(OP.i64Const)
    fw.s64(Math.abs(n))
    fw.byte(n < 0 ? OP.i64Sub : OP.i64Add)
    fw.byte(tee ? OP.localTee : OP.localSet)
    fw.u32(this.fuelLocal)
  }

  /** `local.get $f; global.set $fuel`: the global catches up with the fuel local. */
  private emitFlush(): void {
    const fw = this.fw
    fw.ensure(12)
    fw.byte(OP.localGet)
    fw.u32(this.fuelLocal)
    fw.byte(OP.globalSet)
    fw.u32(this.ctx.fuelGlobal)
  }

  /**
   * The charge of a bulk memory or table op, inserted right before it: its length (an i32, the
   * top of the stack) costs `ceil(length / 2^shift)` fuel, charged and checked (`fuel < 0` → trap
   * reason 1) before the op runs, and the stack is left as it was. The added i64 local is the
   * scratch, as in `emitGrow`; in a cached function it is flushed first and reloaded after.
   */
  private emitBulkCharge(shift: number): void {
    const fw = this.fw
    const d = this.fuelLocal
    const fuelGlobal = this.ctx.fuelGlobal
    const cached = this.cached
    if (cached) {
      this.emitFlush()
    }
    fw.ensure(48)
    // i64.extend_i32_u; local.set $d
    fw.byte(OP.i64ExtendI32U)
    fw.byte(OP.localSet)
    fw.u32(d)
    // global.get $fuel; local.get $d; i64.const 2^shift - 1; i64.add; i64.const shift; i64.shr_u;
    // i64.sub; global.set $fuel (no overflow: $d < 2^32)
    fw.byte(OP.globalGet)
    fw.u32(fuelGlobal)
    fw.byte(OP.localGet)
    fw.u32(d)
    fw.byte(OP.i64Const)
    fw.s64((1 << shift) - 1)
    fw.byte(OP.i64Add)
    fw.byte(OP.i64Const)
    fw.s64(shift)
    fw.byte(OP.i64ShrU)
    fw.byte(OP.i64Sub)
    fw.byte(OP.globalSet)
    fw.u32(fuelGlobal)
    // global.get $fuel; i64.const 0; i64.lt_s; if … trap 1 … end (the global is exact)
    fw.copy(this.checkBytes, 0, this.checkBytes.length)
    fw.ensure(16)
    fw.byte(OP.localGet) // $d
    fw.u32(d)
    fw.byte(OP.i32WrapI64)
    if (cached) {
      fw.byte(OP.globalGet) // $fuel
      fw.u32(fuelGlobal)
      fw.byte(OP.localSet) // $f
      fw.u32(d)
    }
  }

  /**
   * `memory.grow M` with the cap check: stack effect [i32] -> [i32], as the original. The added
   * i64 local is the scratch; in a cached function it is flushed first and reloaded after.
   */
  private emitGrow(mem: number): void {
    const fw = this.fw
    const d = this.fuelLocal
    const cached = this.cached
    if (cached) {
      this.emitFlush()
    }
    fw.ensure(64)
    fw.byte(OP.i64ExtendI32U)
    fw.byte(OP.localTee) // $d
    fw.u32(d)
    fw.byte(OP.memorySize)
    fw.u32(mem)
    fw.byte(OP.i64ExtendI32U)
    fw.byte(OP.i64Add)
    fw.byte(OP.globalGet) // $memory_cap
    fw.u32(this.ctx.capGlobal)
    fw.byte(OP.i64ExtendI32U)
    fw.byte(OP.i64GtU)
    this.trapSequence(fw, TRAP_MEMORY)
    fw.byte(OP.localGet) // $d
    fw.u32(d)
    fw.byte(OP.i32WrapI64)
    fw.byte(OP.memoryGrow)
    fw.u32(mem)
    fw.byte(OP.i64ExtendI32S)
    fw.byte(OP.localTee) // $d
    fw.u32(d)
    fw.byte(OP.i64Const) // -1
    fw.byte(0x7f)
    fw.byte(OP.i64Eq)
    this.trapSequence(fw, TRAP_MEMORY)
    fw.byte(OP.localGet) // $d
    fw.u32(d)
    fw.byte(OP.i32WrapI64)
    if (cached) {
      fw.byte(OP.globalGet) // $fuel
      fw.u32(this.ctx.fuelGlobal)
      fw.byte(OP.localSet) // $f
      fw.u32(d)
    }
  }
}

/**
 * For a 0xFC op at b[p] (just past the prefix): log2 of the bytes or elements one fuel pays for
 * if it is a bulk op charged by its length (see `COST`), else -1.
 */
function bulkShift(b: Uint8Array, p: number, end: number): number {
  const q = lebEnd(b, p, end, 5)
  switch (decodeU32(b, p, q)) {
    case FC.memoryInit:
    case FC.memoryCopy:
    case FC.memoryFill:
      return COST.bulkBytesLog2
    case FC.tableInit:
    case FC.tableCopy:
    case FC.tableGrow:
    case FC.tableFill:
      return COST.bulkElementsLog2
    default:
      return -1
  }
}
