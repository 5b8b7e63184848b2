import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildJsGuest } from '../../test/support/js-guest.js'
import { compileWat, guestFile } from '../../test/support/wat.js'
import { platformCaller } from '../../test/support/platform-guest.js'
import { WardenError } from '../errors.js'
import {
  checkComponentStructure,
  DEFAULT_MAX_INSTANTIATION_BYTES,
  MAX_COMPONENT_DEPTH,
  MAX_CORE_MODULES,
  MAX_SECTIONS,
  MAX_FLATTENED_DEFINITIONS,
  MAX_NAMES,
  MAX_TYPE_DEPTH,
  TABLE_ENTRY_BYTES,
} from './component-binary.js'
import { isAllowedName, MAX_NAME_BYTES } from './names.js'

// --- A tiny encoder for hand-made components -------------------------------------------------

type Bytes = number[]

function leb(n: number): Bytes {
  const out: Bytes = []
  do {
    const b = n % 128
    n = Math.floor(n / 128)
    out.push(n > 0 ? b | 0x80 : b)
  } while (n > 0)
  return out
}

function str(s: string | Uint8Array): Bytes {
  const b = typeof s === 'string' ? new TextEncoder().encode(s) : s
  return [...leb(b.length), ...b]
}

function vec(items: Bytes[]): Bytes {
  return [...leb(items.length), ...items.flat()]
}

function section(id: number, body: Bytes): Bytes {
  return [id, ...leb(body.length), ...body]
}

const COMPONENT_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
const CORE_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

function component(...sections: Bytes[]): Bytes {
  return [...COMPONENT_HEADER, ...sections.flat()]
}

function coreModule(...sections: Bytes[]): Bytes {
  return [...CORE_HEADER, ...sections.flat()]
}

/** `(import "<name>" (func (type 0)))` after a type section defining `(func)`. */
function importingFunc(name: string | Uint8Array): Bytes {
  return component(
    section(7, vec([[0x40, 0x00, 0x01, 0x00]])),
    section(10, vec([[0x00, ...str(name), 0x01, 0x00]])),
  )
}

/** A core module exporting function 0 as `name` (no function is defined: structure only). */
function exportingCore(name: string): Bytes {
  return component(section(1, coreModule(section(7, vec([[...str(name), 0x00, 0x00]])))))
}

/** A core module importing `a` `b` with the given type bytes. */
function coreImport(type: Bytes): Bytes {
  return component(section(1, coreModule(section(2, vec([[...str('a'), ...str('b'), ...type]])))))
}

function times(n: number, item: Bytes): Bytes[] {
  return Array.from({ length: n }, () => item)
}

/** `depth` components, each nested inside the one before (built outside-in: linear time). */
function nested(depth: number): Uint8Array {
  const prefixes: Bytes[] = []
  let size = COMPONENT_HEADER.length
  for (let i = 1; i < depth; i++) {
    const prefix = [...COMPONENT_HEADER, 4, ...leb(size)]
    prefixes.push(prefix)
    size += prefix.length
  }
  return new Uint8Array([...prefixes.reverse().flat(), ...COMPONENT_HEADER])
}

/** A type section with one instance type nesting `depth` types (instance types inside). */
function deepType(depth: number): Uint8Array {
  // Each level is an instance type with one declaration (0x01): the next type.
  const levels = Array.from({ length: depth - 1 }, () => [0x42, 0x01, 0x01]).flat()
  return new Uint8Array(component(section(7, vec([[...levels, 0x42, 0x00]]))))
}

/** `(type $p0 (list first)) (type $p1 (list $p0)) …`, `n` types. */
function chain(prefix: string, n: number, first: string): string {
  return Array.from({ length: n }, (_, i) => {
    return `(type $${prefix}${i} (list ${i === 0 ? first : `$${prefix}${i - 1}`}))`
  }).join('\n')
}

/** A function import whose parameter is a list nested `n` deep. */
function listChain(n: number): string {
  return `(component ${chain('t', n, 'u8')} (import "f" (func (param "x" $t${n - 1}))))`
}

