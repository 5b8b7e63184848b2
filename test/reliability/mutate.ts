/**
 * Inputs of the reliability fuzzer (issue 7). An input is a small, plain descriptor (JSON, so
 * it crosses to the fuzz child and prints in a report) that fast-check generates from a seed;
 * {@link buildInput} turns it into component bytes. Two families:
 *
 * - **mutants** of a real component from the corpus: structure-aware edits on its section tree
 *   (duplicate, move, drop, retag or splice in sections at any nesting level, rewrite vector
 *   counts, replace names with hostile text, sizes fixed up so the edit reaches the deeper
 *   checks), then blind edits on the bytes (bit flips, interesting bytes, truncation,
 *   insertion, deletion, repetition, LEB128 rewrites of section sizes and counts);
 * - **hostile** sections built from scratch and appended to a real action (echo): deep
 *   nesting, huge counts, long names, wide types, unrolled instantiations, and core modules
 *   whose code is deep or large rather than malformed.
 *
 * `fc.sample(fuzzInputs, { seed, numRuns })` is prefix-stable: input `i` of a seed is the same
 * whatever the count, so `--seed S --only i` reproduces one input.
 */
import fc from 'fast-check'
import type { CorpusEntry } from './corpus.js'

// --- Bytes ----------------------------------------------------------------------------------

const encoder = new TextEncoder()

/** Concatenate byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) {
    length += p.length
  }
  const out = new Uint8Array(length)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Bytes of unsigned LEB128 `value` (up to 2^53), padded to `width` bytes when given. */
export function leb(value: number, width = 0): Uint8Array {
  const out: number[] = []
  let v = value
  do {
    const low = v % 128
    v = Math.floor(v / 128)
    out.push(low | (v > 0 || out.length + 1 < width ? 0x80 : 0))
  } while (v > 0)
  while (out.length < width) {
    out.push(out.length + 1 < width ? 0x80 : 0x00)
  }
  return Uint8Array.from(out)
}

/** Read an unsigned LEB128 at `at`: its value and width, or undefined past 10 bytes or `end`. */
export function readLeb(
  bytes: Uint8Array,
  at: number,
  end = bytes.length,
): [number, number] | undefined {
  let value = 0
  for (let i = 0; i < 10 && at + i < end; i++) {
    const b = bytes[at + i]!
    value += (b & 0x7f) * 2 ** (7 * i)
    if (b < 0x80) {
      return [value, i + 1]
    }
  }
  return undefined
}

/** Bytes from numbers. */
function u8(...bytes: number[]): Uint8Array {
  return Uint8Array.from(bytes)
}

function bytesOf(text: string | Uint8Array): Uint8Array {
  return typeof text === 'string' ? encoder.encode(text) : text
}

/** A length-prefixed name. */
function name(text: string | Uint8Array): Uint8Array {
  const b = bytesOf(text)
  return concat([leb(b.length), b])
}

/** A section: id, size, body. */
function section(id: number, body: Uint8Array): Uint8Array {
  return concat([Uint8Array.of(id), leb(body.length), body])
}

/** A vector: count, items. */
function vec(items: readonly Uint8Array[]): Uint8Array {
  return concat([leb(items.length), ...items])
}

/** The same bytes `n` times. */
function repeat(unit: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(unit.length * n)
  for (let i = 0; i < n; i++) {
    out.set(unit, i * unit.length)
  }
  return out
}

const COMPONENT_HEADER = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00)
const CORE_HEADER = Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00)

function component(...sections: Uint8Array[]): Uint8Array {
  return concat([COMPONENT_HEADER, ...sections])
}

function coreModule(...sections: Uint8Array[]): Uint8Array {
  return concat([CORE_HEADER, ...sections])
}

// --- The section tree -----------------------------------------------------------------------

/** A component or core module as its sections; nested components and modules are parsed. */
interface WasmNode {
  layer: 'component' | 'core'
  header: Uint8Array
  sections: WasmSection[]
}

interface WasmSection {
  id: number
  /** The body, for a leaf section. */
  body: Uint8Array
  /** A nested component (id 4) or core module (id 1) of a component. */
  nested?: WasmNode
}

/** Parse `bytes` as a component; a nested part that does not parse stays a leaf. */
function parseTree(bytes: Uint8Array): WasmNode {
  return parseNode(bytes, 0, bytes.length, 'component')
}

