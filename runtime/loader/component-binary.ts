/**
 * A bounded walk over the component-model binary format, run on every upload before jco sees
 * it (issue 6). jco 1.11.2 pastes names from the component into the glue it generates, so
 * every name the component carries is checked against the grammar in `names.ts`; and jco's
 * time and stack grow with nesting and fan-out, so the structure is checked against the caps
 * below. To follow value-type depth and unrolled instantiations, the walk keeps the type,
 * instance and component index spaces of each scope (nothing else).
 *
 * The format is component-model `design/mvp/Binary.md` as wasmparser 0.227 (the one inside
 * jco 1.11.2) reads it; anything it would not read, or that no toolchain targeting jco
 * writes (value and start definitions, GC core types), is refused. The walk is linear in the
 * input, recurses only through depth-capped nesting, and throws nothing but `WardenError`
 * with code `invalid_component`. See docs/component-names.md.
 */
import { WardenError } from '../errors.js'
import { checkName, MAX_NAME_BYTES } from './names.js'
import type { NameKind } from './names.js'

/** Components nested inside components, counting the outer one. Toolchains write ≤ 2. */
export const MAX_COMPONENT_DEPTH = 8
/**
 * Types nested inside one another: component, instance and module types declared inside each
 * other, and value types built on each other (a list of a record of a list …), followed
 * through imports, aliases and instantiations. WASI's deepest is 7; jco's wasmtime refuses
 * past 100, and past a few hundred it traps and leaves its instance broken.
 */
export const MAX_TYPE_DEPTH = 64
/** Components in the upload, nested ones included. */
export const MAX_COMPONENTS = 1_000
/** Core modules in the upload, across all nested components. */
export const MAX_CORE_MODULES = 1_000
/** Core and component instance definitions, across all nested components. */
export const MAX_INSTANCES = 100_000
/** Core and component types, declarations inside types included. */
export const MAX_TYPES = 100_000
/** Alias definitions and declarations. */
export const MAX_ALIASES = 100_000
/**
 * Imports and exports: component-level, declared inside types, and those of every core
 * module.
 */
export const MAX_IMPORTS_EXPORTS = 100_000
/** Canonical definitions (`canon lift`, `canon lower`, resource and async built-ins). */
export const MAX_CANONICALS = 100_000
/** Names of every kind, labels in types included (each is checked, and kept for the result). */
export const MAX_NAMES = 100_000
/**
 * Core instances, component instances and canonical definitions once every nested
 * component instantiation is unrolled, as jco's glue is: a component instantiated 100 times
 * inside one instantiated 100 times is 10,000 copies of its definitions.
 */
export const MAX_FLATTENED_DEFINITIONS = 100_000
/**
 * Sections of every component and core module, custom sections included: a million empty
 * custom sections cost jco seconds while this walk skips them (found by npm run fuzz).
 */
export const MAX_SECTIONS = 10_000
/**
 * What making every core instance of the component may cost V8, in bytes: each instantiation
 * of a core module counts its data and element sections' sizes (the bytes it copies) and
 * {@link TABLE_ENTRY_BYTES} per entry of the tables it defines, summed over the instantiations
 * once nested ones are unrolled. A few KB that instantiate a 100,000-entry table 990 times
 * cost V8 1.3 s, in tables outside the memory cap (the eleventh outside attack); real builds
 * cost their data once (a componentize-js build, the built-in JS agent among them, ~3 MB).
 * Twice the default upload cap: ~0.1 s of V8's time at most. A host may set its own
 * (`RuntimeOptions.maxInstantiationBytes`).
 */
export const DEFAULT_MAX_INSTANTIATION_BYTES = 128 * 1024 * 1024
/**
 * A table entry, as instantiation work: V8 fills a slot and, for `funcref`, a dispatch entry
 * per entry. Measured (node 20, 2 × AMD EPYC): a million-entry table costs 24–34 ms to
 * instantiate, 16 MB of data 10–12 ms, so an entry costs what 34–48 bytes of data cost.
 */
export const TABLE_ENTRY_BYTES = 64

/** What {@link checkComponentStructure} counted. */
export interface ComponentCounts {
  sections: number
  components: number
  coreModules: number
  instances: number
  types: number
  aliases: number
  importsExports: number
  canonicals: number
  names: number
  /** Instances and canonical definitions with nested instantiations unrolled (root only). */
  flattened: number
  /**
   * Bytes of instantiation work, unrolled (see {@link DEFAULT_MAX_INSTANTIATION_BYTES}); a core
   * instance of a module the walk cannot see (imported, or an instance's export) counts as
   * the largest module in the upload.
   */
  instantiationBytes: number
}

/** One name found in the component, with where it was found. */
export interface ComponentName {
  kind: NameKind
  name: string
  where: string
}

/** The result of a walk that found nothing to refuse. */
export interface ComponentStructure {
  counts: ComponentCounts
  names: ComponentName[]
}

type CountedKey = Exclude<keyof ComponentCounts, 'flattened' | 'instantiationBytes'>

const WHAT: Readonly<Record<CountedKey, string>> = {
  sections: 'sections',
  components: 'components',
  coreModules: 'core modules',
  instances: 'instances',
  types: 'types',
  aliases: 'aliases',
  importsExports: 'imports and exports',
  canonicals: 'canonical definitions',
  names: 'names',
}

const CAPS: Readonly<Record<CountedKey, number>> = {
  sections: MAX_SECTIONS,
  components: MAX_COMPONENTS,
  coreModules: MAX_CORE_MODULES,
  instances: MAX_INSTANCES,
  types: MAX_TYPES,
  aliases: MAX_ALIASES,
  importsExports: MAX_IMPORTS_EXPORTS,
  canonicals: MAX_CANONICALS,
  names: MAX_NAMES,
}

