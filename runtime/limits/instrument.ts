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
 * Cost model, version {@link COST_MODEL_VERSION} (static: the same input always costs the same):
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
 */

/** Import module name of the metering globals. A guest may not import from it itself. */
export const METER_MODULE = 'warden:meter'
/** Value written to the `trap` global when fuel ran out (the guest then hits `unreachable`). */
export const TRAP_FUEL = 1
/** Value written to the `trap` global when `memory.grow` went past the cap or failed. */
export const TRAP_MEMORY = 2
/**
 * Version of the static fuel cost model and of the code that meters it; part of the
 * instrumentation cache key. 2: same amounts as 1, fuel cached in a local per function.
 */
export const COST_MODEL_VERSION = 2
/**
 * Most locals (parameters included) a function may have, as in V8. The rewriter adds one (the
 * fuel cache, also the `memory.grow` scratch); a function already at the limit is metered on the
 * global instead, and then rejected only if it uses `memory.grow`.
 */
export const MAX_FUNCTION_LOCALS = 50_000
/** Prefix of the names under which every defined memory is exported: `warden:memory:0`, … */
export const MEMORY_EXPORT_PREFIX = 'warden:memory:'

/**
 * Proposals a module may not use, as named in the error. Shared memories would let a guest
 * block in `memory.atomic.wait` where no fuel is charged and share state past one run; a second
 * memory would double the memory cap, which is checked per memory; the others V8 in Node 20
 * only runs behind a flag.
 */
export const REFUSED_FEATURES = Object.freeze({
  shared: 'shared memories (threads)',
  multiMemory: 'multiple memories (multi-memory)',
  memory64: 'memory64',
  relaxedSimd: 'relaxed SIMD',
  extendedConst: 'extended constant expressions',
  exnref: 'exception references (exnref)',
} as const)

/** Host ceilings applied while instrumenting. */
export interface InstrumentOptions {
  /**
   * Host-wide ceiling for every linear memory, in 64 KiB pages. Declared maxima above it (or
   * absent) are lowered to it. At most 65536.
   */
  maxMemoryPages: number
  /** Host-wide ceiling for every table, in elements. */
  maxTableElements: number
}

/** A rewritten module and what the loader needs to know about it. */
export interface InstrumentedModule {
  /** The instrumented core module; it imports `fuel`, `trap`, `memory_cap` from `warden:meter`. */
  bytes: Uint8Array
  /**
   * One entry per defined (not imported) memory, in index order: its exported name and min pages
   * after rewrite.
   */
  memories: { exportName: string; minPages: number; maxPages: number }[]
  /**
   * {@link COST_MODEL_VERSION}: bumped when the cost model or the metering code changes (used as a
   * cache key).
   */
  costModelVersion: number
}

/**
 * The module is malformed, or uses something the rewriter does not support (it fails closed).
 *
 * @example
 * try {
 *   instrumentModule(bytes, opts)
 * } catch (err) {
 *   if (err instanceof InstrumentError) reject(err.message)
 * }
 */
export class InstrumentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'InstrumentError'
  }
}

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

// ---------------------------------------------------------------------------------------------
// Byte helpers

/** Growable byte buffer; no per-byte allocation. */
class ByteWriter {
  buf: Uint8Array
  pos = 0

  constructor(capacity: number) {
    this.buf = new Uint8Array(Math.max(64, capacity))
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) {
      this.grow(n)
    }
  }

  private grow(n: number): void {
    let cap = this.buf.length * 2
    while (cap < this.pos + n) {
      cap *= 2
    }
    const next = new Uint8Array(cap)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }

  byte(v: number): void {
    if (this.pos >= this.buf.length) {
      this.grow(1)
    }
    this.buf[this.pos++] = v
  }

  u32(v: number): void {
    this.ensure(5)
    const buf = this.buf
    let x = v >>> 0
    for (;;) {
      const low = x & 0x7f
      x >>>= 7
      if (x === 0) {
        buf[this.pos++] = low
        return
      }
      buf[this.pos++] = low | 0x80
    }
  }

  /** Signed LEB128 of a non-negative safe integer (an i64.const immediate). */
  s64(v: number): void {
    this.ensure(10)
    const buf = this.buf
    let x = v
    for (;;) {
      const low = x % 128
      x = Math.floor(x / 128)
      if (x === 0 && (low & 0x40) === 0) {
        buf[this.pos++] = low
        return
      }
      buf[this.pos++] = low | 0x80
    }
  }

  copy(src: Uint8Array, from: number, to: number): void {
    const n = to - from
    if (n <= 0) {
      return
    }
    this.ensure(n)
    if (n < 48) {
      const buf = this.buf
      let pos = this.pos
      for (let i = from; i < to; i++) {
        buf[pos++] = src[i]
      }
      this.pos = pos
    } else {
      this.buf.set(src.subarray(from, to), this.pos)
      this.pos += n
    }
  }

  /** A WebAssembly name: LEB128 length, then UTF-8 bytes. */
  name(s: string): void {
    const enc = utf8.encode(s)
    this.u32(enc.length)
    this.copy(enc, 0, enc.length)
  }
}

const utf8 = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

function malformed(what: string, at: number): InstrumentError {
  return new InstrumentError(`malformed module: ${what} (at byte offset ${at})`)
}

function unsupported(what: string, at: number): InstrumentError {
  return new InstrumentError(`unsupported module: ${what} (at byte offset ${at})`)
}

function refused(feature: string, at: number): InstrumentError {
  return new InstrumentError(
    `unsupported module: it uses ${feature}, which Warden does not run (at byte offset ${at})`,
  )
}

/** End of the LEB128 starting at p: at most `max` bytes, all before `end`. */
function lebEnd(b: Uint8Array, p: number, end: number, max: number): number {
  const limit = p + max
  while (p < end) {
    if ((b[p++] & 0x80) === 0) {
      return p
    }
    if (p >= limit) {
      throw malformed('integer representation too long', p)
    }
  }
  throw malformed('unexpected end', p)
}