function parseNode(
  bytes: Uint8Array,
  start: number,
  end: number,
  layer: 'component' | 'core',
): WasmNode {
  if (end - start < 8) {
    throw new RangeError('no header')
  }
  const node: WasmNode = { layer, header: bytes.slice(start, start + 8), sections: [] }
  let pos = start + 8
  while (pos < end) {
    const id = bytes[pos++]!
    const size = readLeb(bytes, pos, end)
    if (!size || pos + size[1] + size[0] > end) {
      throw new RangeError('section runs past its end')
    }
    pos += size[1]
    const body = bytes.slice(pos, pos + size[0])
    let nested: WasmNode | undefined
    if (layer === 'component' && (id === 1 || id === 4)) {
      try {
        nested = parseNode(body, 0, body.length, id === 4 ? 'component' : 'core')
      } catch {
        nested = undefined
      }
    }
    node.sections.push(nested ? { id, body, nested } : { id, body })
    pos += size[0]
  }
  return node
}

/** Where an LEB128 sits in serialised bytes: a section size, or a leaf body's first count. */
interface LebSite {
  at: number
  width: number
}

/** A serialised tree. */
interface Serialized {
  bytes: Uint8Array
  /** Section sizes and leaf counts. */
  sites: LebSite[]
  /**
   * `[start, end)` ranges the loader's structure walk reads (section headers, component-level
   * bodies, core import and export sections), as opposed to what only jco reads (core code,
   * data, custom sections).
   */
  hot: [number, number][]
}

/** Serialise a tree, every section size recomputed. */
function serialize(node: WasmNode): Serialized {
  const parts: Uint8Array[] = [node.header]
  const sites: LebSite[] = []
  const hot: [number, number][] = [[0, node.header.length]]
  let offset = node.header.length
  for (const s of node.sections) {
    const inner: Serialized = s.nested
      ? serialize(s.nested)
      : {
          bytes: s.body,
          sites: leafSites(s.body),
          hot: isHot(node.layer, s.id) ? [[0, s.body.length]] : [],
        }
    const size = leb(inner.bytes.length)
    parts.push(Uint8Array.of(s.id), size, inner.bytes)
    const base = offset + 1 + size.length
    sites.push({ at: offset + 1, width: size.length })
    hot.push([offset, base])
    for (const site of inner.sites) {
      sites.push({ at: base + site.at, width: site.width })
    }
    for (const [start, end] of inner.hot) {
      hot.push([base + start, base + end])
    }
    offset = base + inner.bytes.length
  }
  return { bytes: concat(parts), sites, hot }
}

function isHot(layer: 'component' | 'core', id: number): boolean {
  return layer === 'component' ? id !== 0 : id === 2 || id === 7
}

/** Position `n` (any integer) inside the hot ranges, or anywhere when `hot` is false. */
function position(
  n: number,
  length: number,
  hot: boolean,
  ranges: readonly [number, number][],
): number {
  if (!hot) {
    return n % length
  }
  let total = 0
  for (const [start, end] of ranges) {
    total += end - start
  }
  let k = n % Math.max(total, 1)
  for (const [start, end] of ranges) {
    if (k < end - start) {
      return Math.min(start + k, length - 1)
    }
    k -= end - start
  }
  return n % length
}

/** A leaf body's first LEB128: the count of the vector most sections hold. */
function leafSites(body: Uint8Array): LebSite[] {
  const first = readLeb(body, 0)
  return first ? [{ at: 0, width: first[1] }] : []
}

/** A section and where it sits, for tree edits. */
interface SectionRef {
  parent: WasmNode
  index: number
}

function flatten(node: WasmNode, out: SectionRef[] = []): SectionRef[] {
  node.sections.forEach((s, index) => {
    out.push({ parent: node, index })
    if (s.nested) {
      flatten(s.nested, out)
    }
  })
  return out
}

function cloneSection(s: WasmSection): WasmSection {
  return s.nested
    ? {
        id: s.id,
        body: s.body,
        nested: {
          layer: s.nested.layer,
          header: s.nested.header,
          sections: s.nested.sections.map(cloneSection),
        },
      }
    : { id: s.id, body: s.body }
}

/** A name-like run in a leaf body: a one-byte length, then that many printable ASCII bytes. */
interface NameSite {
  section: WasmSection
  at: number
  length: number
}

/** Name-like runs in the sections the structure walk reads (not custom or data sections). */
function nameSites(node: WasmNode): NameSite[] {
  const out: NameSite[] = []
  for (const { parent, index } of flatten(node)) {
    const s = parent.sections[index]!
    if (s.nested || !isHot(parent.layer, s.id)) {
      continue
    }
    const b = s.body
    for (let j = 0; j < b.length; ) {
      const length = b[j]!
      const fits = length >= 1 && length < 0x80 && j + 1 + length <= b.length
      if (fits && printable(b, j + 1, length)) {
        out.push({ section: s, at: j, length })
        j += 1 + length
      } else {
        j++
      }
    }
  }
  return out
}

