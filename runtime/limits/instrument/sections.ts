/**
 * The section walk: checks section order and sizes, copies what does not change, and rewrites
 * what does (meter imports appended, defined globals shifted, limits lowered, memories exported,
 * the `name` section dropped). The code section goes to {@link CodeRewriter}.
 */
import { ByteWriter, bytesEqual, decodeU32, lebEnd, utf8, utf8Decoder } from './bytes.js'
import { CodeRewriter, FuelThreadingUnsupported } from './code.js'
import { COST_MODEL_VERSION } from './cost-model.js'
import { InstrumentError, REFUSED_FEATURES, malformed, refused, unsupported } from './errors.js'
import { MEMORY_EXPORT_PREFIX, MEMORY_IMPORT, METER_MODULE, REFUEL_IMPORT } from './meter.js'
import type { InstrumentedModule } from './meter.js'
import { EXTERNAL, OP, SECTION, TYPE, skipRefType, skipValType } from './opcodes.js'

/** The globals appended to the imports, in order: `fuel`, `trap`, `memory_cap`. */
const METER_GLOBALS = [
  ['fuel', TYPE.i64, 1],
  ['trap', TYPE.i32, 1],
  ['memory_cap', TYPE.i32, 0],
] as const

// Section ids → required order (custom sections excepted).
const SECTION_RANK: Record<number, number> = {
  [SECTION.type]: 1,
  [SECTION.import]: 2,
  [SECTION.function]: 3,
  [SECTION.table]: 4,
  [SECTION.memory]: 5,
  [SECTION.tag]: 6,
  [SECTION.global]: 7,
  [SECTION.export]: 8,
  [SECTION.start]: 9,
  [SECTION.element]: 10,
  [SECTION.dataCount]: 11,
  [SECTION.code]: 12,
  [SECTION.data]: 13,
}
const RANK_TYPE = SECTION_RANK[SECTION.type]
const RANK_IMPORT = SECTION_RANK[SECTION.import]
const RANK_EXPORT = SECTION_RANK[SECTION.export]

const METER_MODULE_BYTES = utf8.encode(METER_MODULE)
const NAME_BYTES = utf8.encode('name')

/** V8's limits (`wasm-limits.h`) that the threaded scheme's added types and functions must fit. */
const V8_MAX_TYPES = 1_000_000
const V8_MAX_FUNCTIONS = 1_000_000
const V8_MAX_PARAMS = 1_000
const V8_MAX_RESULTS = 1_000

/**
 * How fuel reaches the code: `threaded` through internal calls as an extra parameter and
 * result (falling back to `cached` for the whole module where it cannot), or `cached` in a local
 * per function, flushed to the global around every call (cost model 2's code).
 */
export type FuelScheme = 'threaded' | 'cached'

/**
 * Rewrites a module with the given scheme. Internal: {@link instrumentModule} validates the
 * options and uses `threaded` with loops batched; tests compare the schemes, and batched loops
 * with the per-iteration code (`batchLoops: false`, the code of cost model 4).
 * `provideMemory`: see `InstrumentOptions.provideMemory`.
 */
export function rewriteModule(
  bytes: Uint8Array,
  maxMemoryPages: number,
  maxTableElements: number,
  scheme: FuelScheme,
  batchLoops = true,
  provideMemory = false,
): InstrumentedModule {
  const make = (threaded: boolean) =>
    new ModuleRewriter(
      bytes,
      maxMemoryPages,
      maxTableElements,
      threaded,
      batchLoops,
      provideMemory,
    ).run()
  if (scheme === 'threaded') {
    try {
      return make(true)
    } catch (err) {
      if (!(err instanceof FuelThreadingUnsupported)) {
        throw err
      }
    }
  }
  return make(false)
}