/** Value of the unsigned LEB128 in b[p, q) (as found by lebEnd with max 5); rejects > u32. */
function decodeU32(b: Uint8Array, p: number, q: number): number {
  let v = 0
  let scale = 1
  for (let i = p; i < q; i++) {
    v += (b[i] & 0x7f) * scale
    scale *= 128
  }
  if (v > 0xffff_ffff) {
    throw malformed('integer too large', p)
  }
  return v
}

/** Single-byte value types: i32 i64 f32 f64 v128 funcref externref. */
function isSimpleValType(t: number): boolean {
  return (t >= 0x7b && t <= 0x7f) || t === 0x70 || t === 0x6f
}

function isRefType(t: number): boolean {
  return t === 0x70 || t === 0x6f
}

/** `exnref`, a value type of the exnref proposal. */
const EXNREF = 0x69

function skipBlockType(b: Uint8Array, p: number, end: number): number {
  if (p >= end) {
    throw malformed('unexpected end', p)
  }
  const t = b[p]
  if (t === 0x40 || isSimpleValType(t)) {
    return p + 1
  }
  // Anything else must be a non-negative s33 type index; negative codes (typed refs) fail closed.
  if ((t & 0xc0) === 0x40) {
    throw unsupported(`block type 0x${t.toString(16)}`, p)
  }
  return lebEnd(b, p, end, 5)
}

function skipMemarg(b: Uint8Array, p: number, end: number): number {
  let align: number
  if (p < end && b[p] < 0x80) {
    align = b[p++]
  } else {
    const q = lebEnd(b, p, end, 5)
    align = decodeU32(b, p, q)
    p = q
  }
  if (align & 0x40) {
    throw refused(REFUSED_FEATURES.multiMemory, p) // an explicit memory index
  }
  if (p < end && b[p] < 0x80) {
    return p + 1
  }
  return lebEnd(b, p, end, 5)
}

// SIMD (0xFD) immediate layouts, by sub-opcode.
const SIMD_NONE = 1
const SIMD_MEMARG = 2
const SIMD_BYTES16 = 3
const SIMD_LANE = 4
const SIMD_MEMARG_LANE = 5

const SIMD_IMMEDIATES: Uint8Array = (() => {
  const t = new Uint8Array(0x114)
  t.fill(SIMD_NONE, 0, 0x100)
  t.fill(SIMD_MEMARG, 0x00, 0x0c) // v128.load … v128.store
  t[0x0c] = SIMD_BYTES16 // v128.const
  t[0x0d] = SIMD_BYTES16 // i8x16.shuffle
  t.fill(SIMD_LANE, 0x15, 0x23) // extract_lane / replace_lane
  t.fill(SIMD_MEMARG_LANE, 0x54, 0x5c) // v128.load*_lane / v128.store*_lane
  t[0x5c] = SIMD_MEMARG // v128.load32_zero
  t[0x5d] = SIMD_MEMARG // v128.load64_zero
  // Holes in the final SIMD opcode space.
  for (const op of [
    0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2,
    0xd3, 0xd4, 0xe2, 0xee,
  ]) {
    t[op] = 0
  }
  t.fill(SIMD_NONE, 0x100, 0x114) // relaxed SIMD: known, to be named when refused
  return t
})()
const RELAXED_SIMD_FIRST = 0x100

// Section ids → required order (custom sections excepted).
const SECTION_RANK: Record<number, number> = {
  1: 1, // type
  2: 2, // import
  3: 3, // function
  4: 4, // table
  5: 5, // memory
  13: 6, // tag
  6: 7, // global
  7: 8, // export
  8: 9, // start
  9: 10, // element
  12: 11, // data count
  10: 12, // code
  11: 13, // data
}
const RANK_IMPORT = 2
const RANK_EXPORT = 8

const METER_MODULE_BYTES = utf8.encode(METER_MODULE)
const NAME_BYTES = utf8.encode('name')

function bytesEqual(b: Uint8Array, p: number, len: number, want: Uint8Array): boolean {
  if (len !== want.length) {
    return false
  }
  for (let i = 0; i < len; i++) {
    if (b[p + i] !== want[i]) {
      return false
    }
  }
  return true
}

function lebLength(v: number): number {
  let n = 1
  while (v >= 0x80) {
    v = Math.floor(v / 128)
    n++
  }
  return n
}

// Kinds of in-place rewrites recorded while scanning a straight-line segment.
const RW_GLOBAL = 0
const RW_GROW = 1

// What functionBody found in a body.
const BODY_GROW = 1 // it uses memory.grow (the rewrite needs the scratch local)

// What an instruction does to the basic-block structure.
const K_BOUNDARY = 1 // a new basic block starts right after it
const K_TERMINATOR = 2 // what follows (up to the next boundary) is dead
const K_FINAL = 3 // the `end` of the function body

// ---------------------------------------------------------------------------------------------

class ModuleRewriter {
  private readonly b: Uint8Array
  private readonly maxMemoryPages: number
  private readonly maxTableElements: number
  private readonly out: ByteWriter
  private readonly sec = new ByteWriter(1 << 16)
  private readonly fw = new ByteWriter(1 << 16)
  /** Start of the not yet copied input in the current section (see copyTo). */
  private from = 0

  private readonly paramCounts: number[] = []
  private readonly funcTypes: number[] = []
  private importedGlobals = 0
  private importedMemories = 0
  private readonly definedMemories: { min: number; max: number }[] = []
  private importsDone = false
  private exportsDone = false
  private sawCode = false

  // Indices of the injected globals; set once imports are known.
  private fuelGlobal = 0
  private trapGlobal = 0
  private capGlobal = 0
  /** The global-only fuel check (uncached functions): `global.get $fuel; …; end`. */
  private checkBytes = new Uint8Array(0)