function printable(b: Uint8Array, at: number, length: number): boolean {
  let letters = 0
  for (let i = at; i < at + length; i++) {
    const c = b[i]!
    if (c < 0x21 || c > 0x7e) {
      return false
    }
    if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) {
      letters++
    }
  }
  return letters > 0
}

// --- Descriptors ----------------------------------------------------------------------------

/** An edit on a mutant's section tree; indices are taken modulo what exists. */
export type TreeOp =
  | { op: 'dup'; section: number }
  | { op: 'move'; section: number; to: number }
  | { op: 'drop'; section: number }
  | { op: 'retag'; section: number; id: number }
  | { op: 'splice'; section: number; from: number }
  | { op: 'count'; section: number; value: number }
  | { op: 'rename'; site: number; text: number[]; fit: boolean }

/** An edit on a mutant's bytes; positions are taken modulo the length. */
export type ByteOp =
  | { op: 'flip'; at: number; hot: boolean; bit: number }
  | { op: 'set'; at: number; hot: boolean; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: number[] }
  | { op: 'delete'; at: number; length: number }
  | { op: 'repeat'; at: number; length: number; times: number }
  | { op: 'leb'; site: number; value: number; keepWidth: boolean }

/** A component built from scratch to stress one structural dimension. */
export type HostileGen =
  | { gen: 'nested-components'; depth: number }
  | { gen: 'nested-type-decls'; form: 'instance' | 'component' | 'mixed'; depth: number }
  | { gen: 'nested-value-types'; form: ValueForm; depth: number }
  | { gen: 'many-types'; n: number }
  | { gen: 'many-imports'; n: number }
  | { gen: 'many-custom-sections'; n: number }
  | { gen: 'many-core-exports'; n: number }
  | { gen: 'wide-type'; form: 'record' | 'variant' | 'flags' | 'enum' | 'tuple'; n: number }
  | { gen: 'huge-count'; section: number; value: number; tail: number }
  | { gen: 'huge-size'; value: number; width: number }
  | { gen: 'long-name'; where: NamePlace; length: number; fill: number[] }
  | { gen: 'unrolled'; fanout: number; depth: number }
  | { gen: 'deep-blocks'; form: 'block' | 'loop' | 'if'; n: number }
  | { gen: 'big-function'; n: number }
  | { gen: 'many-functions'; n: number }
  | { gen: 'oversize' }

type ValueForm = 'list' | 'option' | 'tuple' | 'record' | 'result'
type NamePlace = 'import' | 'export' | 'core-export' | 'core-import' | 'label' | 'custom'

/** One fuzz input. */
export type FuzzInput =
  | { kind: 'mutant'; base: number; donor: number; tree: TreeOp[]; bytes: ByteOp[] }
  | ({ kind: 'hostile' } & HostileGen)

// --- Arbitraries ----------------------------------------------------------------------------

const anywhere = fc.noBias(fc.nat({ max: 0x7fffffff }))
const INTERESTING_U32 = [
  0,
  1,
  2,
  0x3f,
  0x40,
  0x7f,
  0x80,
  0xff,
  0x3fff,
  0x4000,
  0xffff,
  0x10000,
  100_000,
  100_001,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  2 ** 32,
  2 ** 35 - 1,
]
const lebValue = fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.nat({ max: 1024 }), fc.nat())
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x40, 0x41, 0x42, 0x60, 0x70, 0x0b]

/**
 * Hostile name text, as bytes: what generated JavaScript would choke on or be subverted by,
 * what the name grammar must refuse (non-ASCII, invalid UTF-8, reserved words), and names the
 * grammar allows but that mean something in JavaScript (`then`, `to-string` → `toString`).
 */