/** `a` lists nested in an imported instance's type, aliased, and `b` more around that. */
function viaImport(a: number, b: number): string {
  return `(component
    (import "a" (instance $a ${chain('t', a, 'u8')} (export "t" (type (eq $t${a - 1})))))
    (alias export $a "t" (type $u))
    ${chain('v', b, '$u')}
    (import "f" (func (param "x" $v${b - 1}))))`
}

/** `a` lists nested in a component's exported type, aliased from an instance, `b` more. */
function viaComponent(a: number, b: number): string {
  return `(component
    (component $inner ${chain('t', a, 'u8')} (export "t" (type $t${a - 1})))
    (instance $i (instantiate $inner))
    (alias export $i "t" (type $u))
    ${chain('v', b, '$u')}
    (import "f" (func (param "x" $v${b - 1}))))`
}

function walk(bytes: Bytes | Uint8Array, maxInstantiationBytes?: number) {
  return checkComponentStructure(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes), {
    maxInstantiationBytes,
  })
}

function refusal(bytes: Bytes | Uint8Array, maxInstantiationBytes?: number): WardenError {
  try {
    walk(bytes, maxInstantiationBytes)
  } catch (error) {
    expect(error).toBeInstanceOf(WardenError)
    return error as WardenError
  }
  throw new Error('expected a refusal')
}

let echo: Uint8Array

beforeAll(async () => {
  echo = await guestFile('echo')
})

// --- Real components -------------------------------------------------------------------------

describe('real components', () => {
  it('walks the echo guest and finds every name', () => {
    const { counts, names } = walk(echo)
    expect(counts).toMatchObject({ components: 1, coreModules: 2, canonicals: 2 })
    const core = names.filter((n) => n.kind === 'core').map((n) => n.name)
    expect(core).toEqual(expect.arrayContaining(['memory', 'env', 'log', 'write', 'run']))
    expect(core).toContain('cabi_realloc')
    const extern = names.filter((n) => n.kind === 'extern').map((n) => n.name)
    expect(extern).toEqual(expect.arrayContaining(['warden:platform/log@0.1.0', 'run', 'level']))
    const labels = names.filter((n) => n.kind === 'label').map((n) => n.name)
    expect(labels).toEqual(expect.arrayContaining(['debug', 'info', 'input', 'message']))
    expect(names.find((n) => n.name === 'cabi_realloc')?.where).toBe('core export name of module 1')
  })

  it('walks a wit-component build (jco componentNew)', async () => {
    const { counts } = walk(await platformCaller())
    expect(counts.coreModules).toBe(3)
  })

  it('walks a componentize-js build', async () => {
    const { counts, names } = walk(await buildJsGuest('bridge'))
    expect(counts.components).toBeGreaterThanOrEqual(1)
    // Its instantiation work is its engine's data, once (~3 MB): far inside the cap.
    expect(counts.instantiationBytes).toBeGreaterThan(1_000_000)
    expect(counts.instantiationBytes).toBeLessThan(DEFAULT_MAX_INSTANTIATION_BYTES / 10)
    expect(names.map((n) => n.name)).toContain('$imports')
    for (const n of names) {
      expect(isAllowedName(n.kind, n.name)).toBe(true)
    }
  }, 120_000)

  it('walks a composed component: nested, instantiated twice, an export aliased', async () => {
    const bytes = await compileWat(`(component
      (component $inner
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func (export "f") (canon lift (core func $i "f"))))
      (instance $a (instantiate $inner))
      (instance $b (instantiate $inner))
      (alias export $a "f" (func $f))
      (export "f" (func $f)))`)
    const { counts } = walk(bytes)
    expect(counts.components).toBe(2)
    // Two instances of $inner (1 core instance + 1 lift each, plus the instance itself).
    expect(counts.flattened).toBe(6)
  })
})

// --- Malformed input -------------------------------------------------------------------------