  // Per function.
  /** Index of the added i64 local: the fuel cache, and the `memory.grow` scratch. */
  private fuelLocal = 0
  /** Whether the current function meters on `fuelLocal` (else on the global, as in v1). */
  private cached = false
  /** `fuelLocal` is stale: the next charge starts from the global (after entry, call, catch). */
  private reload = false
  /** Limits of the memory last passed to `limits`, after the rewrite. */
  private lastLimits = { min: 0, max: 0 }

  private readonly rwStart: number[] = []
  private readonly rwEnd: number[] = []
  private readonly rwKind: number[] = []
  private readonly rwValue: number[] = []

  constructor(bytes: Uint8Array, maxMemoryPages: number, maxTableElements: number) {
    this.b = bytes
    this.maxMemoryPages = maxMemoryPages
    this.maxTableElements = maxTableElements
    this.out = new ByteWriter(Math.ceil(bytes.length * 1.3) + 1024)
  }

  run(): InstrumentedModule {
    const b = this.b
    if (b.length < 8) {
      throw malformed('shorter than the module header', 0)
    }
    if (b[0] !== 0x00 || b[1] !== 0x61 || b[2] !== 0x73 || b[3] !== 0x6d) {
      throw malformed('bad magic number (not WebAssembly)', 0)
    }
    if (b[4] === 0x0d && b[6] === 0x01 && b[7] === 0x00) {
      throw unsupported('this is a component; instrument its core modules instead', 4)
    }
    if (b[4] !== 0x01 || b[5] !== 0x00 || b[6] !== 0x00 || b[7] !== 0x00) {
      throw unsupported('binary format version is not 1', 4)
    }
    this.out.copy(b, 0, 8)

    let p = 8
    let lastRank = 0
    while (p < b.length) {
      const id = b[p]
      const sizeAt = p + 1
      const sizeEnd = lebEnd(b, sizeAt, b.length, 5)
      const start = sizeEnd
      const end = start + decodeU32(b, sizeAt, sizeEnd)
      if (end > b.length) {
        throw malformed(`section ${id} runs past the end of the module`, p)
      }
      if (id === 0) {
        this.customSection(p, start, end)
        p = end
        continue
      }
      const rank = SECTION_RANK[id]
      if (rank === undefined) {
        throw malformed(`unknown section id ${id}`, p)
      }
      if (rank <= lastRank) {
        throw malformed(`section ${id} is out of order or repeated`, p)
      }
      lastRank = rank
      if (rank > RANK_IMPORT && !this.importsDone) {
        this.importSection(-1, -1)
      }
      if (rank > RANK_EXPORT && !this.exportsDone) {
        this.exportSection(-1, -1)
      }
      this.section(id, p, start, end)
      p = end
    }
    if (!this.importsDone) {
      this.importSection(-1, -1)
    }
    if (!this.exportsDone) {
      this.exportSection(-1, -1)
    }
    if (!this.sawCode && this.funcTypes.length > 0) {
      throw malformed('function section without a code section', b.length)
    }

    const memories = this.definedMemories.map((m, i) => ({
      exportName: MEMORY_EXPORT_PREFIX + String(this.importedMemories + i),
      minPages: m.min,
      maxPages: m.max,
    }))
    return {
      bytes: this.out.buf.slice(0, this.out.pos),
      memories,
      costModelVersion: COST_MODEL_VERSION,
    }
  }

  private customSection(at: number, start: number, end: number): void {
    const b = this.b
    const nameEnd = lebEnd(b, start, end, 5)
    const len = decodeU32(b, start, nameEnd)
    if (nameEnd + len > end) {
      throw malformed('custom section name runs past the section', at)
    }
    // The name section maps indices that the rewrite changes; drop it rather than mislead.
    if (bytesEqual(b, nameEnd, len, NAME_BYTES)) {
      return
    }
    this.out.copy(b, at, end)
  }

  private section(id: number, at: number, start: number, end: number): void {
    const sec = this.sec
    sec.pos = 0
    this.from = start
    let p: number
    switch (id) {
      case 1:
        p = this.typeSection(start, end)
        break
      case 2:
        this.importSection(start, end)
        return
      case 3:
        p = this.functionSection(start, end)
        break
      case 4:
        p = this.tableSection(start, end)
        break
      case 5:
        p = this.memorySection(start, end)
        break
      case 6:
        p = this.globalSection(start, end)
        break
      case 7:
        this.exportSection(start, end)
        return
      case 9:
        p = this.elementSection(start, end)
        break
      case 10:
        this.codeSection(start, end)
        return
      case 11:
        p = this.dataSection(start, end)
        break
      case 8: // start: a function index, unchanged
      case 12: // data count
        p = lebEnd(this.b, start, end, 5)
        decodeU32(this.b, start, p)
        break
      default: // 13, tag: (attribute, type index) pairs, unchanged
        p = end
        break
    }
    if (p !== end) {
      throw malformed(`section ${id} size does not match its contents`, at)
    }
    this.copyTo(end)
    this.emitSection(id)
  }

  private emitSection(id: number): void {
    const out = this.out
    out.byte(id)
    out.u32(this.sec.pos)
    out.copy(this.sec.buf, 0, this.sec.pos)
  }

  /** Copies the input from `this.from` up to `to` into the section buffer. */
  private copyTo(to: number): void {
    this.sec.copy(this.b, this.from, to)
    this.from = to
  }

  private u32(p: number, end: number): [number, number] {
    const q = lebEnd(this.b, p, end, 5)
    return [decodeU32(this.b, p, q), q]
  }