const HOSTILE_FRAGMENTS: readonly (string | number[])[] = [
  "'",
  '"',
  '\\',
  '`',
  '${',
  '}',
  '{',
  ')',
  '(',
  ';',
  '\n',
  '\r',
  '\t',
  ' ',
  '\0',
  '\u2028',
  '\u2029',
  '\u200b',
  '\ufeff',
  '\u00a0',
  'é',
  'Ω',
  '中',
  '😀',
  '<script>',
  '*/',
  '//',
  '/*',
  '__proto__',
  'constructor',
  'prototype',
  'then',
  'to-string',
  'value-of',
  'has-own-property',
  'toString',
  '__defineGetter__',
  'eval',
  'import',
  'process',
  'require',
  'globalThis',
  'this',
  '[constructor]',
  '[method]',
  '[static]',
  '[export]',
  'cabi_realloc',
  'memory',
  'run',
  'a-b',
  'A-B',
  'x0',
  '0',
  '1e3',
  '-',
  '.',
  ':',
  '/',
  '@',
  '#',
  '$',
  '$$',
  '_',
  'wasi:cli/run@0.2.3',
  "run'+(process.kill(process.pid,'SIGKILL'),'')+'",
  [0xff],
  [0xfe],
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0x80],
  [0xe2, 0x80],
]
const fragmentBytes = HOSTILE_FRAGMENTS.map((f) =>
  Array.from(typeof f === 'string' ? encoder.encode(f) : f),
)
const hostileText = fc.oneof(
  fc
    .array(fc.constantFrom(...fragmentBytes), { minLength: 1, maxLength: 5 })
    .map((parts) => parts.flat()),
  fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 24 }),
  fc.constantFrom(...fragmentBytes),
)

const renameOp = fc.record({
  op: fc.constant('rename' as const),
  site: anywhere,
  text: hostileText,
  fit: fc.boolean(),
})

/**
 * Renames and count edits are mostly refused by the structure walk; moved, duplicated or
 * dropped sections mostly pass it and are refused by jco, at the cost of a restart of the
 * transpile worker (about a second): those are rarer.
 */
const treeOp: fc.Arbitrary<TreeOp> = fc.oneof(
  fc.record({ op: fc.constant('dup' as const), section: anywhere }),
  fc.record({ op: fc.constant('move' as const), section: anywhere, to: anywhere }),
  fc.record({ op: fc.constant('drop' as const), section: anywhere }),
  fc.record({ op: fc.constant('retag' as const), section: anywhere, id: fc.nat({ max: 15 }) }),
  fc.record({ op: fc.constant('splice' as const), section: anywhere, from: anywhere }),
  {
    arbitrary: fc.record({ op: fc.constant('count' as const), section: anywhere, value: lebValue }),
    weight: 12,
  },
  {
    arbitrary: renameOp,
    weight: 40,
  },
)

/**
 * Whether a flip or set lands where the loader's own structure walk reads: mostly. An edit
 * only jco reads costs a transpile, and a refusal by jco a transpile worker's restart (~1 s).
 */
const hot = fc.oneof(
  { arbitrary: fc.constant(true), weight: 9 },
  { arbitrary: fc.constant(false), weight: 1 },
)

const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('flip' as const),
      at: anywhere,
      hot,
      bit: fc.nat({ max: 7 }),
    }),
    weight: 3,
  },
  fc.record({
    op: fc.constant('set' as const),
    at: anywhere,
    hot,
    value: fc.constantFrom(...INTERESTING_BYTES),
  }),
  fc.record({ op: fc.constant('truncate' as const), at: anywhere }),
  fc.record({
    op: fc.constant('insert' as const),
    at: anywhere,
    bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 }),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    at: anywhere,
    length: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({
    op: fc.constant('repeat' as const),
    at: anywhere,
    length: fc.integer({ min: 1, max: 256 }),
    times: fc.integer({ min: 1, max: 64 }),
  }),
  {
    arbitrary: fc.record({
      op: fc.constant('leb' as const),
      site: anywhere,
      value: lebValue,
      keepWidth: fc.boolean(),
    }),
    weight: 2,
  },
)

/**
 * Mutants of corpus entries (indices are reduced modulo the corpus size in {@link buildInput}):
 * one in thirteen is a bare rename, so hostile names meet the name grammar in otherwise intact
 * components; the rest take one to four byte edits, after at most one tree edit. About one
 * mutant in twenty-five gets past the structure walk (each then costs a transpile, or a
 * transpile worker's restart when jco refuses it: those dominate a run's time).
 */
const mutant = fc
  .oneof(
    {
      arbitrary: fc.record({
        tree: renameOp.map((r): TreeOp[] => [r]),
        bytes: fc.constant<ByteOp[]>([]),
      }),
      weight: 1,
    },
    {
      arbitrary: fc.record({
        tree: fc.array(treeOp, { maxLength: 1 }),
        bytes: fc.array(byteOp, { minLength: 1, maxLength: 4 }),
      }),
      weight: 12,
    },
  )
  .chain((edits) =>
    fc
      .record({ base: anywhere, donor: anywhere })
      .map((seeds) => ({ kind: 'mutant' as const, ...seeds, ...edits })),
  )

const near = (cap: number) => [cap - 1, cap, cap + 1]