describe('malformed input', () => {
  it('refuses every truncation of a real component but at a section boundary', () => {
    // A cut between two whole top-level sections leaves a (smaller) well-formed component.
    const boundaries = new Set<number>()
    for (let p = 8; p < echo.length; ) {
      boundaries.add(p)
      let size = 0
      let shift = 0
      for (p++; ; p++, shift += 7) {
        size += (echo[p]! & 0x7f) * 2 ** shift
        if (echo[p]! < 0x80) {
          break
        }
      }
      p += 1 + size
    }
    for (let n = 0; n < echo.length; n++) {
      if (boundaries.has(n)) {
        expect(walk(echo.subarray(0, n)).counts.components).toBe(1)
      } else {
        expect(refusal(echo.subarray(0, n)).code).toBe('invalid_component')
      }
    }
    expect(boundaries.size).toBeGreaterThan(5)
  })

  it.each([
    ['empty', []],
    ['garbage', [1, 2, 3, 4, 5, 6, 7, 8, 9]],
    ['a core module', CORE_HEADER],
    ['trailing garbage', [...component(), 0xff]],
    ['a section that overruns', [...component(), 7, 10, 0]],
    ['a section with bytes left over', component(section(7, [0x00, 0x00]))],
    ['an overlong section size', [...component(), 7, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]],
    ['a section size over 32 bits', [...component(), 7, 0xff, 0xff, 0xff, 0xff, 0x1f]],
    ['an unknown section id', component(section(13, []))],
    ['a value section (🪙)', component(section(12, [0x00]))],
    ['a start section (🪙)', component(section(9, [0x00, 0x00, 0x00]))],
    ['a vector longer than its section', component(section(7, [0x05, 0x73]))],
    ['an unknown type', component(section(7, vec([[0x55]])))],
    ['a negative type index', component(section(7, vec([[0x70, 0x55]])))],
    ['an unknown canonical definition', component(section(8, vec([[0x3f]])))],
    ['an unknown canonical option', component(section(8, vec([[0x01, 0x00, 0x00, 0x01, 0x09]])))],
    ['an unknown sort', component(section(11, vec([[0x00, ...str('f'), 0x09, 0x00, 0x00]])))],
    ['an unknown name tag', component(section(10, vec([[0x02, ...str('f'), 0x01, 0x00]])))],
    ['an unknown alias target', component(section(6, vec([[0x01, 0x07, 0x00]])))],
    ['an unknown core instance form', component(section(2, vec([[0x02]])))],
    ['a GC core type', component(section(3, vec([[0x5f, 0x00]])))],
    ['an instantiation of a missing component', component(section(5, vec([[0x00, 0x03, 0x00]])))],
    ['a core module with a bad header', component(section(1, [0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]))],
    ['an unknown core section', component(section(1, coreModule(section(14, []))))],
    ['a core import of unknown kind', coreImport([0x09])],
    ['bad memory limits', coreImport([0x02, 0x10, 0x00])],
  ])('refuses %s', (_name, bytes) => {
    expect(refusal(bytes).code).toBe('invalid_component')
  })

  it('refuses an overlong LEB in a name length', () => {
    const bytes = component(section(10, [0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x61]))
    expect(refusal(bytes).code).toBe('invalid_component')
  })

  it('never throws anything but invalid_component on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (tail, withHeader) => {
        const bytes = withHeader ? new Uint8Array([...COMPONENT_HEADER, ...tail]) : tail
        expectWalkOrRefusal(bytes)
      }),
      { numRuns: 20_000 },
    )
  })

  it('never throws anything but invalid_component on mutated real components (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(),
        (edits, cut) => {
          const bytes = echo.slice()
          for (const [at, value] of edits) {
            bytes[8 + (at % (bytes.length - 8))] = value
          }
          expectWalkOrRefusal(cut % 4 === 0 ? bytes.subarray(0, cut % bytes.length) : bytes)
        },
      ),
      { numRuns: 20_000 },
    )
  })
})