/**
 * Walk a component's bytes: every name must match its grammar (`names.ts`) and the structure
 * must stay within the caps above. Throws `WardenError('invalid_component')` otherwise,
 * including for truncated, malformed or unknown encodings. Call it after
 * `checkComponentBytes`, before anything else parses the bytes.
 *
 * @example
 * checkComponentBytes(bytes)
 * const { counts } = checkComponentStructure(bytes)
 */
export function checkComponentStructure(
  bytes: Uint8Array,
  options: { maxInstantiationBytes?: number | undefined } = {},
): ComponentStructure {
  const w = new Walk(options.maxInstantiationBytes ?? DEFAULT_MAX_INSTANTIATION_BYTES)
  try {
    const root = component(w, new ByteReader(bytes, 0, bytes.length), 1, undefined)
    const instantiationBytes = w.instantiationBytes(root, bytes.length)
    return { counts: { ...w.counts, flattened: root.weight, instantiationBytes }, names: w.names }
  } catch (error) {
    if (error instanceof WardenError) {
      throw error
    }
    // NB: a bug in this walk must refuse the upload, not crash the loader or let it through.
    throw new WardenError('invalid_component', 'the component could not be read', {
      cause: error,
    })
  }
}

function invalid(message: string, at: number): WardenError {
  return new WardenError('invalid_component', `malformed component: ${message} (at byte ${at})`)
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`
}

const utf8 = new TextDecoder('utf-8', { fatal: false })

/** Reads LEB128 integers, bytes and names from `bytes[pos, end)`; never past `end`. */
export class ByteReader {
  readonly bytes: Uint8Array
  readonly end: number
  pos: number

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.bytes = bytes
    this.pos = start
    this.end = end
  }

  get done(): boolean {
    return this.pos >= this.end
  }

  byte(what: string): number {
    if (this.pos >= this.end) {
      throw invalid(`unexpected end of ${what}`, this.pos)
    }
    return this.bytes[this.pos++]!
  }

  peek(what: string): number {
    if (this.pos >= this.end) {
      throw invalid(`unexpected end of ${what}`, this.pos)
    }
    return this.bytes[this.pos]!
  }

  /** Unsigned LEB128 of at most 5 bytes and 32 bits. */
  u32(what: string): number {
    const at = this.pos
    let value = 0
    for (let i = 0; i < 5; i++) {
      const b = this.byte(what)
      if (i === 4 && b > 0x0f) {
        throw invalid(`${what}: integer too long or too large`, at)
      }
      value += (b & 0x7f) * 2 ** (7 * i)
      if (b < 0x80) {
        return value
      }
    }
    throw invalid(`${what}: integer too long`, at)
  }

  /** Unsigned LEB128 of at most 10 bytes (memory64 and table64 limits); past 2^53, rounded. */
  u64(what: string): number {
    const at = this.pos
    let value = 0
    for (let i = 0; i < 10; i++) {
      const b = this.byte(what)
      if (i === 9 && b > 0x01) {
        throw invalid(`${what}: integer too long or too large`, at)
      }
      value += (b & 0x7f) * 2 ** (7 * i)
      if (b < 0x80) {
        return value
      }
    }
    throw invalid(`${what}: integer too long`, at)
  }

  /** A type index written as a signed 33-bit LEB128; negative values are refused. */
  index33(what: string): number {
    const at = this.pos
    let value = 0
    for (let i = 0; i < 5; i++) {
      const b = this.byte(what)
      value += (b & 0x7f) * 2 ** (7 * i)
      if (b < 0x80) {
        if (b & 0x40) {
          value -= 2 ** (7 * (i + 1))
        }
        if (value < 0 || value > 0xffff_ffff) {
          throw invalid(`${what}: ${value < 0 ? 'unknown type code' : 'index too large'}`, at)
        }
        return value
      }
    }
    throw invalid(`${what}: integer too long`, at)
  }

  /** A vector length; each element takes at least one byte, so it can't pass the end. */
  count(what: string): number {
    const at = this.pos
    const n = this.u32(what)
    if (n > this.end - this.pos) {
      throw invalid(`${what}: ${n} entries in ${this.end - this.pos} bytes`, at)
    }
    return n
  }

  /** A length-prefixed byte range, returned as its own reader; this one moves past it. */
  sub(what: string): ByteReader {
    const at = this.pos
    const size = this.u32(what)
    if (size > this.end - this.pos) {
      throw invalid(`${what} of ${size} bytes runs past its end`, at)
    }
    const inner = new ByteReader(this.bytes, this.pos, this.pos + size)
    this.pos += size
    return inner
  }

  /** A length-prefixed string of at most {@link MAX_NAME_BYTES} bytes. */
  string(what: string): string {
    const at = this.pos
    const size = this.u32(what)
    if (size > MAX_NAME_BYTES) {
      throw invalid(`${what} is ${size} bytes, over the ${MAX_NAME_BYTES} byte cap`, at)
    }
    if (size > this.end - this.pos) {
      throw invalid(`${what} runs past its end`, at)
    }
    // Not fatal: a non-UTF-8 name decodes with U+FFFD, which no grammar admits.
    const text = utf8.decode(this.bytes.subarray(this.pos, this.pos + size))
    this.pos += size
    return text
  }

  header(layer: 0 | 1, what: string): void {
    const want = layer === 0 ? CORE_HEADER : COMPONENT_HEADER
    for (const b of want) {
      if (this.byte(what) !== b) {
        throw invalid(`bad ${what} header`, this.pos - 1)
      }
    }
  }

  expectEnd(what: string): void {
    if (this.pos !== this.end) {
      throw invalid(`${what} has ${this.end - this.pos} bytes left over`, this.pos)
    }
  }
}

const CORE_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]
const COMPONENT_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]

// Component-level sorts (Binary.md `sort`): a core sort follows 0x00.
const SORT_TYPE = 0x03
const SORT_COMPONENT = 0x04
const SORT_INSTANCE = 0x05
const COMPONENT_SORTS = new Set([0x01, 0x02, 0x03, 0x04, 0x05])
const CORE_MODULE_SORT = 0x11
const CORE_TYPE_SORT = 0x10
const CORE_EXTERNAL_KIND_MAX = 0x04

// Component primitive value types (Binary.md `primvaltype`).
const PRIMITIVES = new Set([
  0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x7a, 0x79, 0x78, 0x77, 0x76, 0x75, 0x74, 0x73, 0x64,
])
// Core value types and abstract heap types (wasmparser 0.227 `ValType`, `AbstractHeapType`).
const CORE_NUMBER_TYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b])
const CORE_HEAP_TYPES = new Set([
  0x70, 0x6f, 0x6e, 0x71, 0x72, 0x73, 0x6d, 0x6b, 0x6a, 0x6c, 0x69, 0x74, 0x68, 0x75,
])

/** The immediates of each canonical definition (wasmparser 0.227 `CanonicalFunction`). */
export type Immediate = 'zero' | 'u32' | 'opts' | 'bool' | 'results'
export const CANONICALS = new Map<number, readonly Immediate[]>([
  [0x00, ['zero', 'u32', 'opts', 'u32']], // lift
  [0x01, ['zero', 'u32', 'opts']], // lower
  [0x02, ['u32']], // resource.new
  [0x03, ['u32']], // resource.drop
  [0x07, ['u32']], // resource.drop async
  [0x04, ['u32']], // resource.rep
  [0x05, ['u32']], // thread.spawn
  [0x06, []], // thread.available_parallelism
  [0x08, []], // backpressure.set
  [0x09, ['results', 'opts']], // task.return
  [0x0c, ['bool']], // yield
  [0x0d, []], // subtask.drop
  [0x0e, ['u32']], // stream.new
  [0x0f, ['u32', 'opts']], // stream.read
  [0x10, ['u32', 'opts']], // stream.write
  [0x11, ['u32', 'bool']], // stream.cancel-read
  [0x12, ['u32', 'bool']], // stream.cancel-write
  [0x13, ['u32']], // stream.close-readable
  [0x14, ['u32']], // stream.close-writable
  [0x15, ['u32']], // future.new
  [0x16, ['u32', 'opts']], // future.read
  [0x17, ['u32', 'opts']], // future.write
  [0x18, ['u32', 'bool']], // future.cancel-read
  [0x19, ['u32', 'bool']], // future.cancel-write
  [0x1a, ['u32']], // future.close-readable
  [0x1b, ['u32']], // future.close-writable
  [0x1c, ['opts']], // error-context.new
  [0x1d, ['opts']], // error-context.debug-message
  [0x1e, []], // error-context.drop
  [0x1f, []], // waitable-set.new
  [0x20, ['bool', 'u32']], // waitable-set.wait
  [0x21, ['bool', 'u32']], // waitable-set.poll
  [0x22, []], // waitable-set.drop
  [0x23, []], // waitable.join
])
// Canonical options: which take a u32 index (memory, realloc, post-return, callback).
const OPTIONS_WITH_INDEX = new Set([0x03, 0x04, 0x05, 0x07])
const OPTIONS_BARE = new Set([0x00, 0x01, 0x02, 0x06])

// --- What the walk keeps --------------------------------------------------------------------

/** What the walk knows of one entry in a type, instance or component index space. */
interface Item {
  /** Types: how deeply value types nest in it (0 for a primitive). */
  depth: number
  /** Components: their definitions once nested instantiations are unrolled. */
  weight: number
  /** Components: the instantiation work of the core modules the walk sees, unrolled. */
  bytes: number
  /** Components: core instances of modules the walk cannot see, unrolled. */
  opaque: number
  /** Instances, components and instance or component types: their exports, by name. */
  exports: ReadonlyMap<string, Item> | undefined
}

/**
 * A component definition, or a component or instance type: its type, instance and component
 * index spaces (the ones value-type depth and unrolled weight flow through), and its exports.
 */
class Scope {
  readonly label: string
  readonly parent: Scope | undefined
  readonly types: Item[] = []
  readonly instances: Item[] = []
  readonly components: Item[] = []
  readonly exports = new Map<string, Item>()
  /** The core module index space: each module's instantiation work, if the walk sees it. */
  readonly modules: (number | undefined)[] = []
  weight = 0
  bytes = 0
  opaque = 0

  constructor(label: string, parent: Scope | undefined) {
    this.label = label
    this.parent = parent
  }

  /** The index space of a sort, if the walk tracks it. */
  space(sort: number): Item[] | undefined {
    return sort === SORT_TYPE
      ? this.types
      : sort === SORT_INSTANCE
        ? this.instances
        : sort === SORT_COMPONENT
          ? this.components
          : undefined
  }

  /** The scope `count` levels out (outer aliases). */
  outer(count: number): Scope | undefined {
    let scope: Scope | undefined = this
    for (let i = 0; i < count && scope; i++) {
      scope = scope.parent
    }
    return scope
  }
}

/** Counts, names, and the deepest value type so far; shared by every reader below. */
class Walk {
  readonly counts: Record<CountedKey, number> = {
    sections: 0,
    components: 0,
    coreModules: 0,
    instances: 0,
    types: 0,
    aliases: 0,
    importsExports: 0,
    canonicals: 0,
    names: 0,
  }
  readonly names: ComponentName[] = []
  deepest = 0
  /** The instantiation work of the costliest core module in the upload. */
  largestModule = 0
  /** The cap on the root's instantiation work. */
  readonly maxInstantiationBytes: number

  constructor(maxInstantiationBytes: number) {
    this.maxInstantiationBytes = maxInstantiationBytes
  }

  count(key: CountedKey, at: number): void {
    if (++this.counts[key] > CAPS[key]) {
      throw new WardenError(
        'invalid_component',
        `the component has more than ${CAPS[key]} ${WHAT[key]} (at byte ${at})`,
      )
    }
  }

  name(r: ByteReader, kind: NameKind, where: string): string {
    this.count('names', r.pos)
    const name = r.string(where)
    checkName(kind, name, where)
    this.names.push({ kind, name, where })
    return name
  }

  /** `vec(T)`: the count, then `each` once per element. */
  vec(r: ByteReader, what: string, each: () => void): void {
    for (let n = r.count(what); n > 0; n--) {
      each()
    }
  }

  /**
   * An entry the walk cannot follow (an export of an instance it knows nothing of, an index
   * out of range: validation refuses those later). Every type is defined earlier in the bytes
   * than any use of it, so the deepest type so far bounds its depth.
   */
  unknown(): Item {
    return item({ depth: this.deepest })
  }

  /** Entry `index` of a sort's index space; a component must exist (its weight matters). */
  lookup(scope: Scope, sort: number, index: number, at: number): Item | undefined {
    const space = scope.space(sort)
    if (!space) {
      return undefined
    }
    const item = space[index]
    if (!item && sort === SORT_COMPONENT) {
      throw invalid(`component index ${index} out of range`, at)
    }
    return item ?? this.unknown()
  }

  /** Add to a scope's unrolled weight, saturating just past the cap. */
  weigh(scope: Scope, weight: number, at: number): void {
    scope.weight = Math.min(scope.weight + weight, MAX_FLATTENED_DEFINITIONS + 1)
    if (scope.weight > MAX_FLATTENED_DEFINITIONS) {
      throw new WardenError(
        'invalid_component',
        `the component unrolls to more than ${MAX_FLATTENED_DEFINITIONS} instances and ` +
          `canonical definitions (at byte ${at})`,
      )
    }
  }

  /**
   * Add to a scope's unrolled instantiation work: `bytes` seen, and `opaque` core instances
   * of modules not seen. Saturates just past the cap, refusing once what is seen passes it.
   */
  instantiate(scope: Scope, bytes: number, opaque: number, at: number): void {
    const cap = this.maxInstantiationBytes
    scope.bytes = Math.min(scope.bytes + bytes, cap + 1)
    scope.opaque = Math.min(scope.opaque + opaque, MAX_FLATTENED_DEFINITIONS + 1)
    if (scope.bytes > cap) {
      throw tooCostly(cap, at)
    }
  }

  /** The root's instantiation work, unseen modules counted as the costliest; refused past the cap. */
  instantiationBytes(root: Item, at: number): number {
    const total = root.bytes + root.opaque * this.largestModule
    if (total > this.maxInstantiationBytes) {
      throw tooCostly(this.maxInstantiationBytes, at)
    }
    return total
  }

  /** A value type `depth` deep was defined. */
  deepen(depth: number, at: number): number {
    if (depth > MAX_TYPE_DEPTH) {
      throw new WardenError(
        'invalid_component',
        `value types are nested more than ${MAX_TYPE_DEPTH} deep (at byte ${at})`,
      )
    }
    this.deepest = Math.max(this.deepest, depth)
    return depth
  }
}

function item(fields: Partial<Item>): Item {
  return { depth: 0, weight: 0, bytes: 0, opaque: 0, exports: undefined, ...fields }
}

function tooCostly(cap: number, at: number): WardenError {
  return new WardenError(
    'invalid_component',
    `instantiating the component would copy or allocate more than ${cap} bytes of data, ` +
      `elements and tables (at byte ${at})`,
  )
}

// --- Components and their sections ----------------------------------------------------------

/** Walk one component nested `depth` deep; returns it as an entry of its parent's space. */
function component(w: Walk, r: ByteReader, depth: number, parent: Scope | undefined): Item {
  if (depth > MAX_COMPONENT_DEPTH) {
    throw new WardenError(
      'invalid_component',
      `components are nested more than ${MAX_COMPONENT_DEPTH} deep (at byte ${r.pos})`,
    )
  }
  w.count('components', r.pos)
  const scope = new Scope(`component ${w.counts.components - 1}`, parent)
  r.header(1, scope.label)
  while (!r.done) {
    w.count('sections', r.pos)
    const id = r.byte('section id')
    const body = r.sub(`section ${id} of ${scope.label}`)
    section(w, id, body, depth, scope)
    body.expectEnd(`section ${id} of ${scope.label}`)
  }
  return item({
    weight: scope.weight,
    bytes: scope.bytes,
    opaque: scope.opaque,
    exports: scope.exports,
  })
}

function section(w: Walk, id: number, r: ByteReader, depth: number, scope: Scope): void {
  const c = scope.label
  switch (id) {
    case 0: // custom: jco writes nothing from it into the glue
      r.pos = r.end
      return
    case 1: {
      const bytes = coreModule(w, r)
      w.largestModule = Math.max(w.largestModule, bytes)
      scope.modules.push(bytes)
      return
    }
    case 2:
      return w.vec(r, `core instances of ${c}`, () => coreInstance(w, r, scope))
    case 3:
      return w.vec(r, `core types of ${c}`, () => coreType(w, r, 1, c))
    case 4:
      scope.components.push(component(w, r, depth + 1, scope))
      return
    case 5:
      return w.vec(r, `instances of ${c}`, () => instance(w, r, scope))
    case 6:
      return w.vec(r, `aliases of ${c}`, () => alias(w, r, scope))
    case 7:
      return w.vec(r, `types of ${c}`, () => void scope.types.push(type(w, r, 1, scope)))
    case 8:
      return w.vec(r, `canonical definitions of ${c}`, () => canonical(w, r, scope))
    case 10:
      return w.vec(r, `imports of ${c}`, () => importDecl(w, r, scope, `import name of ${c}`))
    case 11:
      return w.vec(r, `exports of ${c}`, () => exportDef(w, r, scope))
    default:
      // 9 (start) and 12 (values) are the 🪙 value definitions: no toolchain writes them.
      throw invalid(`unsupported section id ${id} in ${c}`, r.pos)
  }
}

function coreInstance(w: Walk, r: ByteReader, scope: Scope): void {
  const at = r.pos
  w.count('instances', at)
  const form = r.byte('core instance')
  if (form === 0x00) {
    const bytes = scope.modules[r.u32('core module index')]
    w.instantiate(scope, bytes ?? 0, bytes === undefined ? 1 : 0, at)
    w.vec(r, 'core instantiation arguments', () => {
      w.name(r, 'core', `core instantiation argument name in ${scope.label}`)
      if (r.byte('core instantiation argument kind') !== 0x12) {
        throw invalid('core instantiation argument is not an instance', r.pos - 1)
      }
      r.u32('core instance index')
    })
  } else if (form === 0x01) {
    w.vec(r, 'core inline exports', () => {
      w.name(r, 'core', `core inline export name in ${scope.label}`)
      coreExternalKind(r)
      r.u32('core index')
    })
  } else {
    throw invalid(`unknown core instance form ${hex(form)}`, r.pos - 1)
  }
  w.weigh(scope, 1, at)
}

function instance(w: Walk, r: ByteReader, scope: Scope): void {
  const at = r.pos
  w.count('instances', at)
  const form = r.byte('instance')
  if (form === 0x00) {
    const instantiated = w.lookup(scope, SORT_COMPONENT, r.u32('component index'), at)!
    w.vec(r, 'instantiation arguments', () => {
      w.name(r, 'extern', `instantiation argument name in ${scope.label}`)
      sort(r)
      r.u32('instantiation argument index')
    })
    scope.instances.push(item({ exports: instantiated.exports }))
    w.weigh(scope, 1 + instantiated.weight, at)
    w.instantiate(scope, instantiated.bytes, instantiated.opaque, at)
  } else if (form === 0x01) {
    const exports = new Map<string, Item>()
    w.vec(r, 'inline exports', () => {
      const name = externName(w, r, `inline export name in ${scope.label}`)
      const s = sort(r)
      const exported = w.lookup(scope, s, r.u32('inline export index'), at)
      if (exported) {
        exports.set(name, exported)
      }
    })
    scope.instances.push(item({ exports }))
    w.weigh(scope, 1, at)
  } else {
    throw invalid(`unknown instance form ${hex(form)}`, r.pos - 1)
  }
}

/** An alias definition or declaration: in a component, or in a component or instance type. */
function alias(w: Walk, r: ByteReader, scope: Scope): void {
  const at = r.pos
  w.count('aliases', at)
  const s = r.byte('alias sort')
  const coreSort = s === 0x00 ? r.byte('alias core sort') : -1
  const target = r.byte('alias target')
  if (target === 0x00) {
    if (s === 0x00 ? coreSort !== CORE_MODULE_SORT : !COMPONENT_SORTS.has(s)) {
      throw invalid(`unknown alias sort ${hex(s)}`, at)
    }
    const from = w.lookup(scope, SORT_INSTANCE, r.u32('instance index'), at)!
    const name = w.name(r, 'extern', `alias export name in ${scope.label}`)
    if (s === 0x00) {
      scope.modules.push(undefined)
    }
    scope.space(s)?.push(from.exports?.get(name) ?? w.unknown())
  } else if (target === 0x01) {
    if (s !== 0x00 || coreSort > CORE_EXTERNAL_KIND_MAX) {
      throw invalid(`unknown core alias sort`, at)
    }
    r.u32('core instance index')
    w.name(r, 'core', `core alias export name in ${scope.label}`)
  } else if (target === 0x02) {
    const known =
      s === 0x00
        ? coreSort === CORE_TYPE_SORT || coreSort === CORE_MODULE_SORT
        : s === SORT_TYPE || s === SORT_COMPONENT
    if (!known) {
      throw invalid(`unknown outer alias sort ${hex(s)}`, at)
    }
    const outer = scope.outer(r.u32('outer alias count'))
    const index = r.u32('outer alias index')
    if (coreSort === CORE_MODULE_SORT) {
      scope.modules.push(outer?.modules[index])
    } else if (s !== 0x00) {
      if (!outer) {
        throw invalid('outer alias past the outermost component', at)
      }
      scope.space(s)!.push(w.lookup(outer, s, index, at)!)
    }
  } else {
    throw invalid(`unknown alias target ${hex(target)}`, r.pos - 1)
  }
}

function canonical(w: Walk, r: ByteReader, scope: Scope): void {
  const at = r.pos
  w.count('canonicals', at)
  const op = r.byte('canonical definition')
  const immediates = CANONICALS.get(op)
  if (!immediates) {
    throw invalid(`unknown canonical definition ${hex(op)}`, at)
  }
  for (const immediate of immediates) {
    canonicalImmediate(w, r, immediate, scope)
  }
  w.weigh(scope, 1, at)
}

function canonicalImmediate(w: Walk, r: ByteReader, immediate: Immediate, scope: Scope): void {
  switch (immediate) {
    case 'zero':
      if (r.byte('canonical definition') !== 0x00) {
        throw invalid('canonical lift or lower of a non-function', r.pos - 1)
      }
      return
    case 'u32':
      r.u32('canonical index')
      return
    case 'bool':
      if (r.byte('canonical flag') > 0x01) {
        throw invalid('canonical flag is not 0 or 1', r.pos - 1)
      }
      return
    case 'results':
      return resultList(w, r, scope)
    case 'opts':
      return w.vec(r, 'canonical options', () => {
        const option = r.byte('canonical option')
        if (OPTIONS_WITH_INDEX.has(option)) {
          r.u32('canonical option index')
        } else if (!OPTIONS_BARE.has(option)) {
          throw invalid(`unknown canonical option ${hex(option)}`, r.pos - 1)
        }
      })
  }
}

/**
 * An import, or an import or export declared in a type: a name and an `externtype`. Returns
 * the name and what the import adds to its index space.
 */
function importDecl(w: Walk, r: ByteReader, scope: Scope, where: string): [string, Item?] {
  w.count('importsExports', r.pos)
  const name = externName(w, r, where)
  const [s, imported] = externType(w, r, scope)
  if (s === 0x00) {
    scope.modules.push(undefined)
  }
  if (imported) {
    scope.space(s)?.push(imported)
  }
  return [name, imported]
}

function exportDef(w: Walk, r: ByteReader, scope: Scope): void {
  const at = r.pos
  w.count('importsExports', at)
  const name = externName(w, r, `export name of ${scope.label}`)
  const s = sort(r)
  const index = r.u32('export index')
  const exported = w.lookup(scope, s, index, at)
  if (s === 0x00) {
    scope.modules.push(scope.modules[index])
  }
  const ascribed = r.byte('export type flag')
  if (ascribed === 0x01) {
    externType(w, r, scope)
  } else if (ascribed !== 0x00) {
    throw invalid(`bad export type flag ${hex(ascribed)}`, r.pos - 1)
  }
  if (exported) {
    scope.space(s)?.push(exported)
    scope.exports.set(name, exported)
  }
}

/** An import or export name: a 0x00 or 0x01 tag (wasmparser 0.227 reads both), the name. */
function externName(w: Walk, r: ByteReader, where: string): string {
  const tag = r.byte(where)
  if (tag > 0x01) {
    throw invalid(`unknown name tag ${hex(tag)} for ${where}`, r.pos - 1)
  }
  return w.name(r, 'extern', where)
}

/** A component-level sort; returns its first byte (0x00 for a core module). */
function sort(r: ByteReader): number {
  const s = r.byte('sort')
  if (s === 0x00) {
    if (r.byte('core sort') !== CORE_MODULE_SORT) {
      throw invalid('only core modules are component-level core sorts', r.pos - 1)
    }
  } else if (!COMPONENT_SORTS.has(s)) {
    throw invalid(`unknown sort ${hex(s)}`, r.pos - 1)
  }
  return s
}

/** `externtype`: its sort, and the entry it describes when the walk tracks that sort. */
function externType(w: Walk, r: ByteReader, scope: Scope): [number, Item?] {
  const at = r.pos
  const s = sort(r)
  switch (s) {
    case 0x02: // value
      valType(w, r, scope)
      return [s]
    case SORT_TYPE: {
      const bound = r.byte('type bound')
      if (bound === 0x00) {
        return [s, w.lookup(scope, SORT_TYPE, r.u32('type index'), at)]
      }
      if (bound !== 0x01) {
        throw invalid(`unknown type bound ${hex(bound)}`, r.pos - 1)
      }
      return [s, item({ depth: 1 })] // (sub resource): a fresh resource
    }
    case SORT_INSTANCE:
    case SORT_COMPONENT: {
      const described = w.lookup(scope, SORT_TYPE, r.u32('type index'), at)!
      return [s, item({ exports: described.exports })]
    }
    default:
      r.u32('type index')
      return [s]
  }
}

// --- Component types ------------------------------------------------------------------------

/** `type` (Binary.md `deftype`), declared `depth` types deep; returns its entry. */
function type(w: Walk, r: ByteReader, depth: number, scope: Scope): Item {
  const at = r.pos
  if (depth > MAX_TYPE_DEPTH) {
    throw new WardenError(
      'invalid_component',
      `types are declared more than ${MAX_TYPE_DEPTH} deep (at byte ${at})`,
    )
  }
  w.count('types', at)
  const form = r.byte('type')
  switch (form) {
    case 0x3f: {
      coreValType(r)
      const dtor = r.byte('resource destructor flag')
      if (dtor === 0x01) {
        r.u32('destructor index')
      } else if (dtor !== 0x00) {
        throw invalid(`bad resource destructor flag ${hex(dtor)}`, r.pos - 1)
      }
      return item({ depth: 1 })
    }
    case 0x40:
      w.vec(r, 'function parameters', () => {
        w.name(r, 'label', `function parameter name in ${scope.label}`)
        valType(w, r, scope)
      })
      resultList(w, r, scope)
      return item({ depth: 1 })
    case 0x41:
    case 0x42: {
      // Component and instance types are scopes of their own, for indices and outer aliases.
      const inner = new Scope(scope.label, scope)
      const what = form === 0x41 ? 'component type' : 'instance type'
      w.vec(r, what, () => typeDecl(w, r, depth + 1, inner, form === 0x41))
      return item({ depth: 1, exports: inner.exports })
    }
    default:
      if (PRIMITIVES.has(form)) {
        return item({ depth: 0 })
      }
      return item({ depth: w.deepen(1 + definedType(w, r, form, scope), at) })
  }
}

/** `defvaltype` other than a primitive; returns the depth of its deepest part. */
function definedType(w: Walk, r: ByteReader, form: number, scope: Scope): number {
  let deepest = 0
  const part = (depth: number) => void (deepest = Math.max(deepest, depth))
  const c = scope.label
  switch (form) {
    case 0x72: // record
      w.vec(r, 'record fields', () => {
        w.name(r, 'label', `record field name in ${c}`)
        part(valType(w, r, scope))
      })
      break
    case 0x71: // variant
      w.vec(r, 'variant cases', () => {
        w.name(r, 'label', `variant case name in ${c}`)
        part(optionalValType(w, r, scope))
        // wasmparser 0.227 still reads the old `refines` immediate.
        const refines = r.byte('variant case refines')
        if (refines === 0x01) {
          r.u32('variant case refines')
        } else if (refines !== 0x00) {
          throw invalid(`bad variant case refines ${hex(refines)}`, r.pos - 1)
        }
      })
      break
    case 0x6e: // flags
      w.vec(r, 'flags', () => void w.name(r, 'label', `flag name in ${c}`))
      break
    case 0x6d: // enum
      w.vec(r, 'enum cases', () => void w.name(r, 'label', `enum case name in ${c}`))
      break
    case 0x6f: // tuple
      w.vec(r, 'tuple', () => part(valType(w, r, scope)))
      break
    case 0x70: // list
    case 0x6b: // option
      part(valType(w, r, scope))
      break
    case 0x6a: // result
      part(optionalValType(w, r, scope))
      part(optionalValType(w, r, scope))
      break
    case 0x69: // own
    case 0x68: // borrow
      r.u32('resource type index')
      break
    case 0x66: // stream
    case 0x65: // future
      part(optionalValType(w, r, scope))
      break
    default:
      throw invalid(`unknown type ${hex(form)}`, r.pos - 1)
  }
  return deepest
}

/** A value type; returns its depth (0 for a primitive). */
function valType(w: Walk, r: ByteReader, scope: Scope): number {
  if (PRIMITIVES.has(r.peek('value type'))) {
    r.pos++
    return 0
  }
  const at = r.pos
  return w.lookup(scope, SORT_TYPE, r.index33('value type'), at)!.depth
}

function optionalValType(w: Walk, r: ByteReader, scope: Scope): number {
  const flag = r.byte('optional value type')
  if (flag === 0x01) {
    return valType(w, r, scope)
  }
  if (flag !== 0x00) {
    throw invalid(`bad optional value type flag ${hex(flag)}`, r.pos - 1)
  }
  return 0
}

function resultList(w: Walk, r: ByteReader, scope: Scope): void {
  const form = r.byte('function results')
  if (form === 0x00) {
    valType(w, r, scope)
  } else if (form !== 0x01 || r.byte('function results') !== 0x00) {
    throw invalid('unknown function result list', r.pos - 1)
  }
}

/** A declaration inside a component type (`componentDecl`) or instance type (`instanceDecl`). */
function typeDecl(w: Walk, r: ByteReader, depth: number, scope: Scope, inComponent: boolean): void {
  const form = r.byte('type declaration')
  switch (form) {
    case 0x00:
      return coreType(w, r, depth, scope.label)
    case 0x01:
      scope.types.push(type(w, r, depth, scope))
      return
    case 0x02:
      return alias(w, r, scope)
    case 0x03:
      if (inComponent) {
        importDecl(w, r, scope, `import name in a component type in ${scope.label}`)
        return
      }
      break
    case 0x04: {
      const where = `export name in a type in ${scope.label}`
      const [name, exported] = importDecl(w, r, scope, where)
      if (exported) {
        scope.exports.set(name, exported)
      }
      return
    }
  }
  throw invalid(`unknown type declaration ${hex(form)}`, r.pos - 1)
}

// --- Core types and core modules ------------------------------------------------------------

/** `core:type`: a function type or a module type. GC types are refused. */
function coreType(w: Walk, r: ByteReader, depth: number, c: string): void {
  const at = r.pos
  if (depth > MAX_TYPE_DEPTH) {
    throw new WardenError(
      'invalid_component',
      `types are declared more than ${MAX_TYPE_DEPTH} deep (at byte ${at})`,
    )
  }
  w.count('types', at)
  const form = r.byte('core type')
  if (form === 0x60) {
    return coreFuncType(r)
  }
  if (form !== 0x50) {
    throw invalid(`unsupported core type ${hex(form)}`, at)
  }
  w.vec(r, 'module type', () => moduleDecl(w, r, c))
}

function moduleDecl(w: Walk, r: ByteReader, c: string): void {
  const form = r.byte('module type declaration')
  switch (form) {
    case 0x00:
      w.count('importsExports', r.pos)
      w.name(r, 'core', `core import module name in a module type in ${c}`)
      w.name(r, 'core', `core import field name in a module type in ${c}`)
      return coreTypeRef(r)
    case 0x01:
      w.count('types', r.pos)
      if (r.byte('core type') !== 0x60) {
        throw invalid('unsupported core type in a module type', r.pos - 1)
      }
      return coreFuncType(r)
    case 0x02:
      w.count('aliases', r.pos)
      if (r.byte('outer alias sort') !== CORE_TYPE_SORT || r.byte('outer alias') !== 0x01) {
        throw invalid('unknown alias in a module type', r.pos - 1)
      }
      r.u32('outer alias count')
      r.u32('outer alias index')
      return
    case 0x03:
      w.count('importsExports', r.pos)
      w.name(r, 'core', `core export name in a module type in ${c}`)
      return coreTypeRef(r)
    default:
      throw invalid(`unknown module type declaration ${hex(form)}`, r.pos - 1)
  }
}

function coreFuncType(r: ByteReader): void {
  for (const what of ['core function parameters', 'core function results']) {
    for (let n = r.count(what); n > 0; n--) {
      coreValType(r)
    }
  }
}

function coreValType(r: ByteReader): void {
  if (CORE_NUMBER_TYPES.has(r.peek('core value type'))) {
    r.pos++
  } else {
    refType(r)
  }
}

function refType(r: ByteReader): void {
  const b = r.byte('reference type')
  if (b === 0x63 || b === 0x64) {
    heapType(r)
  } else if (!CORE_HEAP_TYPES.has(b)) {
    throw invalid(`unknown value type ${hex(b)}`, r.pos - 1)
  }
}

function heapType(r: ByteReader): void {
  const b = r.peek('heap type')
  if (b === 0x65) {
    r.pos++
    if (!CORE_HEAP_TYPES.has(r.byte('heap type'))) {
      throw invalid('unknown shared heap type', r.pos - 1)
    }
  } else if (CORE_HEAP_TYPES.has(b)) {
    r.pos++
  } else {
    r.index33('heap type')
  }
}

function coreExternalKind(r: ByteReader): number {
  const kind = r.byte('core external kind')
  if (kind > CORE_EXTERNAL_KIND_MAX) {
    throw invalid(`unknown core external kind ${hex(kind)}`, r.pos - 1)
  }
  return kind
}

/** A core import's type: function, table, memory, global or tag. */
function coreTypeRef(r: ByteReader): void {
  switch (coreExternalKind(r)) {
    case 0x00: // func
      r.u32('core type index')
      return
    case 0x01: // table: reftype, limits (max, shared, table64)
      refType(r)
      limits(r, 0b111, 0b100, false)
      return
    case 0x02: // memory: limits (max, shared, memory64, page size)
      limits(r, 0b1111, 0b100, true)
      return
    case 0x03: // global
      coreValType(r)
      if (r.byte('global mutability') > 0x01) {
        throw invalid('bad global mutability', r.pos - 1)
      }
      return
    case 0x04: // tag
      if (r.byte('tag attribute') !== 0x00) {
        throw invalid('bad tag attribute', r.pos - 1)
      }
      r.u32('tag type index')
  }
}

/** Limits: their flags, bounds and page size, checked; returns the minimum. */
function limits(r: ByteReader, allowed: number, wide: number, pageSize: boolean): number {
  const flags = r.byte('limits')
  if ((flags & ~allowed) !== 0) {
    throw invalid(`bad limits flags ${hex(flags)}`, r.pos - 1)
  }
  const bound = flags & wide ? () => r.u64('limit') : () => r.u32('limit')
  const minimum = bound()
  if (flags & 0b1) {
    bound()
  }
  if (pageSize && flags & 0b1000) {
    r.u32('page size')
  }
  return minimum
}

/** A table section: each table type, checked; returns their minimum entries, summed. */
function tableEntries(r: ByteReader, m: string): number {
  let entries = 0
  for (let n = r.count(`tables of ${m}`); n > 0; n--) {
    if (r.peek('table type') === 0x40) {
      // A table with an initialiser expression (function references): V8 in Node 20 does
      // not compile it without a flag, and its expression would need a reader of its own.
      throw invalid(`a table with an initialiser in ${m}`, r.pos)
    }
    refType(r)
    entries += limits(r, 0b111, 0b100, false)
  }
  return entries
}

/**
 * A nested core module: its import and export names and its table types are checked, every
 * other section is skipped by its size (the fuel rewriter in `limits/instrument.ts` reads the
 * code later). Returns what one instantiation of it costs (see {@link DEFAULT_MAX_INSTANTIATION_BYTES}).
 */
function coreModule(w: Walk, r: ByteReader): number {
  w.count('coreModules', r.pos)
  let bytes = 0
  const m = `module ${w.counts.coreModules - 1}`
  r.header(0, `core ${m}`)
  while (!r.done) {
    w.count('sections', r.pos)
    const id = r.byte('core section id')
    const body = r.sub(`core section ${id} of ${m}`)
    if (id === 2) {
      w.vec(body, `imports of ${m}`, () => {
        w.count('importsExports', body.pos)
        w.name(body, 'core', `core import module name of ${m}`)
        w.name(body, 'core', `core import field name of ${m}`)
        coreTypeRef(body)
      })
    } else if (id === 7) {
      w.vec(body, `exports of ${m}`, () => {
        w.count('importsExports', body.pos)
        w.name(body, 'core', `core export name of ${m}`)
        coreExternalKind(body)
        body.u32('export index')
      })
    } else if (id === 4) {
      bytes += TABLE_ENTRY_BYTES * tableEntries(body, m)
    } else if (id > 13) {
      throw invalid(`unknown core section id ${id} in ${m}`, body.pos)
    } else {
      if (id === 9 || id === 11) {
        bytes += body.end - body.pos // elements, data: what instantiation copies
      }
      body.pos = body.end
    }
    body.expectEnd(`core section ${id} of ${m}`)
  }
  return bytes
}