const hostileGen: fc.Arbitrary<HostileGen> = fc.oneof(
  fc.record({
    gen: fc.constant('nested-components' as const),
    depth: fc.constantFrom(2, 3, 7, ...near(8), 9, 12, 50, 10_000),
  }),
  fc.record({
    gen: fc.constant('nested-type-decls' as const),
    form: fc.constantFrom('instance' as const, 'component' as const, 'mixed' as const),
    depth: fc.constantFrom(10, ...near(64), 66, 1000, 100_000),
  }),
  fc.record({
    gen: fc.constant('nested-value-types' as const),
    form: fc.constantFrom<ValueForm>('list', 'option', 'tuple', 'record', 'result'),
    depth: fc.constantFrom(10, ...near(64), 1000, 100_001),
  }),
  fc.record({
    gen: fc.constant('many-types' as const),
    n: fc.constantFrom(1000, ...near(100_000), 1_000_000),
  }),
  fc.record({
    gen: fc.constant('many-imports' as const),
    n: fc.constantFrom(1000, ...near(100_000)),
  }),
  fc.record({
    gen: fc.constant('many-custom-sections' as const),
    n: fc.constantFrom(1000, 100_000, 1_000_000),
  }),
  fc.record({
    gen: fc.constant('many-core-exports' as const),
    n: fc.constantFrom(1000, ...near(100_000)),
  }),
  fc.record({
    gen: fc.constant('wide-type' as const),
    form: fc.constantFrom<'record' | 'variant' | 'flags' | 'enum' | 'tuple'>(
      'record',
      'variant',
      'flags',
      'enum',
      'tuple',
    ),
    n: fc.constantFrom(33, 1000, ...near(100_000)),
  }),
  fc.record({
    gen: fc.constant('huge-count' as const),
    section: fc.constantFrom(2, 3, 5, 6, 7, 8, 10, 11),
    value: fc.constantFrom(1_000_000, 0x7fffffff, 0xffffffff),
    tail: fc.nat({ max: 16 }),
  }),
  fc.record({
    gen: fc.constant('huge-size' as const),
    value: fc.constantFrom(0x7fffffff, 0xffffffff, 2 ** 35 - 1, 2 ** 49),
    width: fc.constantFrom(0, 5, 6, 10),
  }),
  {
    arbitrary: fc.record({
      gen: fc.constant('long-name' as const),
      where: fc.constantFrom<NamePlace>(
        'import',
        'export',
        'core-export',
        'core-import',
        'label',
        'custom',
      ),
      length: fc.constantFrom(...near(1024), 4096, 65_536, 1 << 20, 16 << 20),
      fill: fc.oneof(fc.constantFrom(...fragmentBytes), fc.constant<number[]>([0x61])),
    }),
    weight: 2,
  },
  fc.record({
    gen: fc.constant('unrolled' as const),
    fanout: fc.constantFrom(2, 10, 46, 47, 100, 317, 1000),
    depth: fc.integer({ min: 1, max: 7 }),
  }),
  fc.record({
    gen: fc.constant('deep-blocks' as const),
    form: fc.constantFrom('block' as const, 'loop' as const, 'if' as const),
    n: fc.constantFrom(100, 10_000, 100_000, 1_000_000),
  }),
  fc.record({
    gen: fc.constant('big-function' as const),
    n: fc.constantFrom(10_000, 100_000, 1_000_000),
  }),
  fc.record({
    gen: fc.constant('many-functions' as const),
    n: fc.constantFrom(1000, 10_000, 100_000),
  }),
  { arbitrary: fc.record({ gen: fc.constant('oversize' as const) }), weight: 1 },
)

/**
 * Every fuzz input: mostly mutants (each refused or run in microseconds to milliseconds), and
 * about one in eighty a hostile generator (some of which cost a transpile budget).
 *
 * @example
 * const inputs = fc.sample(fuzzInputs, { seed: 1, numRuns: 10_000 })
 */
export const fuzzInputs: fc.Arbitrary<FuzzInput> = fc.oneof(
  { arbitrary: mutant, weight: 79 },
  { arbitrary: hostileGen.map((g) => ({ kind: 'hostile' as const, ...g })), weight: 1 },
)

/** The inputs `0 … count-1` of a seed (prefix-stable: input `i` does not depend on `count`). */
export function sampleInputs(seed: number, count: number): FuzzInput[] {
  return count > 0 ? fc.sample(fuzzInputs, { seed, numRuns: count }) : []
}

// --- Building inputs ------------------------------------------------------------------------

/**
 * The bytes of one input.
 *
 * @example
 * const bytes = buildInput(sampleInputs(1, 10)[3]!, corpus)
 */
