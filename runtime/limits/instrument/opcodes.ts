/**
 * Opcode and immediate tables: what the rewriter needs to know about each instruction to skip it
 * (its immediates) or to find basic-block boundaries (control flow). Names follow the spec's text
 * format in camelCase (`br_if` → `brIf`). Numeric instructions have no immediates and are a range.
 */
import { decodeU32, lebEnd } from './bytes.js'
import { REFUSED_FEATURES, malformed, refused, unsupported } from './errors.js'

/** Single-byte opcodes the rewriter names, by their text-format name. */
export const OP = {
  unreachable: 0x00,
  nop: 0x01,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  try: 0x06,
  catch: 0x07,
  throw: 0x08,
  rethrow: 0x09,
  throwRef: 0x0a,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  return: 0x0f,
  call: 0x10,
  callIndirect: 0x11,
  returnCall: 0x12,
  returnCallIndirect: 0x13,
  delegate: 0x18,
  catchAll: 0x19,
  drop: 0x1a,
  select: 0x1b,
  selectT: 0x1c,
  tryTable: 0x1f,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  globalGet: 0x23,
  globalSet: 0x24,
  tableGet: 0x25,
  tableSet: 0x26,
  memorySize: 0x3f,
  memoryGrow: 0x40,
  i32Const: 0x41,
  i64Const: 0x42,
  f32Const: 0x43,
  f64Const: 0x44,
  i32Eqz: 0x45,
  i64Eq: 0x51,
  i64LtS: 0x53,
  i64GtU: 0x56,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64ShrU: 0x88,
  i32WrapI64: 0xa7,
  i64ExtendI32S: 0xac,
  i64ExtendI32U: 0xad,
  refNull: 0xd0,
  refIsNull: 0xd1,
  refFunc: 0xd2,
  prefixFc: 0xfc,
  prefixSimd: 0xfd,
  prefixAtomic: 0xfe,
} as const

/** Loads and stores, each with a memarg: `i32.load` (0x28) … `i64.store32` (0x3e). */
export const MEMORY_ACCESS_OPS = { first: 0x28, last: 0x3e } as const
/** Numeric and sign-extension instructions, no immediates: `i32.eqz` (0x45) … `i64.extend32_s`. */
export const NUMERIC_OPS = { first: 0x45, last: 0xc4 } as const

/** Value types, and the block type "no result". */
export const TYPE = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
  funcref: 0x70,
  externref: 0x6f,
  /** `exnref`, a value type of the exnref proposal (refused). */
  exnref: 0x69,
  /** `func` type form in the type section. */
  func: 0x60,
  /** Empty block type. */
  empty: 0x40,
} as const

/** Section ids. */
export const SECTION = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const

/** Import and export kinds. */
export const EXTERNAL = { func: 0, table: 1, memory: 2, global: 3, tag: 4 } as const

/** How the body walk treats an opcode: which immediates to skip, or whether it is control flow. */
export const IMM = {
  /** Not an opcode the rewriter knows: rejected. */
  unknown: 0,
  none: 1,
  /** `local.get` `local.set` `local.tee`: a local index. */
  local: 2,
  /** `global.get` `global.set`: a global index, shifted by the meter imports. */
  global: 3,
  memarg: 4,
  /** One LEB128 of at most 5 bytes: `i32.const`, `table.get/set`, `memory.size`, `ref.func`, `ref.null`. */
  leb32: 5,
  /** `i64.const`: one LEB128 of at most 10 bytes. */
  leb64: 6,
  f32: 7,
  f64: 8,
  /** `select t*`: a vector of value types. */
  selectT: 9,
  /** `memory.grow`: rewritten with the cap check. */
  memoryGrow: 10,
  prefixFc: 11,
  prefixSimd: 12,
  prefixAtomic: 13,
  /** Structured control, branches, calls, returns, exceptions: may end a basic block. */
  control: 14,
  /** `ref.func`: a function index, checked against the input's functions. */
  funcIndex: 15,
} as const