/** A walk either refuses with invalid_component or passes, and then every name is allowed. */
function expectWalkOrRefusal(bytes: Uint8Array): void {
  let result: ReturnType<typeof checkComponentStructure>
  try {
    result = checkComponentStructure(bytes)
  } catch (error) {
    expect(error).toBeInstanceOf(WardenError)
    expect((error as WardenError).code).toBe('invalid_component')
    return
  }
  for (const n of result.names) {
    expect(isAllowedName(n.kind, n.name)).toBe(true)
  }
}

// --- Names ------------------------------------------------------------------------------------

describe('names', () => {
  it('admits a plain import name', () => {
    expect(walk(importingFunc('run')).names.map((n) => n.name)).toEqual(['run'])
  })

  it.each([
    "run'+(process.kill(process.pid,'SIGKILL'),'')+'",
    'url=<https://example.com/>',
    'a:b/c@1.0.0 ',
    '__proto__',
    '',
  ])('refuses the component import name %j', (name) => {
    expect(refusal(importingFunc(name)).code).toBe('invalid_component')
  })

  it('refuses a core export name outside the grammar', () => {
    const { names } = walk(exportingCore('cabi_post_run'))
    expect(names[0]?.where).toBe('core export name of module 0')
    expect(refusal(exportingCore("run']+(globalThis)+['")).code).toBe('invalid_component')
    expect(refusal(exportingCore('__proto__')).code).toBe('invalid_component')
  })

  it('refuses a name that is not UTF-8', () => {
    expect(refusal(importingFunc(new Uint8Array([0x72, 0xff, 0x6e]))).code).toBe(
      'invalid_component',
    )
  })

  it('refuses a name over the byte cap, before decoding it', () => {
    expect(walk(importingFunc('a'.repeat(MAX_NAME_BYTES))).counts.importsExports).toBe(1)
    expect(refusal(importingFunc('a'.repeat(MAX_NAME_BYTES + 1))).code).toBe('invalid_component')
  })

  it('checks record fields, variant cases, enum cases, flags and parameters as labels', () => {
    const bad = 'x y'
    const types: Bytes[] = [
      [0x72, ...vec([[...str(bad), 0x73]])],
      [0x71, ...vec([[...str(bad), 0x00, 0x00]])],
      [0x6d, ...vec([str(bad)])],
      [0x6e, ...vec([str(bad)])],
      [0x40, ...vec([[...str(bad), 0x73]]), 0x01, 0x00],
    ]
    for (const type of types) {
      expect(refusal(component(section(7, vec([type])))).code).toBe('invalid_component')
      const good = type.map((b, i) => (i >= 2 && i < 5 && b === 0x20 ? 0x2d : b))
      expect(walk(component(section(7, vec([good])))).counts.types).toBe(1)
    }
  })

  it('checks names declared inside instance and module types', () => {
    const instanceType = (name: string) => [0x42, ...vec([[0x04, 0x00, ...str(name), 0x01, 0x00]])]
    expect(walk(component(section(7, vec([instanceType('f')])))).counts.types).toBe(1)
    expect(refusal(component(section(7, vec([instanceType('f()')])))).code).toBe(
      'invalid_component',
    )
    const moduleType = (name: string) => [0x50, ...vec([[0x03, ...str(name), 0x00, 0x00]])]
    expect(walk(component(section(3, vec([moduleType('f')])))).counts.types).toBe(1)
    expect(refusal(component(section(3, vec([moduleType("f'")])))).code).toBe('invalid_component')
  })

  it('checks core instantiation arguments, inline exports and aliases', () => {
    const coreArg = (name: string) =>
      component(section(2, vec([[0x00, 0x00, ...vec([[...str(name), 0x12, 0x00]])]])))
    expect(walk(coreArg('env')).names[0]?.name).toBe('env')
    expect(refusal(coreArg('e nv')).code).toBe('invalid_component')
    const coreInline = (name: string) =>
      component(section(2, vec([[0x01, ...vec([[...str(name), 0x00, 0x00]])]])))
    expect(walk(coreInline('0')).names[0]?.name).toBe('0')
    expect(refusal(coreInline('0;')).code).toBe('invalid_component')
    const coreAlias = (name: string) =>
      component(section(6, vec([[0x00, 0x00, 0x01, 0x00, ...str(name)]])))
    expect(walk(coreAlias('cabi_realloc')).names[0]?.kind).toBe('core')
    expect(refusal(coreAlias('cabi realloc')).code).toBe('invalid_component')
    const alias = (name: string) => component(section(6, vec([[0x01, 0x00, 0x00, ...str(name)]])))
    expect(walk(alias('[method]r.m')).names[0]?.kind).toBe('extern')
    expect(refusal(alias('r.m')).code).toBe('invalid_component')
  })
})