export function buildInput(input: FuzzInput, corpus: readonly CorpusEntry[]): Uint8Array {
  if (input.kind === 'mutant') {
    return buildMutant(input, corpus)
  }
  // The hostile sections go into a real action (echo, the corpus's first entry), after its own:
  // a component that exports no `run` would be refused by the world check before jco reads it.
  const hostile = buildHostile(input)
  return concat([corpus[0]!.bytes, hostile.subarray(COMPONENT_HEADER.length)])
}

function buildMutant(
  input: FuzzInput & { kind: 'mutant' },
  corpus: readonly CorpusEntry[],
): Uint8Array {
  const tree = parseTree(corpus[input.base % corpus.length]!.bytes)
  for (const op of input.tree) {
    applyTreeOp(tree, op, corpus[input.donor % corpus.length]!.bytes)
  }
  const { bytes, sites, hot: ranges } = serialize(tree)
  let out = bytes
  for (const op of input.bytes) {
    out = applyByteOp(out, op, sites, ranges)
  }
  return out
}

function applyTreeOp(tree: WasmNode, op: TreeOp, donor: Uint8Array): void {
  if (op.op === 'rename') {
    const sites = nameSites(tree)
    const site = sites[op.site % Math.max(sites.length, 1)]
    if (!site) {
      return
    }
    let text = Uint8Array.from(op.text)
    if (op.fit) {
      // Same length: every size around it stays right, so only the name grammar can refuse it.
      text = Uint8Array.from({ length: site.length }, (_, i) => op.text[i % op.text.length]!)
    }
    const b = site.section.body
    site.section.body = concat([
      b.subarray(0, site.at),
      leb(text.length),
      text,
      b.subarray(site.at + 1 + site.length),
    ])
    return
  }
  const refs = flatten(tree)
  const ref = refs[op.section % Math.max(refs.length, 1)]
  if (!ref) {
    return
  }
  const { parent, index } = ref
  const s = parent.sections[index]!
  switch (op.op) {
    case 'dup':
      parent.sections.splice(index + 1, 0, cloneSection(s))
      return
    case 'move':
      parent.sections.splice(index, 1)
      parent.sections.splice(op.to % (parent.sections.length + 1), 0, s)
      return
    case 'drop':
      parent.sections.splice(index, 1)
      return
    case 'retag':
      s.id = op.id
      return
    case 'splice': {
      const from = flatten(parseTree(donor))
      const picked = from[op.from % Math.max(from.length, 1)]
      if (picked) {
        parent.sections.splice(index, 0, cloneSection(picked.parent.sections[picked.index]!))
      }
      return
    }
    case 'count': {
      // Only where the structure walk reads: a count in core code is jco's business alone.
      const first = s.nested || !isHot(parent.layer, s.id) ? undefined : readLeb(s.body, 0)
      if (first) {
        s.body = concat([leb(op.value), s.body.subarray(first[1])])
      }
      return
    }
  }
}

function applyByteOp(
  bytes: Uint8Array,
  op: ByteOp,
  sites: readonly LebSite[],
  ranges: readonly [number, number][],
): Uint8Array {
  const n = bytes.length
  if (n === 0) {
    return bytes
  }
  switch (op.op) {
    case 'flip': {
      const out = bytes.slice()
      out[position(op.at, n, op.hot, ranges)] ^= 1 << op.bit
      return out
    }
    case 'set': {
      const out = bytes.slice()
      out[position(op.at, n, op.hot, ranges)] = op.value
      return out
    }
    case 'truncate':
      return bytes.slice(0, op.at % n)
    case 'insert': {
      const at = op.at % (n + 1)
      return concat([bytes.subarray(0, at), Uint8Array.from(op.bytes), bytes.subarray(at)])
    }
    case 'delete': {
      const at = op.at % n
      return concat([bytes.subarray(0, at), bytes.subarray(at + op.length)])
    }
    case 'repeat': {
      const at = op.at % n
      const chunk = bytes.subarray(at, at + op.length)
      return concat([bytes.subarray(0, at), repeat(chunk, op.times), bytes.subarray(at)])
    }
    case 'leb': {
      const site = sites[op.site % Math.max(sites.length, 1)]
      if (!site || site.at + site.width > n) {
        return bytes
      }
      const fits = op.value < 2 ** (7 * site.width)
      const value = leb(op.value, op.keepWidth && fits ? site.width : 0)
      return concat([bytes.subarray(0, site.at), value, bytes.subarray(site.at + site.width)])
    }
  }
}

// --- Hostile generators ---------------------------------------------------------------------