class ModuleRewriter {
  private readonly b: Uint8Array
  private readonly maxMemoryPages: number
  private readonly maxTableElements: number
  /** Thread fuel through internal calls (see `FuelScheme`). */
  private readonly threaded: boolean
  /** Charge small one-block loops once per batch of iterations (see `CodeContext`). */
  private readonly batchLoops: boolean
  /**
   * The module's one defined memory becomes an import (`InstrumentOptions.provideMemory`): its
   * limits after the rewrite, found before the walk reaches the import section; else undefined.
   */
  private provided: { min: number; max: number } | undefined
  private readonly out: ByteWriter
  private readonly sec = new ByteWriter(1 << 16)
  /** Start of the not yet copied input in the current section (see copyTo). */
  private from = 0

  private readonly paramCounts: number[] = []
  /** Result count of every type, by type index. */
  /** Per type, 4 offsets in the input: its param types' start and end, its result types'. */
  private readonly typeBytes: number[] = []
  private readonly resultCounts: number[] = []
  /** Threaded: per type, the index of its fuel-threaded form (params, i64) -> (results, i64). */
  private readonly threadedTypes: number[] = []
  /** Threaded: per type, the block type `[] -> results`, encoded. */
  private readonly resultBlockTypes: Uint8Array[] = []
  private readonly funcTypes: number[] = []
  private importedFuncs = 0
  private importedGlobals = 0
  private importedMemories = 0
  private readonly definedMemories: { min: number; max: number }[] = []
  private typesDone = false
  private importsDone = false
  private exportsDone = false
  private sawCode = false

  /** Limits of the memory last passed to `limits`, after the rewrite. */
  private lastLimits = { min: 0, max: 0 }