/** Immediate kind ({@link IMM}) of every single-byte opcode. */
export const IMMEDIATES: Uint8Array = (() => {
  const t = new Uint8Array(256)
  t.fill(IMM.none, NUMERIC_OPS.first, NUMERIC_OPS.last + 1)
  t.fill(IMM.memarg, MEMORY_ACCESS_OPS.first, MEMORY_ACCESS_OPS.last + 1)
  for (const op of [OP.nop, OP.drop, OP.select, OP.refIsNull]) {
    t[op] = IMM.none
  }
  for (const op of [OP.localGet, OP.localSet, OP.localTee]) {
    t[op] = IMM.local
  }
  t[OP.globalGet] = IMM.global
  t[OP.globalSet] = IMM.global
  for (const op of [OP.i32Const, OP.tableGet, OP.tableSet, OP.memorySize, OP.refNull]) {
    t[op] = IMM.leb32
  }
  t[OP.refFunc] = IMM.funcIndex
  t[OP.i64Const] = IMM.leb64
  t[OP.f32Const] = IMM.f32
  t[OP.f64Const] = IMM.f64
  t[OP.selectT] = IMM.selectT
  t[OP.memoryGrow] = IMM.memoryGrow
  t[OP.prefixFc] = IMM.prefixFc
  t[OP.prefixSimd] = IMM.prefixSimd
  t[OP.prefixAtomic] = IMM.prefixAtomic
  for (const op of [
    OP.unreachable,
    OP.block,
    OP.loop,
    OP.if,
    OP.else,
    OP.try,
    OP.catch,
    OP.throw,
    OP.rethrow,
    OP.throwRef,
    OP.end,
    OP.br,
    OP.brIf,
    OP.brTable,
    OP.return,
    OP.call,
    OP.callIndirect,
    OP.returnCall,
    OP.returnCallIndirect,
    OP.delegate,
    OP.catchAll,
    OP.tryTable,
  ]) {
    t[op] = IMM.control
  }
  return t
})()

/** 0xFC sub-opcodes: `*.trunc_sat_*` (0–7) take no immediate; bulk memory and table ops do. */
export const FC = {
  truncSatLast: 7,
  memoryInit: 8,
  dataDrop: 9,
  memoryCopy: 10,
  memoryFill: 11,
  tableInit: 12,
  elemDrop: 13,
  tableCopy: 14,
  tableGrow: 15,
  tableSize: 16,
  tableFill: 17,
} as const

/** 0xFD (SIMD) immediate layouts, by sub-opcode. */
export const SIMD_IMM = {
  unknown: 0,
  none: 1,
  memarg: 2,
  bytes16: 3,
  lane: 4,
  memargLane: 5,
} as const

/** First relaxed-SIMD sub-opcode: known, so that it is refused by name. */
export const RELAXED_SIMD_FIRST = 0x100

/** {@link SIMD_IMM} layout of every 0xFD sub-opcode. */
export const SIMD_IMMEDIATES: Uint8Array = (() => {
  const t = new Uint8Array(0x114)
  t.fill(SIMD_IMM.none, 0, 0x100)
  t.fill(SIMD_IMM.memarg, 0x00, 0x0c) // v128.load … v128.store
  t[0x0c] = SIMD_IMM.bytes16 // v128.const
  t[0x0d] = SIMD_IMM.bytes16 // i8x16.shuffle
  t.fill(SIMD_IMM.lane, 0x15, 0x23) // extract_lane / replace_lane
  t.fill(SIMD_IMM.memargLane, 0x54, 0x5c) // v128.load*_lane / v128.store*_lane
  t[0x5c] = SIMD_IMM.memarg // v128.load32_zero
  t[0x5d] = SIMD_IMM.memarg // v128.load64_zero
  // Holes in the final SIMD opcode space.
  for (const op of [
    0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2,
    0xd3, 0xd4, 0xe2, 0xee,
  ]) {
    t[op] = SIMD_IMM.unknown
  }
  t.fill(SIMD_IMM.none, RELAXED_SIMD_FIRST, 0x114)
  return t
})()

/** 0xFE (atomics) sub-opcodes. */
export const ATOMIC = {
  /** `memory.atomic.notify`, `memory.atomic.wait32/64`: memarg. */
  waitNotifyLast: 0x02,
  /** `atomic.fence`: one reserved zero byte. */
  fence: 0x03,
  /** Atomic loads, stores, read-modify-write and cmpxchg: memarg. */
  accessFirst: 0x10,
  accessLast: 0x4e,
} as const

/** Single-byte value types: i32 i64 f32 f64 v128 funcref externref. */
export function isSimpleValType(t: number): boolean {
  return (t >= TYPE.v128 && t <= TYPE.i32) || t === TYPE.funcref || t === TYPE.externref
}

export function isRefType(t: number): boolean {
  return t === TYPE.funcref || t === TYPE.externref
}