/** `() -> ()` as a component function type; `(func)` as a core function type. */
const EMPTY_FUNC_TYPE = Uint8Array.of(0x40, 0x00, 0x01, 0x00)
const CORE_EMPTY_FUNC_TYPE = Uint8Array.of(0x60, 0x00, 0x00)

function buildHostile(g: HostileGen): Uint8Array {
  switch (g.gen) {
    case 'nested-components':
      return nestedComponents(g.depth)
    case 'nested-type-decls': {
      // A type declaring a type declaring a type …: prefix bytes only, no sizes to fix up.
      const levels: Uint8Array[] = []
      for (let i = 0; i < g.depth - 1; i++) {
        const component = g.form === 'component' || (g.form === 'mixed' && i % 2 === 1)
        const form = component ? 0x41 : 0x42
        levels.push(Uint8Array.of(form, 0x01, 0x01))
      }
      levels.push(Uint8Array.of(0x42, 0x00))
      return component(section(7, concat([leb(1), ...levels])))
    }
    case 'nested-value-types': {
      // Type i is built on type i-1: list<list<…<u8>>>, and the last one is exported.
      const types: Uint8Array[] = [Uint8Array.of(0x70, 0x7d)]
      for (let i = 1; i < g.depth; i++) {
        const prev = leb(i - 1)
        types.push(
          g.form === 'list'
            ? concat([Uint8Array.of(0x70), prev])
            : g.form === 'option'
              ? concat([Uint8Array.of(0x6b), prev])
              : g.form === 'tuple'
                ? concat([Uint8Array.of(0x6f, 0x01), prev])
                : g.form === 'record'
                  ? concat([Uint8Array.of(0x72, 0x01), name('f'), prev])
                  : concat([Uint8Array.of(0x6a, 0x01), prev, Uint8Array.of(0x00)]),
        )
      }
      return component(
        section(7, vec(types)),
        section(11, vec([concat([u8(0x00), name('t'), u8(0x03), leb(g.depth - 1), u8(0x00)])])),
      )
    }
    case 'many-types':
      return component(section(7, concat([leb(g.n), repeat(Uint8Array.of(0x70, 0x7d), g.n)])))
    case 'many-imports': {
      const imports = Array.from({ length: g.n }, (_, i) =>
        concat([Uint8Array.of(0x00), name(`f${i}`), Uint8Array.of(0x01), leb(0)]),
      )
      return component(section(7, vec([EMPTY_FUNC_TYPE])), section(10, vec(imports)))
    }
    case 'many-custom-sections':
      return component(repeat(Uint8Array.of(0x00, 0x01, 0x00), g.n))
    case 'many-core-exports': {
      const exports = Array.from({ length: g.n }, (_, i) => concat([name(`m${i}`), u8(0x02, 0x00)]))
      const core = coreModule(section(5, vec([u8(0x00, 0x01)])), section(7, vec(exports)))
      return component(section(1, core))
    }
    case 'wide-type': {
      const items = Array.from({ length: g.n }, (_, i) => {
        const label = name(`c${i}`)
        switch (g.form) {
          case 'record':
            return concat([label, Uint8Array.of(0x7d)])
          case 'variant':
            return concat([label, Uint8Array.of(0x00, 0x00)])
          case 'tuple':
            return Uint8Array.of(0x7d)
          default:
            return label
        }
      })
      const form = { record: 0x72, variant: 0x71, flags: 0x6e, enum: 0x6d, tuple: 0x6f }[g.form]
      return component(section(7, vec([concat([Uint8Array.of(form), vec(items)])])))
    }
    case 'huge-count':
      return component(section(g.section, concat([leb(g.value), new Uint8Array(g.tail)])))
    case 'huge-size':
      return concat([COMPONENT_HEADER, u8(0x07), leb(g.value, g.width), u8(0x00)])
    case 'long-name':
      return longName(g.where, g.length, Uint8Array.from(g.fill))
    case 'unrolled':
      return unrolled(g.fanout, g.depth)
    case 'deep-blocks': {
      // block, loop, or `i32.const 0; if`, each with an empty block type.
      const open = { block: [0x02, 0x40], loop: [0x03, 0x40], if: [0x41, 0x00, 0x04, 0x40] }[g.form]
      const body = concat([
        Uint8Array.of(0x00),
        repeat(Uint8Array.from(open), g.n),
        repeat(Uint8Array.of(0x0b), g.n + 1),
      ])
      return withCoreFunctions([body])
    }
    case 'big-function': {
      // `i32.const 0; drop`, n times.
      const body = concat([u8(0x00), repeat(u8(0x41, 0x00, 0x1a), g.n), u8(0x0b)])
      return withCoreFunctions([body])
    }
    case 'many-functions':
      return withCoreFunctions(Array.from({ length: g.n }, () => Uint8Array.of(0x00, 0x0b)))
    case 'oversize':
      return component(section(0, concat([name('x'), new Uint8Array(64 * 1024 * 1024)])))
  }
}