  constructor(
    bytes: Uint8Array,
    maxMemoryPages: number,
    maxTableElements: number,
    threaded: boolean,
    batchLoops: boolean,
    provideMemory: boolean,
  ) {
    this.b = bytes
    this.maxMemoryPages = maxMemoryPages
    this.maxTableElements = maxTableElements
    this.threaded = threaded
    this.batchLoops = batchLoops
    this.provided = provideMemory ? this.findDefinedMemory() : undefined
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
      if (id === SECTION.custom) {
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
      if (rank > RANK_TYPE && !this.typesDone) {
        this.emitTypes(-1, -1)
      }
      if (rank > RANK_IMPORT && !this.importsDone) {
        this.importSection(-1, -1)
      }
      if (rank > RANK_EXPORT && !this.exportsDone) {
        this.exportSection(-1, -1)
      }
      this.section(id, p, start, end)
      p = end
    }
    if (!this.typesDone) {
      this.emitTypes(-1, -1)
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
      provided: this.provided !== undefined,
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
      case SECTION.type:
        p = this.typeSection(start, end)
        if (p !== end) {
          throw malformed(`section ${id} size does not match its contents`, at)
        }
        this.emitTypes(start, end)
        return
      case SECTION.import:
        this.importSection(start, end)
        return
      case SECTION.function:
        p = this.functionSection(start, end)
        if (this.threaded) {
          if (p !== end) {
            throw malformed(`section ${id} size does not match its contents`, at)
          }
          this.emitThreadedFunctions(start, end)
          return
        }
        break
      case SECTION.table:
        p = this.tableSection(start, end)
        break
      case SECTION.memory:
        p = this.memorySection(start, end)
        if (this.provided !== undefined) {
          // Checked like any other, then left out: the memory is the import added above.
          if (p !== end) {
            throw malformed(`section ${id} size does not match its contents`, at)
          }
          return
        }
        break
      case SECTION.global:
        p = this.globalSection(start, end)
        break
      case SECTION.export:
        this.exportSection(start, end)
        return
      case SECTION.element:
        p = this.elementSection(start, end)
        break
      case SECTION.code:
        this.codeSection(start, end)
        return
      case SECTION.data:
        p = this.dataSection(start, end)
        break
      case SECTION.start: // a function index
        p = this.funcIndex(start, end)
        break
      case SECTION.dataCount:
        p = lebEnd(this.b, start, end, 5)
        decodeU32(this.b, start, p)
        break
      default: // tag: (attribute, type index) pairs, unchanged
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

  /**
   * Rewrites a function index past the `refuel` import (a defined function's moves up by one),
   * rejecting one past the input's functions: in the threaded scheme the indices past them
   * belong to the added functions, which take fuel as a parameter.
   */
  private funcIndex(p: number, end: number): number {
    const [idx, q] = this.u32(p, end)
    if (idx >= this.importedFuncs + this.funcTypes.length) {
      throw malformed(`function index ${idx} out of range`, p)
    }
    if (idx >= this.importedFuncs) {
      this.copyTo(p)
      this.sec.u32(idx + 1)
      this.from = q
    }
    return q
  }

  /**
   * The type section as it was (start < 0: there was none), then the type of the `refuel`
   * import, (i64) -> (i64), at index `count`. Threaded: then per type T = (params) -> (results)
   * its fuel-threaded form (params, i64) -> (results, i64), and for T with 2 or more results the
   * block type [] -> (results) of the body's outer block.
   */
  private emitTypes(start: number, end: number): void {
    this.typesDone = true
    const b = this.b
    const count = this.paramCounts.length
    const added = new ByteWriter((start < 0 ? 0 : end - start) + count * 8 + 8)
    added.byte(TYPE.func)
    added.byte(1)
    added.byte(TYPE.i64)
    added.byte(1)
    added.byte(TYPE.i64)
    let next = count + 1
    for (let t = 0; t < count && this.threaded; t++) {
      const params = this.paramCounts[t]
      const results = this.resultCounts[t]
      if (params + 1 > V8_MAX_PARAMS || results + 1 > V8_MAX_RESULTS) {
        this.threadedTypes.push(-1)
        this.resultBlockTypes.push(new Uint8Array(0))
        continue
      }
      const [paramsAt, paramsEnd, resultsAt, resultsEnd] = this.typeBytes.slice(4 * t, 4 * t + 4)
      added.byte(TYPE.func)
      added.u32(params + 1)
      added.copy(b, paramsAt, paramsEnd)
      added.byte(TYPE.i64)
      added.u32(results + 1)
      added.copy(b, resultsAt, resultsEnd)
      added.byte(TYPE.i64)
      this.threadedTypes.push(next++)
      if (results === 0) {
        this.resultBlockTypes.push(Uint8Array.of(TYPE.empty))
      } else if (results === 1) {
        this.resultBlockTypes.push(Uint8Array.of(b[resultsAt]))
      } else {
        added.byte(TYPE.func)
        added.byte(0)
        added.u32(results)
        added.copy(b, resultsAt, resultsEnd)
        const bt = new ByteWriter(8)
        bt.s64(next++)
        this.resultBlockTypes.push(bt.buf.slice(0, bt.pos))
      }
    }
    if (next > V8_MAX_TYPES) {
      if (this.threaded) {
        throw new FuelThreadingUnsupported('too many types')
      }
      throw new InstrumentError('too many types to add the refuel import')
    }
    const sec = this.sec
    sec.pos = 0
    sec.u32(next)
    if (start >= 0) {
      sec.copy(b, lebEnd(b, start, end, 5), end)
    }
    sec.copy(added.buf, 0, added.pos)
    this.emitSection(SECTION.type)
  }

  /** Threaded: the function section as it was, then the fuel-threaded form of each function. */
  private emitThreadedFunctions(start: number, end: number): void {
    const n = this.funcTypes.length
    if (this.importedFuncs + 1 + 2 * n > V8_MAX_FUNCTIONS) {
      throw new FuelThreadingUnsupported('too many functions')
    }
    const sec = this.sec
    sec.pos = 0
    sec.u32(2 * n)
    sec.copy(this.b, lebEnd(this.b, start, end, 5), end)
    for (const t of this.funcTypes) {
      const threaded = this.threadedTypes[t]
      if (threaded < 0) {
        throw new FuelThreadingUnsupported('a function type is at the parameter or result limit')
      }
      sec.u32(threaded)
    }
    this.emitSection(SECTION.function)
  }

  private typeSection(start: number, end: number): number {
    const b = this.b
    let [count, p] = this.u32(start, end)
    for (let i = 0; i < count; i++) {
      if (p >= end) {
        throw malformed('unexpected end of type section', p)
      }
      if (b[p] !== TYPE.func) {
        throw unsupported(`type form 0x${b[p].toString(16)} (only func types)`, p)
      }
      let n: number
      ;[n, p] = this.u32(p + 1, end)
      this.paramCounts.push(n)
      this.typeBytes.push(p)
      for (let j = 0; j < n; j++) {
        p = skipValType(b, p, end)
      }
      this.typeBytes.push(p)
      ;[n, p] = this.u32(p, end)
      this.resultCounts.push(n)
      this.typeBytes.push(p)
      for (let j = 0; j < n; j++) {
        p = skipValType(b, p, end)
      }
      this.typeBytes.push(p)
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
      sec.u32(count + METER_GLOBALS.length + 1 + (this.provided ? 1 : 0))
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
          case EXTERNAL.func: {
            let t: number
            ;[t, p] = this.u32(p, end)
            if (t >= this.paramCounts.length) {
              throw malformed(`function type index ${t} out of range`, p)
            }
            this.importedFuncs++
            break
          }
          case EXTERNAL.table:
            p = skipRefType(b, p, end)
            p = this.limits(p, end, 'table')
            break
          case EXTERNAL.memory:
            this.oneMemory(p)
            p = this.limits(p, end, 'memory')
            this.importedMemories++
            break
          case EXTERNAL.global:
            p = skipValType(b, p, end)
            if (p >= end || b[p] > 1) {
              throw malformed('bad global mutability', p)
            }
            p++
            this.importedGlobals++
            break
          case EXTERNAL.tag:
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
      sec.u32(METER_GLOBALS.length + 1 + (this.provided ? 1 : 0))
    }
    for (const [field, type, mut] of METER_GLOBALS) {
      sec.name(METER_MODULE)
      sec.name(field)
      sec.byte(EXTERNAL.global)
      sec.byte(type)
      sec.byte(mut)
    }
    // The last function import: defined functions move up by one.
    sec.name(METER_MODULE)
    sec.name(REFUEL_IMPORT)
    sec.byte(EXTERNAL.func)
    sec.u32(this.paramCounts.length)
    if (this.provided) {
      // Memory index 0 either way: a module that defines its memory imports none.
      sec.name(METER_MODULE)
      sec.name(MEMORY_IMPORT)
      sec.byte(EXTERNAL.memory)
      sec.byte(0x01)
      sec.u32(this.provided.min)
      sec.u32(this.provided.max)
    }
    this.emitSection(SECTION.import)
    this.importsDone = true
  }

  /**
   * Before the walk: the limits, after the rewrite, of the one memory the module defines, if it
   * defines exactly one. Looks at section headers and the memory section only; anything
   * malformed or refused answers undefined and is reported by the walk itself, which reads the
   * same bytes the same way (and refuses the module, or finds this very memory).
   */
  private findDefinedMemory(): { min: number; max: number } | undefined {
    try {
      return this.scanForMemory()
    } catch (err) {
      if (err instanceof InstrumentError) {
        return undefined
      }
      throw err
    }
  }

  private scanForMemory(): { min: number; max: number } | undefined {
    const b = this.b
    let p = 8
    while (p < b.length) {
      const id = b[p]
      const sizeEnd = lebEnd(b, p + 1, b.length, 5)
      const start = sizeEnd
      const end = start + decodeU32(b, p + 1, sizeEnd)
      if (end > b.length) {
        return undefined
      }
      if (id === SECTION.memory) {
        const countEnd = lebEnd(b, start, end, 5)
        if (decodeU32(b, start, countEnd) !== 1 || countEnd >= end) {
          return undefined
        }
        const flags = b[countEnd]
        if (flags > 0x01) {
          return undefined // shared or memory64 (refused by the walk) or unknown
        }
        const minEnd = lebEnd(b, countEnd + 1, end, 5)
        const min = decodeU32(b, countEnd + 1, minEnd)
        let max = Number.POSITIVE_INFINITY
        if (flags === 0x01) {
          const maxEnd = lebEnd(b, minEnd, end, 5)
          max = decodeU32(b, minEnd, maxEnd)
        }
        return min > this.maxMemoryPages
          ? undefined
          : { min, max: Math.min(max, this.maxMemoryPages) }
      }
      p = end
    }
    return undefined
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
        p = skipRefType(b, p + 2, end)
        p = this.limits(p, end, 'table')
        p = this.constExpr(p, end)
      } else {
        p = skipRefType(b, p, end)
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
      p = skipValType(b, p, end)
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
        if (kind > EXTERNAL.tag) {
          throw malformed(`unknown export kind ${kind}`, p - 1)
        }
        const idxAt = p
        let idx: number
        ;[idx, p] = this.u32(p, end)
        if (kind === EXTERNAL.func) {
          this.funcIndex(idxAt, end)
        }
        if (kind === EXTERNAL.global && idx >= this.importedGlobals) {
          this.copyTo(idxAt)
          sec.u32(idx + METER_GLOBALS.length)
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
      sec.byte(EXTERNAL.memory)
      sec.u32(index)
    }
    this.emitSection(SECTION.export)
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
          p = skipRefType(b, p, end)
        } else if (p >= end || b[p] !== 0x00) {
          throw malformed('bad element kind', p)
        } else {
          p++
        }
      }
      let n: number
      ;[n, p] = this.u32(p, end)
      for (let j = 0; j < n; j++) {
        p = flags & 4 ? this.constExpr(p, end) : this.funcIndex(p, end)
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
        case OP.end:
          return p
        case OP.i32Const:
          p = lebEnd(b, p, end, 5)
          break
        case OP.i64Const:
          p = lebEnd(b, p, end, 10)
          break
        case OP.f32Const:
          p += 4
          break
        case OP.f64Const:
          p += 8
          break
        case OP.refNull: // heaptype
          p = lebEnd(b, p, end, 5)
          break
        case OP.refFunc:
          p = this.funcIndex(p, end)
          break
        case OP.globalGet: {
          const at = p
          let idx: number
          ;[idx, p] = this.u32(p, end)
          if (idx >= this.importedGlobals) {
            this.copyTo(at)
            this.sec.u32(idx + METER_GLOBALS.length)
            this.from = p
          }
          break
        }
        case OP.i32Add:
        case OP.i32Sub:
        case OP.i32Mul:
        case OP.i64Add:
        case OP.i64Sub:
        case OP.i64Mul:
          throw refused(REFUSED_FEATURES.extendedConst, p - 1)
        case OP.prefixSimd: {
          let sub: number
          ;[sub, p] = this.u32(p, end)
          if (sub !== 0x0c) {
            throw unsupported(`SIMD opcode ${sub} in a constant expression`, p)
          }
          p += 16 // v128.const
          break
        }
        default:
          throw unsupported(`opcode 0x${op.toString(16)} in a constant expression`, p - 1)
      }
    }
  }

  private codeSection(start: number, end: number): void {
    this.sawCode = true
    const ig = this.importedGlobals
    const code = new CodeRewriter(this.b, {
      threaded: this.threaded,
      batchLoops: this.batchLoops,
      paramCounts: this.paramCounts,
      typeCount: this.paramCounts.length,
      resultBlockTypes: this.resultBlockTypes,
      importedFuncs: this.importedFuncs,
      funcTypes: this.funcTypes,
      importedGlobals: ig,
      globalShift: METER_GLOBALS.length,
      fuelGlobal: ig,
      trapGlobal: ig + 1,
      capGlobal: ig + 2,
    }).codeSection(start, end)
    const out = this.out
    out.byte(SECTION.code)
    out.u32(code.pos)
    out.copy(code.buf, 0, code.pos)
  }
}