// --- Structural limits -------------------------------------------------------------------------

describe('structural limits', () => {
  it(`admits components nested ${MAX_COMPONENT_DEPTH} deep and refuses one more`, () => {
    expect(walk(nested(MAX_COMPONENT_DEPTH)).counts.components).toBe(MAX_COMPONENT_DEPTH)
    expect(refusal(nested(MAX_COMPONENT_DEPTH + 1)).code).toBe('invalid_component')
  })

  it('refuses 58 KB of nested components (jco took 8-34 s on them)', () => {
    const bytes = nested(6_000)
    expect(bytes.length).toBeGreaterThan(58_000)
    expect(refusal(bytes).code).toBe('invalid_component')
  })

  it(`admits types nested ${MAX_TYPE_DEPTH} deep and refuses one more`, () => {
    expect(walk(deepType(MAX_TYPE_DEPTH)).counts.types).toBe(MAX_TYPE_DEPTH)
    expect(refusal(deepType(MAX_TYPE_DEPTH + 1)).code).toBe('invalid_component')
    expect(refusal(deepType(20_000)).code).toBe('invalid_component')
  })

  it(`admits value types nested ${MAX_TYPE_DEPTH} deep and refuses one more`, async () => {
    expect(walk(await compileWat(listChain(MAX_TYPE_DEPTH))).counts.types).toBe(MAX_TYPE_DEPTH + 1)
    expect(refusal(await compileWat(listChain(MAX_TYPE_DEPTH + 1))).code).toBe('invalid_component')
  })

  it('follows value-type depth through an imported instance type and an alias', async () => {
    expect(walk(await compileWat(viaImport(30, 30))).counts.types).toBe(62)
    expect(refusal(await compileWat(viaImport(40, 40))).code).toBe('invalid_component')
  })

  it('follows value-type depth through an instantiated component and an alias', async () => {
    expect(walk(await compileWat(viaComponent(30, 30))).counts.types).toBe(61)
    expect(refusal(await compileWat(viaComponent(40, 40))).code).toBe('invalid_component')
  })

  it(`refuses more than ${MAX_CORE_MODULES} core modules`, () => {
    const modules = (n: number) => component(...times(n, section(1, coreModule())))
    expect(walk(modules(MAX_CORE_MODULES)).counts.coreModules).toBe(MAX_CORE_MODULES)
    expect(refusal(modules(MAX_CORE_MODULES + 1)).code).toBe('invalid_component')
  })

  it(`refuses more than ${MAX_SECTIONS} sections, empty custom sections included`, () => {
    const customs = (n: number) => component(...times(n, section(0, str('x'))))
    expect(walk(customs(MAX_SECTIONS)).counts.sections).toBe(MAX_SECTIONS)
    expect(refusal(customs(MAX_SECTIONS + 1)).code).toBe('invalid_component')
    // Inside a core module too.
    const inModule = component(section(1, coreModule(...times(MAX_SECTIONS, section(0, str('y'))))))
    expect(refusal(inModule).code).toBe('invalid_component')
  })

  it(`refuses more than ${MAX_NAMES} names (here: the fields of one record)`, () => {
    // A record of `n` fields, each `a: string`.
    const record = (n: number) =>
      component(section(7, vec([[0x72, ...vec(times(n, [1, 0x61, 0x73]))]])))
    expect(walk(record(MAX_NAMES)).counts.names).toBe(MAX_NAMES)
    expect(refusal(record(MAX_NAMES + 1)).code).toBe('invalid_component')
  })

  it('refuses a few KB that unroll to more definitions than the cap', () => {
    // Each level instantiates the one inside it `fan` times: fan² copies of the innermost.
    const fan = Math.ceil(Math.sqrt(MAX_FLATTENED_DEFINITIONS)) + 1
    const instantiations = section(5, vec(times(fan, [0x00, 0x00, 0x00])))
    const inner = component(section(1, coreModule()), section(2, vec([[0x00, 0x00, 0x00]])))
    const middle = component(section(4, inner), instantiations)
    const bytes = component(section(4, middle), instantiations)
    expect(bytes.length).toBeLessThan(5_000)
    expect(refusal(bytes).code).toBe('invalid_component')
    // One level of fan-out is fine.
    expect(walk(middle).counts.flattened).toBe(fan * 2)
  })

  it('follows an outer alias to a component when unrolling', () => {
    // Instantiate component `index`, `n` times.
    const instantiate = (n: number, index: number) => section(5, vec(times(n, [0x00, index, 0x00])))
    const inner = component(section(1, coreModule()), section(2, vec([[0x00, 0x00, 0x00]])))
    // The middle component aliases the outer `inner` (1 level out, index 0) and instantiates it.
    const middle = component(section(6, vec([[0x04, 0x02, 0x01, 0x00]])), instantiate(400, 0))
    const bytes = component(section(4, inner), section(4, middle), instantiate(400, 1))
    expect(refusal(bytes).code).toBe('invalid_component')
    expect(refusal(component(section(4, middle))).code).toBe('invalid_component')
    const few = component(section(4, inner), section(4, middle), instantiate(10, 1))
    expect(walk(few).counts.flattened).toBe(10 * (1 + 400 * 2))
  })
})