/** Components nested `depth` deep, written outside in with every size computed up front. */
function nestedComponents(depth: number): Uint8Array {
  const sizes = [COMPONENT_HEADER.length]
  for (let i = 1; i < depth; i++) {
    const inner = sizes[i - 1]!
    sizes.push(COMPONENT_HEADER.length + 1 + leb(inner).length + inner)
  }
  const out = new Uint8Array(sizes[depth - 1]!)
  let at = 0
  for (let i = depth - 1; i >= 0; i--) {
    out.set(COMPONENT_HEADER, at)
    at += COMPONENT_HEADER.length
    if (i > 0) {
      const size = leb(sizes[i - 1]!)
      out[at++] = 0x04
      out.set(size, at)
      at += size.length
    }
  }
  return out
}

/** A component whose instantiations, unrolled, are `fanout ^ depth` instances. */
function unrolled(fanout: number, depth: number): Uint8Array {
  // The innermost component defines one (empty) instance.
  let inner = component(section(5, vec([Uint8Array.of(0x01, 0x00)])))
  for (let d = 0; d < depth; d++) {
    const instances = vec(Array.from({ length: fanout }, () => Uint8Array.of(0x00, 0x00, 0x00)))
    inner = component(section(4, inner), section(5, instances))
  }
  return inner
}

/** A component holding one core module of `(func)` functions with the given bodies. */
function withCoreFunctions(bodies: readonly Uint8Array[]): Uint8Array {
  const core = coreModule(
    section(1, vec([CORE_EMPTY_FUNC_TYPE])),
    section(3, concat([leb(bodies.length), new Uint8Array(bodies.length)])),
    section(10, vec(bodies.map((b) => concat([leb(b.length), b])))),
  )
  return component(section(1, core))
}

/** A name of `length` bytes (the fill repeated) in one place of an otherwise valid component. */
function longName(where: NamePlace, length: number, fill: Uint8Array): Uint8Array {
  const text = new Uint8Array(length)
  for (let i = 0; i < length; i++) {
    text[i] = fill[i % fill.length]!
  }
  switch (where) {
    case 'import':
      return component(
        section(7, vec([EMPTY_FUNC_TYPE])),
        section(10, vec([concat([Uint8Array.of(0x00), name(text), Uint8Array.of(0x01), leb(0)])])),
      )
    case 'export':
      return component(
        section(7, vec([EMPTY_FUNC_TYPE])),
        section(11, vec([concat([u8(0x00), name(text), u8(0x03), leb(0), u8(0x00)])])),
      )
    case 'core-export':
      return component(
        section(
          1,
          coreModule(
            section(5, vec([u8(0x00, 0x01)])),
            section(7, vec([concat([name(text), u8(0x02, 0x00)])])),
          ),
        ),
      )
    case 'core-import':
      return component(
        // (import "env" "<text>" (memory 1))
        section(1, coreModule(section(2, vec([concat([name('env'), name(text), u8(2, 0, 1)])])))),
      )
    case 'label':
      return component(section(7, vec([concat([u8(0x72), vec([concat([name(text), u8(0x7d)])])])])))
    case 'custom':
      return component(section(0, concat([name(text), Uint8Array.of(1, 2, 3)])))
  }
}

/**
 * One line saying what an input is, for reports: the seed it mutates and its edits, or the
 * generator and its size. Long byte arrays are shortened.
 *
 * @example
 * describeInput(input, corpus) // 'mutant of test/guests/echo.wat: rename(site 3, fit, 27 60 …)'
 */
export function describeInput(input: FuzzInput, corpus: readonly CorpusEntry[]): string {
  const bytes = (b: readonly number[]) =>
    b
      .slice(0, 8)
      .map((x) => x.toString(16).padStart(2, '0'))
      .join(' ') + (b.length > 8 ? ' …' : '')
  const shown = (params: object) =>
    Object.entries(params)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${bytes(v as number[])}]` : String(v)}`)
      .join(', ')
  if (input.kind === 'hostile') {
    const { kind: _kind, gen, ...params } = input
    return `hostile ${gen}(${shown(params)})`
  }
  const ops = [...input.tree, ...input.bytes].map(({ op, ...rest }) => `${op}(${shown(rest)})`)
  const base = corpus[input.base % corpus.length]?.name ?? '?'
  return `mutant of ${base}: ${ops.join(' ')}`
}