  private skipValType(p: number, end: number): number {
    if (p >= end) {
      throw malformed('unexpected end', p)
    }
    if (!isSimpleValType(this.b[p])) {
      throw this.b[p] === EXNREF
        ? refused(REFUSED_FEATURES.exnref, p)
        : unsupported(`value type 0x${this.b[p].toString(16)}`, p)
    }
    return p + 1
  }

  private typeSection(start: number, end: number): number {
    const b = this.b
    let [count, p] = this.u32(start, end)
    for (let i = 0; i < count; i++) {
      if (p >= end) {
        throw malformed('unexpected end of type section', p)
      }
      if (b[p] !== 0x60) {
        throw unsupported(`type form 0x${b[p].toString(16)} (only func types)`, p)
      }
      let n: number
      ;[n, p] = this.u32(p + 1, end)
      this.paramCounts.push(n)
      for (let j = 0; j < n; j++) {
        p = this.skipValType(p, end)
      }
      ;[n, p] = this.u32(p, end)
      for (let j = 0; j < n; j++) {
        p = this.skipValType(p, end)
      }
    }
    return p
  }

  /** Import section (start < 0: there was none; emit one with only the meter imports). */
  private importSection(start: number, end: number): void {
    const b = this.b
    const sec = this.sec
    sec.pos = 0
    let count = 0
    let p = start
    if (start >= 0) {
      ;[count, p] = this.u32(start, end)
      sec.u32(count + 3)
      this.from = p
      for (let i = 0; i < count; i++) {
        let len: number
        ;[len, p] = this.u32(p, end)
        if (p + len > end) {
          throw malformed('import module name runs past the section', p)
        }
        if (bytesEqual(b, p, len, METER_MODULE_BYTES)) {
          throw new InstrumentError(`the module already imports from "${METER_MODULE}"`)
        }
        ;[len, p] = this.u32(p + len, end)
        if (p + len > end) {
          throw malformed('import name runs past the section', p)
        }
        p += len
        if (p >= end) {
          throw malformed('unexpected end of import section', p)
        }
        const kind = b[p++]
        switch (kind) {
          case 0x00: // func
            p = this.u32(p, end)[1]
            break
          case 0x01: // table
            p = this.refType(p, end)
            p = this.limits(p, end, 'table')
            break
          case 0x02: // memory
            this.oneMemory(p)
            p = this.limits(p, end, 'memory')
            this.importedMemories++
            break
          case 0x03: // global
            p = this.skipValType(p, end)
            if (p >= end || b[p] > 1) {
              throw malformed('bad global mutability', p)
            }
            p++
            this.importedGlobals++
            break
          case 0x04: // tag
            if (p >= end || b[p] !== 0) {
              throw malformed('bad tag attribute', p)
            }
            p = this.u32(p + 1, end)[1]
            break
          default:
            throw malformed(`unknown import kind ${kind}`, p - 1)
        }
      }
      if (p !== end) {
        throw malformed('import section size does not match its contents', p)
      }
      this.copyTo(end)
    } else {
      sec.u32(3)
    }
    for (const [field, type, mut] of [
      ['fuel', 0x7e, 1],
      ['trap', 0x7f, 1],
      ['memory_cap', 0x7f, 0],
    ] as const) {
      sec.name(METER_MODULE)
      sec.name(field)
      sec.byte(0x03)
      sec.byte(type)
      sec.byte(mut)
    }
    this.emitSection(2)
    this.importsDone = true

    this.fuelGlobal = this.importedGlobals
    this.trapGlobal = this.importedGlobals + 1
    this.capGlobal = this.importedGlobals + 2
    const w = new ByteWriter(32)
    // global.get $fuel; i64.const 0; i64.lt_s; if; i32.const 1; global.set $trap; unreachable; end
    w.byte(0x23)
    w.u32(this.fuelGlobal)
    w.byte(0x42)
    w.byte(0x00)
    w.byte(0x53)
    this.trapSequence(w, TRAP_FUEL, false)
    this.checkBytes = w.buf.slice(0, w.pos)
  }

  /**
   * `if; [local.get $f; global.set $fuel;] i32.const reason; global.set $trap; unreachable; end`:
   * the flush (by default, in a cached function) leaves the exact fuel for the host to read.
   */
  private trapSequence(w: ByteWriter, reason: number, flush = this.cached): void {
    w.ensure(28)
    w.byte(0x04)
    w.byte(0x40)
    if (flush) {
      w.byte(0x20)
      w.u32(this.fuelLocal)
      w.byte(0x24)
      w.u32(this.fuelGlobal)
    }
    w.byte(0x41)
    w.byte(reason)
    w.byte(0x24)
    w.u32(this.trapGlobal)
    w.byte(0x00)
    w.byte(0x0b)
  }

  private refType(p: number, end: number): number {
    if (p >= end) {
      throw malformed('unexpected end', p)
    }
    if (!isRefType(this.b[p])) {
      throw this.b[p] === EXNREF
        ? refused(REFUSED_FEATURES.exnref, p)
        : unsupported(`reference type 0x${this.b[p].toString(16)}`, p)
    }
    return p + 1
  }

  /** Rewrites the limits at p to the host ceiling; returns the end of the original limits. */
  private limits(p: number, end: number, kind: 'memory' | 'table'): number {
    const b = this.b
    if (p >= end) {
      throw malformed('unexpected end of limits', p)
    }
    const at = p
    const flags = b[p++]
    if (kind === 'memory') {
      if (flags & 0x04) {
        throw refused(REFUSED_FEATURES.memory64, at)
      }
      if (flags & 0x02) {
        throw refused(REFUSED_FEATURES.shared, at)
      }
      if (flags > 0x03) {
        throw unsupported(`memory limits flags 0x${flags.toString(16)}`, at)
      }
    } else if (flags > 0x01) {
      throw unsupported(`table limits flags 0x${flags.toString(16)}`, at)
    }
    let min: number
    ;[min, p] = this.u32(p, end)
    let max = Infinity
    if (flags & 0x01) {
      ;[max, p] = this.u32(p, end)
    }
    const ceiling = kind === 'memory' ? this.maxMemoryPages : this.maxTableElements
    if (min > ceiling) {
      throw new InstrumentError(`${kind} minimum above the host ceiling`)
    }
    const newMax = Math.min(max, ceiling)
    this.copyTo(at)
    this.sec.byte((flags & 0x02) | 0x01)
    this.sec.u32(min)
    this.sec.u32(newMax)
    this.from = p
    if (kind === 'memory') {
      this.lastLimits = { min, max: newMax }
    }
    return p
  }