/** Skips a block type; a type index must be below `typeCount` (the input's types). */
export function skipBlockType(b: Uint8Array, p: number, end: number, typeCount: number): number {
  if (p >= end) {
    throw malformed('unexpected end', p)
  }
  const t = b[p]
  if (t === TYPE.empty || isSimpleValType(t)) {
    return p + 1
  }
  // Anything else must be a non-negative s33 type index; negative codes (typed refs) fail closed.
  if ((t & 0xc0) === 0x40) {
    throw unsupported(`block type 0x${t.toString(16)}`, p)
  }
  const q = lebEnd(b, p, end, 5)
  // A non-negative s33 of at most 5 bytes reads as the unsigned value when its sign bit is clear.
  const index = decodeU32(b, p, q)
  if ((b[q - 1] & 0x40) !== 0 || index >= typeCount) {
    throw malformed('block type index out of range', p)
  }
  return q
}

export function skipMemarg(b: Uint8Array, p: number, end: number): number {
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

/** 0xFC prefix: saturating truncation, bulk memory, reference-type table ops. */
export function skipFc(b: Uint8Array, p: number, end: number): number {
  const q = lebEnd(b, p, end, 5)
  const sub = decodeU32(b, p, q)
  p = q
  if (sub <= FC.truncSatLast) {
    return p
  }
  switch (sub) {
    case FC.memoryInit: // data mem
    case FC.memoryCopy: // mem mem
    case FC.tableInit: // elem table
    case FC.tableCopy: // table table
      p = lebEnd(b, p, end, 5)
      return lebEnd(b, p, end, 5)
    case FC.dataDrop:
    case FC.memoryFill:
    case FC.elemDrop:
    case FC.tableGrow:
    case FC.tableSize:
    case FC.tableFill:
      return lebEnd(b, p, end, 5)
    default:
      throw unsupported(`unknown opcode 0xfc ${sub}`, p)
  }
}

/** 0xFD prefix: fixed-width SIMD. */
export function skipSimd(b: Uint8Array, p: number, end: number): number {
  const q = lebEnd(b, p, end, 5)
  const sub = decodeU32(b, p, q)
  if (sub >= RELAXED_SIMD_FIRST && sub < SIMD_IMMEDIATES.length) {
    throw refused(REFUSED_FEATURES.relaxedSimd, p - 1)
  }
  p = q
  const imm = sub < SIMD_IMMEDIATES.length ? SIMD_IMMEDIATES[sub] : SIMD_IMM.unknown
  switch (imm) {
    case SIMD_IMM.none:
      return p
    case SIMD_IMM.memarg:
      return skipMemarg(b, p, end)
    case SIMD_IMM.bytes16:
      p += 16
      break
    case SIMD_IMM.lane:
      p += 1
      break
    case SIMD_IMM.memargLane:
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
export function skipAtomic(b: Uint8Array, p: number, end: number): number {
  const q = lebEnd(b, p, end, 5)
  const sub = decodeU32(b, p, q)
  p = q
  if (sub <= ATOMIC.waitNotifyLast || (sub >= ATOMIC.accessFirst && sub <= ATOMIC.accessLast)) {
    return skipMemarg(b, p, end)
  }
  if (sub === ATOMIC.fence) {
    if (p >= end || b[p] !== 0x00) {
      throw malformed('atomic.fence without its zero byte', p)
    }
    return p + 1
  }
  throw unsupported(`unknown opcode 0xfe ${sub}`, p)
}

/** Skips a single-byte value type; anything else fails closed (exnref by name). */
export function skipValType(b: Uint8Array, p: number, end: number): number {
  if (p >= end) {
    throw malformed('unexpected end', p)
  }
  if (!isSimpleValType(b[p])) {
    throw b[p] === TYPE.exnref
      ? refused(REFUSED_FEATURES.exnref, p)
      : unsupported(`value type 0x${b[p].toString(16)}`, p)
  }
  return p + 1
}

/** Skips `funcref` or `externref`; anything else fails closed (exnref by name). */
export function skipRefType(b: Uint8Array, p: number, end: number): number {
  if (p >= end) {
    throw malformed('unexpected end', p)
  }
  if (!isRefType(b[p])) {
    throw b[p] === TYPE.exnref
      ? refused(REFUSED_FEATURES.exnref, p)
      : unsupported(`reference type 0x${b[p].toString(16)}`, p)
  }
  return p + 1
}