// --- Instantiation work ----------------------------------------------------------------------

describe('instantiation work', () => {
  /** `(core module (table <entries> funcref))`, with data and element sections of `filler` bytes. */
  const tableModule = (entries: number, filler = 0): Bytes =>
    coreModule(
      section(4, vec([[0x70, 0x00, ...leb(entries)]])),
      ...(filler
        ? [section(9, Array<number>(filler).fill(0)), section(11, Array<number>(filler).fill(0))]
        : []),
    )
  /** `n` core instantiations of module `index`, with no arguments. */
  const instantiateCore = (n: number, index: number) =>
    section(2, vec(times(n, [0x00, ...leb(index), 0x00])))
  /** `n` instantiations of component `index`, with the given arguments. */
  const instantiate = (n: number, index: number, args: Bytes[] = []) =>
    section(5, vec(times(n, [0x00, ...leb(index), ...vec(args)])))

  it('counts data and element bytes and table entries, per core instance', () => {
    const bytes = component(section(1, tableModule(10, 100)), instantiateCore(3, 0))
    // Each section body: a 1-byte length prefix is not counted; the body is `filler` bytes.
    expect(walk(bytes).counts.instantiationBytes).toBe(3 * (10 * TABLE_ENTRY_BYTES + 200))
    // A module nobody instantiates costs nothing.
    expect(walk(component(section(1, tableModule(10, 100)))).counts.instantiationBytes).toBe(0)
  })

  it("refuses the eleventh attack's few KB: a 100,000-entry table instantiated 990 times", () => {
    const bytes = component(section(1, tableModule(100_000)), instantiateCore(990, 0))
    expect(bytes.length).toBeLessThan(5_000)
    const error = refusal(bytes)
    expect(error.code).toBe('invalid_component')
    expect(error.message).toContain(`more than ${DEFAULT_MAX_INSTANTIATION_BYTES} bytes`)
    // 20 of them are 128 MB of entries: still refused; 2 are not.
    expect(refusal(component(section(1, tableModule(100_000)), instantiateCore(21, 0))).code).toBe(
      'invalid_component',
    )
    expect(
      walk(component(section(1, tableModule(100_000)), instantiateCore(2, 0))).counts
        .instantiationBytes,
    ).toBe(2 * 100_000 * TABLE_ENTRY_BYTES)
  })

  it('refuses exactly past the cap, at any multiplicity (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5_000 }),
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (entries, k, cap) => {
          const bytes = component(section(1, tableModule(entries)), instantiateCore(k, 0))
          const cost = k * entries * TABLE_ENTRY_BYTES
          if (cost > cap) {
            expect(refusal(bytes, cap).code).toBe('invalid_component')
          } else {
            expect(walk(bytes, cap).counts.instantiationBytes).toBe(cost)
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('multiplies through nested component instantiations', () => {
    const inner = component(section(1, tableModule(1_000)), instantiateCore(2, 0))
    const middle = component(section(4, inner), instantiate(10, 0))
    const outer = component(section(4, middle), instantiate(10, 0))
    expect(walk(middle).counts.instantiationBytes).toBe(10 * 2 * 1_000 * TABLE_ENTRY_BYTES)
    // 200 instances of a 1,000-entry table: 12.8 MB, inside the default cap …
    expect(walk(outer).counts.instantiationBytes).toBe(100 * 2 * 1_000 * TABLE_ENTRY_BYTES)
    // … and refused under a cap one byte smaller.
    expect(refusal(outer, 100 * 2 * 1_000 * TABLE_ENTRY_BYTES - 1).code).toBe('invalid_component')
  })

  it('counts an imported module as the costliest in the upload, even one defined later', () => {
    // The inner component imports a core module "m" and instantiates it 50 times; the outer
    // defines the costly module after the inner component and passes it in.
    const importModule = section(10, vec([[0x00, ...str('m'), 0x00, 0x11, 0x00]]))
    const inner = component(importModule, instantiateCore(50, 0))
    const bytes = component(
      section(4, inner),
      section(1, tableModule(100_000)),
      instantiate(1, 0, [[...str('m'), 0x00, 0x11, 0x00]]),
    )
    expect(refusal(bytes).code).toBe('invalid_component')
    const cheap = component(
      section(4, inner),
      section(1, tableModule(10)),
      instantiate(1, 0, [[...str('m'), 0x00, 0x11, 0x00]]),
    )
    expect(walk(cheap).counts.instantiationBytes).toBe(50 * 10 * TABLE_ENTRY_BYTES)
  })

  it('follows a module through an outer alias and an export', () => {
    // The inner component aliases the outer module 0 and instantiates it 30 times.
    const outerAlias = section(6, vec([[0x00, 0x11, 0x02, 0x01, 0x00]]))
    const inner = component(outerAlias, instantiateCore(30, 0))
    const viaAlias = component(section(1, tableModule(1_000)), section(4, inner), instantiate(1, 0))
    expect(walk(viaAlias).counts.instantiationBytes).toBe(30 * 1_000 * TABLE_ENTRY_BYTES)
    // An exported module is a new index in the module space, with the same cost.
    const exported = component(
      section(1, tableModule(1_000)),
      section(11, vec([[0x00, ...str('m'), 0x00, 0x11, 0x00, 0x00]])),
      instantiateCore(4, 1),
    )
    expect(walk(exported).counts.instantiationBytes).toBe(4 * 1_000 * TABLE_ENTRY_BYTES)
  })

  it('reads table64 minimums and refuses tables with initialiser expressions', () => {
    const table64 = coreModule(section(4, vec([[0x70, 0x04, ...leb(3_000_000)]])))
    expect(refusal(component(section(1, table64), instantiateCore(1, 0))).code).toBe(
      'invalid_component',
    )
    const initialised = coreModule(
      section(4, vec([[0x40, 0x00, 0x70, 0x00, 0x01, 0xd2, 0x00, 0x0b]])),
    )
    expect(refusal(component(section(1, initialised))).message).toContain('initialiser')
  })
})