  private functionSection(start: number, end: number): number {
    let [count, p] = this.u32(start, end)
    for (let i = 0; i < count; i++) {
      let t: number
      ;[t, p] = this.u32(p, end)
      if (t >= this.paramCounts.length) {
        throw malformed(`function type index ${t} out of range`, p)
      }
      this.funcTypes.push(t)
    }
    return p
  }

  private tableSection(start: number, end: number): number {
    const b = this.b
    let [count, p] = this.u32(start, end)
    for (let i = 0; i < count; i++) {
      if (p < end && b[p] === 0x40) {
        if (p + 1 >= end || b[p + 1] !== 0x00) {
          throw malformed('bad table entry prefix', p)
        }
        p = this.refType(p + 2, end)
        p = this.limits(p, end, 'table')
        p = this.constExpr(p, end)
      } else {
        p = this.refType(p, end)
        p = this.limits(p, end, 'table')
      }
    }
    return p
  }

  /** Refuses a second memory, imported or defined; call before counting the one at `at`. */
  private oneMemory(at: number): void {
    if (this.importedMemories + this.definedMemories.length > 0) {
      throw refused(REFUSED_FEATURES.multiMemory, at)
    }
  }

  private memorySection(start: number, end: number): number {
    let [count, p] = this.u32(start, end)
    for (let i = 0; i < count; i++) {
      this.oneMemory(p)
      p = this.limits(p, end, 'memory')
      this.definedMemories.push(this.lastLimits)
    }
    return p
  }

  private globalSection(start: number, end: number): number {
    const b = this.b
    let [count, p] = this.u32(start, end)
    for (let i = 0; i < count; i++) {
      p = this.skipValType(p, end)
      if (p >= end || b[p] > 1) {
        throw malformed('bad global mutability', p)
      }
      p = this.constExpr(p + 1, end)
    }
    return p
  }

  /** Export section (start < 0: there was none). Adds `warden:memory:N` for defined memories. */
  private exportSection(start: number, end: number): void {
    const b = this.b
    const sec = this.sec
    sec.pos = 0
    this.exportsDone = true
    const added = this.definedMemories.length
    const names = new Set<string>()
    if (start >= 0) {
      let [count, p] = this.u32(start, end)
      sec.u32(count + added)
      this.from = p
      for (let i = 0; i < count; i++) {
        let len: number
        ;[len, p] = this.u32(p, end)
        if (p + len > end) {
          throw malformed('export name runs past the section', p)
        }
        try {
          names.add(utf8Decoder.decode(b.subarray(p, p + len)))
        } catch (err) {
          throw new InstrumentError(
            `malformed module: export name is not UTF-8 (at byte offset ${p})`,
            { cause: err },
          )
        }
        p += len
        if (p >= end) {
          throw malformed('unexpected end of export section', p)
        }
        const kind = b[p++]
        if (kind > 4) {
          throw malformed(`unknown export kind ${kind}`, p - 1)
        }
        const idxAt = p
        let idx: number
        ;[idx, p] = this.u32(p, end)
        if (kind === 3 && idx >= this.importedGlobals) {
          this.copyTo(idxAt)
          sec.u32(idx + 3)
          this.from = p
        }
      }
      if (p !== end) {
        throw malformed('export section size does not match its contents', p)
      }
      this.copyTo(end)
    } else if (added === 0) {
      return
    } else {
      sec.u32(added)
    }
    for (let i = 0; i < added; i++) {
      const index = this.importedMemories + i
      const name = MEMORY_EXPORT_PREFIX + String(index)
      if (names.has(name)) {
        throw new InstrumentError(`the module already exports "${name}"`)
      }
      sec.name(name)
      sec.byte(0x02)
      sec.u32(index)
    }
    this.emitSection(7)
  }

  private elementSection(start: number, end: number): number {
    const b = this.b
    let [count, p] = this.u32(start, end)
    for (let i = 0; i < count; i++) {
      let flags: number
      ;[flags, p] = this.u32(p, end)
      if (flags > 7) {
        throw malformed(`unknown element segment flags ${flags}`, p)
      }
      if ((flags & 1) === 0) {
        if (flags & 2) {
          p = this.u32(p, end)[1] // table index
        }
        p = this.constExpr(p, end)
      }
      if (flags & 3) {
        if (flags & 4) {
          p = this.refType(p, end)
        } else if (p >= end || b[p] !== 0x00) {
          throw malformed('bad element kind', p)
        } else {
          p++
        }
      }
      let n: number
      ;[n, p] = this.u32(p, end)
      for (let j = 0; j < n; j++) {
        p = flags & 4 ? this.constExpr(p, end) : this.u32(p, end)[1]
      }
    }
    return p
  }

  private dataSection(start: number, end: number): number {
    let [count, p] = this.u32(start, end)
    for (let i = 0; i < count; i++) {
      let flags: number
      ;[flags, p] = this.u32(p, end)
      if (flags > 2) {
        throw malformed(`unknown data segment flags ${flags}`, p)
      }
      if (flags === 2) {
        p = this.u32(p, end)[1] // memory index
      }
      if (flags !== 1) {
        p = this.constExpr(p, end)
      }
      let len: number
      ;[len, p] = this.u32(p, end)
      p += len
      if (p > end) {
        throw malformed('data segment runs past the section', p)
      }
    }
    return p
  }

  /** A constant expression up to and including its `end`; rewrites `global.get` indices. */
  private constExpr(p: number, end: number): number {
    const b = this.b
    for (;;) {
      if (p >= end) {
        throw malformed('constant expression without end', p)
      }
      const op = b[p++]
      switch (op) {
        case 0x0b:
          return p
        case 0x41: // i32.const
          p = lebEnd(b, p, end, 5)
          break
        case 0x42: // i64.const
          p = lebEnd(b, p, end, 10)
          break
        case 0x43:
          p += 4
          break
        case 0x44:
          p += 8
          break
        case 0xd0: // ref.null heaptype
          p = lebEnd(b, p, end, 5)
          break
        case 0xd2: // ref.func
          p = lebEnd(b, p, end, 5)
          break
        case 0x23: {
          const at = p
          let idx: number
          ;[idx, p] = this.u32(p, end)
          if (idx >= this.importedGlobals) {
            this.copyTo(at)
            this.sec.u32(idx + 3)
            this.from = p
          }
          break
        }
        case 0x6a: // i32.add, sub, mul; i64.add, sub, mul
        case 0x6b:
        case 0x6c:
        case 0x7c:
        case 0x7d:
        case 0x7e:
          throw refused(REFUSED_FEATURES.extendedConst, p - 1)
        case 0xfd: {
          let sub: number
          ;[sub, p] = this.u32(p, end)
          if (sub !== 0x0c) {
            throw unsupported(`SIMD opcode ${sub} in a constant expression`, p)
          }
          p += 16
          break
        }
        default:
          throw unsupported(`opcode 0x${op.toString(16)} in a constant expression`, p - 1)
      }
    }
  }

  private codeSection(start: number, end: number): void {
    const b = this.b
    this.sawCode = true
    let [count, p] = this.u32(start, end)
    if (count !== this.funcTypes.length) {
      throw malformed('function and code section counts differ', start)
    }
    const code = new ByteWriter(Math.ceil((end - start) * 1.4) + 1024)
    code.u32(count)
    const fw = this.fw
    for (let i = 0; i < count; i++) {
      let size: number
      ;[size, p] = this.u32(p, end)
      const bodyEnd = p + size
      if (bodyEnd > end) {
        throw malformed('function body runs past the code section', p)
      }
      const localsAt = p
      let groups: number
      ;[groups, p] = this.u32(p, bodyEnd)
      const groupsAt = p
      let total = this.paramCounts[this.funcTypes[i]]
      for (let j = 0; j < groups; j++) {
        let n: number
        ;[n, p] = this.u32(p, bodyEnd)
        total += n
        if (total > MAX_FUNCTION_LOCALS) {
          throw new InstrumentError(`function ${i} has too many locals`)
        }
        p = this.skipValType(p, bodyEnd)
      }
      this.fuelLocal = total
      this.cached = total < MAX_FUNCTION_LOCALS
      const body = this.functionBody(p, bodyEnd)
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
        code.byte(0x7e)
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
    const out = this.out
    out.byte(10)
    out.u32(code.pos)
    out.copy(code.buf, 0, code.pos)
  }

  /**
   * Streams one function's instructions into `this.fw`, inserting fuel charges and checks at
   * basic-block starts (and, when `this.cached`, the flushes and reloads of the fuel local) and
   * rewriting global indices and `memory.grow`. Returns BODY_GROW when the body uses
   * `memory.grow` (and so needs the scratch local).
   */
  private functionBody(start: number, end: number): number {
    const b = this.b
    const gImported = this.importedGlobals
    const rwStart = this.rwStart
    const rwEnd = this.rwEnd
    const rwKind = this.rwKind
    const rwValue = this.rwValue
    const cached = this.cached
    this.fw.pos = 0
    this.reload = cached
    let nrw = 0
    let p = start
    let segStart = start
    let live = true
    let check = true
    let cost = 0
    let depth = 1
    let usesGrow = false

    for (;;) {
      if (p >= end) {
        throw malformed('function body has no end', p)
      }
      const opAt = p
      const op = b[p++]
      cost++
      // i32/i64/f32/f64 numeric and sign-extension instructions: no immediates.
      if (op >= 0x45 && op <= 0xc4) {
        continue
      }
      let kind = 0
      // Flush the fuel local to the global before this instruction (cached functions only).
      let flush = false
      switch (op) {
        case 0x20: // local.get
        case 0x21: // local.set
        case 0x22: // local.tee
          if (p < end && b[p] < 0x80) {
            p++
          } else {
            p = lebEnd(b, p, end, 5)
          }
          continue
        case 0x23: // global.get
        case 0x24: {
          // global.set
          const q = lebEnd(b, p, end, 5)
          const idx = b[p] < 0x80 ? b[p] : decodeU32(b, p, q)
          if (idx >= gImported) {
            rwStart[nrw] = p
            rwEnd[nrw] = q
            rwKind[nrw] = RW_GLOBAL
            rwValue[nrw] = idx + 3
            nrw++
          }
          p = q
          continue
        }
        case 0x28:
        case 0x29:
        case 0x2a:
        case 0x2b:
        case 0x2c:
        case 0x2d:
        case 0x2e:
        case 0x2f:
        case 0x30:
        case 0x31:
        case 0x32:
        case 0x33:
        case 0x34:
        case 0x35:
        case 0x36:
        case 0x37:
        case 0x38:
        case 0x39:
        case 0x3a:
        case 0x3b:
        case 0x3c:
        case 0x3d:
        case 0x3e:
          p = skipMemarg(b, p, end)
          continue
        case 0x41: // i32.const
          if (p < end && b[p] < 0x80) {
            p++
          } else {
            p = lebEnd(b, p, end, 5)
          }
          continue
        case 0x42: // i64.const
          p = lebEnd(b, p, end, 10)
          continue
        case 0x43: // f32.const
          p += 4
          if (p > end) {
            throw malformed('unexpected end', end)
          }
          continue
        case 0x44: // f64.const
          p += 8
          if (p > end) {
            throw malformed('unexpected end', end)
          }
          continue
        case 0x01: // nop
        case 0x1a: // drop
        case 0x1b: // select
        case 0xd1: // ref.is_null
          continue
        case 0x1c: {
          // select t*
          const q = lebEnd(b, p, end, 5)
          const n = decodeU32(b, p, q)
          p = q
          for (let i = 0; i < n; i++) {
            p = this.skipValType(p, end)
          }
          continue
        }
        case 0x25: // table.get
        case 0x26: // table.set
        case 0x3f: // memory.size
        case 0xd2: // ref.func
          p = lebEnd(b, p, end, 5)
          continue
        case 0xd0: // ref.null heaptype (s33)
          p = lebEnd(b, p, end, 5)
          continue
        case 0x40: {
          // memory.grow
          const q = lebEnd(b, p, end, 5)
          rwStart[nrw] = p - 1
          rwEnd[nrw] = q
          rwKind[nrw] = RW_GROW
          rwValue[nrw] = decodeU32(b, p, q)
          nrw++
          p = q
          cost += 7
          usesGrow = true
          continue
        }

        // Control flow.
        case 0x02: // block
        case 0x03: // loop
        case 0x04: // if
        case 0x06: // try (legacy exception handling)
          p = skipBlockType(b, p, end)
          depth++
          kind = K_BOUNDARY
          break
        case 0x1f: // try_table
        case 0x0a: // throw_ref
          throw refused(REFUSED_FEATURES.exnref, opAt)
        case 0x05: // else
        case 0x19: // catch_all
          kind = K_BOUNDARY
          break
        case 0x07: // catch tagidx
        case 0x10: // call
          p = lebEnd(b, p, end, 5)
          flush = cached && op === 0x10
          kind = K_BOUNDARY
          break
        case 0x0d: {
          // br_if label
          const q = lebEnd(b, p, end, 5)
          flush = cached && decodeU32(b, p, q) === depth - 1
          p = q
          kind = K_BOUNDARY
          break
        }
        case 0x18: // delegate label: closes a try
          p = lebEnd(b, p, end, 5)
          if (--depth === 0) {
            throw malformed('delegate closes the function body', p)
          }
          kind = K_BOUNDARY
          break
        case 0x11: // call_indirect type table
          p = lebEnd(b, p, end, 5)
          p = lebEnd(b, p, end, 5)
          cost++
          flush = cached
          kind = K_BOUNDARY
          break
        case 0x0b: // end
          if (--depth === 0) {
            flush = cached
            kind = K_FINAL
          } else {
            kind = K_BOUNDARY
          }
          break
        case 0x00: // unreachable
        case 0x0f: // return
          flush = cached
          kind = K_TERMINATOR
          break
        case 0x08: // throw tagidx
        case 0x09: // rethrow depth
        case 0x12: // return_call
          p = lebEnd(b, p, end, 5)
          flush = cached
          kind = K_TERMINATOR
          break
        case 0x0c: {
          // br label
          const q = lebEnd(b, p, end, 5)
          flush = cached && decodeU32(b, p, q) === depth - 1
          p = q
          kind = K_TERMINATOR
          break
        }
        case 0x13: // return_call_indirect
          p = lebEnd(b, p, end, 5)
          p = lebEnd(b, p, end, 5)
          cost++
          flush = cached
          kind = K_TERMINATOR
          break
        case 0x0e: {
          // br_table vec(label) label
          const q = lebEnd(b, p, end, 5)
          const n = decodeU32(b, p, q)
          p = q
          for (let i = 0; i <= n; i++) {
            let label: number
            if (p < end && b[p] < 0x80) {
              label = b[p++]
            } else {
              const r = lebEnd(b, p, end, 5)
              label = decodeU32(b, p, r)
              p = r
            }
            if (label === depth - 1) {
              flush = cached
            }
          }
          kind = K_TERMINATOR
          break
        }

        case 0xfc:
          p = this.skipFc(p, end)
          continue
        case 0xfd:
          p = this.skipSimd(p, end)
          continue
        case 0xfe:
          p = this.skipAtomic(p, end)
          continue
        default:
          throw unsupported(`unknown opcode 0x${op.toString(16)}`, p - 1)
      }

      // A basic block ends here: emit the segment (charge first, then check, then the code).
      this.emitSegment(segStart, opAt, p, nrw, live ? cost : -1, live && check, live && flush)
      nrw = 0
      segStart = p
      if (kind === K_FINAL) {
        break
      }
      live = kind === K_BOUNDARY
      check = op === 0x03
      cost = 0
      // After a call returns, or an exception was caught, the global is ahead of the local.
      if (cached && (op === 0x10 || op === 0x11 || op === 0x07 || op === 0x19)) {
        this.reload = true
      }
    }
    if (p !== end) {
      throw malformed('code after the end of the function body', p)
    }
    return usesGrow ? BODY_GROW : 0
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
  ): void {
    const fw = this.fw
    if (this.cached) {
      const f = this.fuelLocal
      fw.ensure(32)
      if (cost > 0 || this.reload) {
        // (global.get $fuel | local.get $f); i64.const cost; i64.sub; (local.set | local.tee) $f
        if (this.reload) {
          fw.byte(0x23)
          fw.u32(this.fuelGlobal)
          this.reload = false
        } else {
          fw.byte(0x20)
          fw.u32(f)
        }
        if (cost > 0) {
          fw.byte(0x42)
          fw.s64(cost)
          fw.byte(0x7d)
        }
        fw.byte(check ? 0x22 : 0x21)
        fw.u32(f)
      } else if (check) {
        fw.byte(0x20)
        fw.u32(f)
      }
      if (check) {
        // i64.const 0; i64.lt_s; if; local.get $f; global.set $fuel; i32.const 1;
        // global.set $trap; unreachable; end
        fw.byte(0x42)
        fw.byte(0x00)
        fw.byte(0x53)
        this.trapSequence(fw, TRAP_FUEL)
      }
    } else {
      if (cost > 0) {
        // global.get $fuel; i64.const cost; i64.sub; global.set $fuel
        fw.ensure(24)
        fw.byte(0x23)
        fw.u32(this.fuelGlobal)
        fw.byte(0x42)
        fw.s64(cost)
        fw.byte(0x7d)
        fw.byte(0x24)
        fw.u32(this.fuelGlobal)
      }
      if (check) {
        fw.copy(this.checkBytes, 0, this.checkBytes.length)
      }
    }
    const b = this.b
    let cur = from
    for (let k = 0; k < nrw; k++) {
      fw.copy(b, cur, this.rwStart[k])
      if (this.rwKind[k] === RW_GLOBAL) {
        fw.u32(this.rwValue[k])
      } else {
        this.emitGrow(this.rwValue[k])
      }
      cur = this.rwEnd[k]
    }
    if (flush) {
      fw.copy(b, cur, at)
      this.emitFlush()
      cur = at
    }
    fw.copy(b, cur, to)
  }

  /** `local.get $f; global.set $fuel`: the global catches up with the fuel local. */
  private emitFlush(): void {
    const fw = this.fw
    fw.ensure(12)
    fw.byte(0x20)
    fw.u32(this.fuelLocal)
    fw.byte(0x24)
    fw.u32(this.fuelGlobal)
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
    fw.byte(0xad) // i64.extend_i32_u
    fw.byte(0x22) // local.tee $d
    fw.u32(d)
    fw.byte(0x3f) // memory.size M
    fw.u32(mem)
    fw.byte(0xad) // i64.extend_i32_u
    fw.byte(0x7c) // i64.add
    fw.byte(0x23) // global.get $memory_cap
    fw.u32(this.capGlobal)
    fw.byte(0xad) // i64.extend_i32_u
    fw.byte(0x56) // i64.gt_u
    this.trapSequence(fw, TRAP_MEMORY, false)
    fw.byte(0x20) // local.get $d
    fw.u32(d)
    fw.byte(0xa7) // i32.wrap_i64
    fw.byte(0x40) // memory.grow M
    fw.u32(mem)
    fw.byte(0xac) // i64.extend_i32_s
    fw.byte(0x22) // local.tee $d
    fw.u32(d)
    fw.byte(0x42) // i64.const -1
    fw.byte(0x7f)
    fw.byte(0x51) // i64.eq
    this.trapSequence(fw, TRAP_MEMORY, false)
    fw.byte(0x20) // local.get $d
    fw.u32(d)
    fw.byte(0xa7) // i32.wrap_i64
    if (cached) {
      fw.byte(0x23) // global.get $fuel
      fw.u32(this.fuelGlobal)
      fw.byte(0x21) // local.set $f
      fw.u32(d)
    }
  }

  /** 0xFC prefix: saturating truncation, bulk memory, reference-type table ops. */
  private skipFc(p: number, end: number): number {
    const b = this.b
    const q = lebEnd(b, p, end, 5)
    const sub = decodeU32(b, p, q)
    p = q
    if (sub <= 7) {
      return p // trunc_sat
    }
    switch (sub) {
      case 8: // memory.init data mem
      case 10: // memory.copy mem mem
      case 12: // table.init elem table
      case 14: // table.copy table table
        p = lebEnd(b, p, end, 5)
        return lebEnd(b, p, end, 5)
      case 9: // data.drop
      case 11: // memory.fill
      case 13: // elem.drop
      case 15: // table.grow
      case 16: // table.size
      case 17: // table.fill
        return lebEnd(b, p, end, 5)
      default:
        throw unsupported(`unknown opcode 0xfc ${sub}`, p)
    }
  }

  /** 0xFD prefix: fixed-width SIMD. */
  private skipSimd(p: number, end: number): number {
    const b = this.b
    const q = lebEnd(b, p, end, 5)
    const sub = decodeU32(b, p, q)
    if (sub >= RELAXED_SIMD_FIRST && sub < SIMD_IMMEDIATES.length) {
      throw refused(REFUSED_FEATURES.relaxedSimd, p - 1)
    }
    p = q
    const imm = sub < SIMD_IMMEDIATES.length ? SIMD_IMMEDIATES[sub] : 0
    switch (imm) {
      case SIMD_NONE:
        return p
      case SIMD_MEMARG:
        return skipMemarg(b, p, end)
      case SIMD_BYTES16:
        p += 16
        break
      case SIMD_LANE:
        p += 1
        break
      case SIMD_MEMARG_LANE:
        p = skipMemarg(b, p, end) + 1
        break
      default:
        throw unsupported(`unknown opcode 0xfd ${sub}`, p)
    }
    if (p > end) {
      throw malformed('unexpected end', end)
    }
    return p
  }

  /** 0xFE prefix: threads (atomics). */
  private skipAtomic(p: number, end: number): number {
    const b = this.b
    const q = lebEnd(b, p, end, 5)
    const sub = decodeU32(b, p, q)
    p = q
    if (sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e)) {
      return skipMemarg(b, p, end)
    }
    if (sub === 0x03) {
      // atomic.fence: one reserved zero byte
      if (p >= end || b[p] !== 0x00) {
        throw malformed('atomic.fence without its zero byte', p)
      }
      return p + 1
    }
    throw unsupported(`unknown opcode 0xfe ${sub}`, p)
  }
}
