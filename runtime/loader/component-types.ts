/**
 * What a component's binary says it imports and exports, with the full type of each: the
 * top-level imports (instance types of interfaces, with every function and type they name)
 * and exports (functions lifted with a type; instances made of them, or of a nested
 * component's exports, as wit-component writes an exported interface). `contract.ts` compares
 * them with `wit/`.
 *
 * Runs after `checkComponentStructure`, which has already refused anything malformed, capped
 * depths and counts, and checked every name. This pass keeps the type, function, instance and
 * component index spaces of the outer component and of the components and types nested in it;
 * core sections are skipped by their size. A component whose indices do not resolve (invalid,
 * so jco would refuse it anyway) is refused with `invalid_component`. Linear in the input.
 */
import { WardenError } from '../errors.js'
import { ByteReader, CANONICALS } from './component-binary.js'
import { primitive } from './wit-types.js'
import type { FuncType, PrimitiveName, ResourceType, ValType } from './wit-types.js'

/** An instance's or component's named items. */
export type Items = Map<string, Entity>

/** One import, export, or entry of an index space. */
export type Entity =
  | { sort: 'func'; type: FuncType }
  | { sort: 'type'; type: TypeEntry }
  | { sort: 'instance'; exports: Items }
  | { sort: 'component'; imports: Items; exports: Items }
  | { sort: 'module' | 'value' }

/** An entry of a type index space. */
export type TypeEntry =
  | ValType
  | ResourceType
  | FuncType
  | { kind: 'instance'; exports: Items }
  | { kind: 'component'; imports: Items; exports: Items }

/** The outer component's imports and exports, by name. */
export interface ComponentSurface {
  imports: Items
  exports: Items
}

/**
 * Read the imports and exports of a component with their types.
 * Throws `WardenError('invalid_component')` when an index does not resolve.
 *
 * @example
 * checkComponentStructure(bytes)
 * const { imports, exports } = readComponentSurface(bytes)
 */
export function readComponentSurface(bytes: Uint8Array): ComponentSurface {
  try {
    const scope = component(new ByteReader(bytes, 0, bytes.length), undefined)
    return { imports: scope.imports, exports: scope.exports }
  } catch (error) {
    if (error instanceof WardenError) {
      throw error
    }
    // NB: a bug here must refuse the upload, not crash the loader or let it through.
    throw new WardenError('invalid_component', "the component's types could not be read", {
      cause: error,
    })
  }
}

function unresolved(what: string, at: number): WardenError {
  return new WardenError('invalid_component', `malformed component: ${what} (at byte ${at})`)
}

const SORT_FUNC = 0x01
const SORT_VALUE = 0x02
const SORT_TYPE = 0x03
const SORT_COMPONENT = 0x04
const SORT_INSTANCE = 0x05

const PRIMITIVE_CODES: ReadonlyMap<number, PrimitiveName> = new Map([
  [0x7f, 'bool'],
  [0x7e, 's8'],
  [0x7d, 'u8'],
  [0x7c, 's16'],
  [0x7b, 'u16'],
  [0x7a, 's32'],
  [0x79, 'u32'],
  [0x78, 's64'],
  [0x77, 'u64'],
  [0x76, 'f32'],
  [0x75, 'f64'],
  [0x74, 'char'],
  [0x73, 'string'],
  [0x64, 'error-context'],
])

/** A component, or a component or instance type: its index spaces and named items. */
class Scope {
  readonly parent: Scope | undefined
  readonly types: TypeEntry[] = []
  readonly funcs: Entity[] = []
  readonly instances: Entity[] = []
  readonly components: Entity[] = []
  readonly imports: Items = new Map()
  readonly exports: Items = new Map()

  constructor(parent: Scope | undefined) {
    this.parent = parent
  }

  /** Add an entity to the index space of its sort (core sorts and values have none here). */
  push(entity: Entity): void {
    switch (entity.sort) {
      case 'func':
        this.funcs.push(entity)
        return
      case 'type':
        this.types.push(entity.type)
        return
      case 'instance':
        this.instances.push(entity)
        return
      case 'component':
        this.components.push(entity)
        return
      default:
        return
    }
  }

  /** Entry `index` of a sort's index space. */
  lookup(sort: number, index: number, at: number): Entity {
    let found: Entity | undefined
    switch (sort) {
      case SORT_FUNC:
        found = this.funcs[index]
        break
      case SORT_TYPE: {
        const type = this.types[index]
        found = type && { sort: 'type', type }
        break
      }
      case SORT_INSTANCE:
        found = this.instances[index]
        break
      case SORT_COMPONENT:
        found = this.components[index]
        break
      case SORT_VALUE:
        return { sort: 'value' }
      default:
        return { sort: 'module' }
    }
    if (!found) {
      throw unresolved(`index ${index} of sort ${sort} out of range`, at)
    }
    return found
  }

  type(index: number, at: number): TypeEntry {
    const type = this.types[index]
    if (!type) {
      throw unresolved(`type index ${index} out of range`, at)
    }
    return type
  }
}

/** A sort: its first byte, with a core sort's second byte read and dropped. */
function sort(r: ByteReader): number {
  const s = r.byte('sort')
  if (s === 0x00) {
    r.byte('core sort')
  }
  return s
}

function vec(r: ByteReader, what: string, each: () => void): void {
  for (let n = r.count(what); n > 0; n--) {
    each()
  }
}

/** An import or export name: a tag byte, then the name. */
function externName(r: ByteReader): string {
  r.byte('name tag')
  return r.string('name')
}

function component(r: ByteReader, parent: Scope | undefined): Scope {
  const scope = new Scope(parent)
  r.header(1, 'component')
  while (!r.done) {
    const id = r.byte('section id')
    const body = r.sub('section')
    switch (id) {
      case 4: {
        const inner = component(body, scope)
        scope.components.push({ sort: 'component', imports: inner.imports, exports: inner.exports })
        break
      }
      case 5:
        vec(body, 'instances', () => instance(body, scope))
        break
      case 6:
        vec(body, 'aliases', () => alias(body, scope))
        break
      case 7:
        vec(body, 'types', () => void scope.types.push(defType(body, scope)))
        break
      case 8:
        vec(body, 'canonical definitions', () => canonical(body, scope))
        break
      case 10:
        vec(body, 'imports', () => {
          const name = externName(body)
          const entity = externType(body, scope, name)
          scope.push(entity)
          scope.imports.set(name, entity)
        })
        break
      case 11:
        vec(body, 'exports', () => exportDef(body, scope))
        break
      default:
        // Custom and core sections: nothing here is a component-level type.
        body.pos = body.end
    }
  }
  return scope
}

function instance(r: ByteReader, scope: Scope): void {
  const at = r.pos
  const form = r.byte('instance')
  if (form === 0x00) {
    const instantiated = scope.lookup(SORT_COMPONENT, r.u32('component index'), at)
    vec(r, 'instantiation arguments', () => {
      r.string('argument name')
      sort(r)
      r.u32('argument index')
    })
    if (instantiated.sort !== 'component') {
      throw unresolved('instantiation of a non-component', at)
    }
    // NB: resources imported by the instantiated component are not substituted by the
    // arguments: an export whose type holds one does not match any contract, and is refused.
    scope.instances.push({ sort: 'instance', exports: instantiated.exports })
  } else {
    const exports: Items = new Map()
    vec(r, 'inline exports', () => {
      const name = externName(r)
      const s = sort(r)
      exports.set(name, scope.lookup(s, r.u32('inline export index'), at))
    })
    scope.instances.push({ sort: 'instance', exports })
  }
}

function alias(r: ByteReader, scope: Scope): void {
  const at = r.pos
  const s = sort(r)
  const target = r.byte('alias target')
  if (target === 0x00) {
    const from = scope.lookup(SORT_INSTANCE, r.u32('instance index'), at)
    const name = r.string('alias export name')
    if (s === 0x00) {
      return
    }
    const entity = from.sort === 'instance' ? from.exports.get(name) : undefined
    if (!entity || sortCode(entity) !== s) {
      throw unresolved(`alias of ${JSON.stringify(name)}, which the instance does not export`, at)
    }
    scope.push(entity)
  } else if (target === 0x01) {
    r.u32('core instance index')
    r.string('core alias export name')
  } else {
    let outer: Scope | undefined = scope
    for (let n = r.u32('outer alias count'); n > 0 && outer; n--) {
      outer = outer.parent
    }
    const index = r.u32('outer alias index')
    if (s !== 0x00) {
      if (!outer) {
        throw unresolved('outer alias past the outermost component', at)
      }
      scope.push(outer.lookup(s, index, at))
    }
  }
}

function sortCode(entity: Entity): number {
  switch (entity.sort) {
    case 'func':
      return SORT_FUNC
    case 'value':
      return SORT_VALUE
    case 'type':
      return SORT_TYPE
    case 'component':
      return SORT_COMPONENT
    case 'instance':
      return SORT_INSTANCE
    case 'module':
      return 0x00
  }
}

function canonical(r: ByteReader, scope: Scope): void {
  const at = r.pos
  const op = r.byte('canonical definition')
  const immediates = CANONICALS.get(op)
  if (!immediates) {
    throw unresolved(`unknown canonical definition ${op}`, at)
  }
  let lastIndex = 0
  for (const immediate of immediates) {
    switch (immediate) {
      case 'zero':
      case 'bool':
        r.byte('canonical immediate')
        break
      case 'u32':
        lastIndex = r.u32('canonical index')
        break
      case 'results':
        if (r.byte('function results') === 0x00) {
          valType(r, scope)
        } else {
          r.byte('function results')
        }
        break
      case 'opts':
        vec(r, 'canonical options', () => {
          const option = r.byte('canonical option')
          if (option === 0x03 || option === 0x04 || option === 0x05 || option === 0x07) {
            r.u32('canonical option index')
          }
        })
        break
    }
  }
  // Only `canon lift` defines a component function (its type is the last immediate); every
  // other canonical definition is a core function.
  if (op === 0x00) {
    const type = scope.type(lastIndex, at)
    if (type.kind !== 'func') {
      throw unresolved('canon lift with a non-function type', at)
    }
    scope.funcs.push({ sort: 'func', type })
  }
}

function exportDef(r: ByteReader, scope: Scope): void {
  const at = r.pos
  const name = externName(r)
  const s = sort(r)
  let entity = scope.lookup(s, r.u32('export index'), at)
  if (r.byte('export type flag') === 0x01) {
    entity = externType(r, scope, name)
  }
  nameType(entity, name)
  scope.push(entity)
  scope.exports.set(name, entity)
}

/** Give a declared record, variant, enum, flags or resource the name it is exported under. */
function nameType(entity: Entity, name: string): void {
  if (entity.sort !== 'type') {
    return
  }
  const t = entity.type
  if (
    (t.kind === 'record' || t.kind === 'variant' || t.kind === 'enum' || t.kind === 'flags') &&
    t.name === undefined
  ) {
    t.name = name
  } else if (t.kind === 'resource' && t.name === '') {
    t.name = name
  }
}

/** `externtype`: what an import (or an export with a type) named `name` is. */
function externType(r: ByteReader, scope: Scope, name: string): Entity {
  const at = r.pos
  const s = sort(r)
  switch (s) {
    case 0x00:
      r.u32('core module type index')
      return { sort: 'module' }
    case SORT_FUNC: {
      const type = scope.type(r.u32('type index'), at)
      if (type.kind !== 'func') {
        throw unresolved(`${name} is a function of a non-function type`, at)
      }
      return { sort: 'func', type }
    }
    case SORT_VALUE:
      valType(r, scope)
      return { sort: 'value' }
    case SORT_TYPE: {
      if (r.byte('type bound') === 0x01) {
        return { sort: 'type', type: { kind: 'resource', name, owner: undefined } }
      }
      return { sort: 'type', type: scope.type(r.u32('type index'), at) }
    }
    case SORT_COMPONENT:
    case SORT_INSTANCE: {
      const type = scope.type(r.u32('type index'), at)
      if (s === SORT_INSTANCE && type.kind === 'instance') {
        return { sort: 'instance', exports: type.exports }
      }
      if (s === SORT_COMPONENT && type.kind === 'component') {
        return { sort: 'component', imports: type.imports, exports: type.exports }
      }
      throw unresolved(`${name} has a type of the wrong kind`, at)
    }
    default:
      throw unresolved(`unknown sort ${s}`, at)
  }
}

// --- Types -----------------------------------------------------------------------------------

function defType(r: ByteReader, scope: Scope): TypeEntry {
  const form = r.byte('type')
  switch (form) {
    case 0x3f: {
      coreValType(r)
      if (r.byte('resource destructor flag') === 0x01) {
        r.u32('destructor index')
      }
      return { kind: 'resource', name: '', owner: undefined }
    }
    case 0x40: {
      const params: FuncType['params'] = []
      vec(r, 'function parameters', () => {
        const name = r.string('parameter name')
        params.push({ name, type: valType(r, scope) })
      })
      let result: ValType | undefined
      if (r.byte('function results') === 0x00) {
        result = valType(r, scope)
      } else {
        r.byte('function results')
      }
      return { kind: 'func', params, result }
    }
    case 0x41:
    case 0x42: {
      const inner = new Scope(scope)
      vec(r, 'type declarations', () => typeDecl(r, inner))
      return form === 0x41
        ? { kind: 'component', imports: inner.imports, exports: inner.exports }
        : { kind: 'instance', exports: inner.exports }
    }
    default: {
      const prim = PRIMITIVE_CODES.get(form)
      return prim ? primitive(prim) : definedType(r, form, scope)
    }
  }
}

function typeDecl(r: ByteReader, scope: Scope): void {
  const form = r.byte('type declaration')
  switch (form) {
    case 0x00:
      return coreType(r)
    case 0x01:
      scope.types.push(defType(r, scope))
      return
    case 0x02:
      return alias(r, scope)
    default: {
      const name = externName(r)
      const entity = externType(r, scope, name)
      if (form === 0x04) {
        nameType(entity, name)
      }
      scope.push(entity)
      ;(form === 0x03 ? scope.imports : scope.exports).set(name, entity)
    }
  }
}

function definedType(r: ByteReader, form: number, scope: Scope): ValType {
  const at = r.pos - 1
  switch (form) {
    case 0x72: {
      const fields: { name: string; type: ValType }[] = []
      vec(r, 'record fields', () => {
        const name = r.string('field name')
        fields.push({ name, type: valType(r, scope) })
      })
      return { kind: 'record', fields }
    }
    case 0x71: {
      const cases: { name: string; type: ValType | undefined }[] = []
      vec(r, 'variant cases', () => {
        const name = r.string('case name')
        cases.push({ name, type: optionalValType(r, scope) })
        if (r.byte('variant case refines') === 0x01) {
          r.u32('variant case refines')
        }
      })
      return { kind: 'variant', cases }
    }
    case 0x6e:
    case 0x6d: {
      const names: string[] = []
      vec(r, 'names', () => void names.push(r.string('name')))
      return form === 0x6e ? { kind: 'flags', names } : { kind: 'enum', cases: names }
    }
    case 0x6f: {
      const items: ValType[] = []
      vec(r, 'tuple', () => void items.push(valType(r, scope)))
      return { kind: 'tuple', items }
    }
    case 0x70:
      return { kind: 'list', element: valType(r, scope) }
    case 0x6b:
      return { kind: 'option', some: valType(r, scope) }
    case 0x6a: {
      const ok = optionalValType(r, scope)
      return { kind: 'result', ok, err: optionalValType(r, scope) }
    }
    case 0x69:
    case 0x68: {
      const resource = scope.type(r.u32('resource type index'), at)
      if (resource.kind !== 'resource') {
        throw unresolved('a handle to a non-resource type', at)
      }
      return { kind: form === 0x69 ? 'own' : 'borrow', resource }
    }
    case 0x66:
    case 0x65:
      return { kind: form === 0x66 ? 'stream' : 'future', element: optionalValType(r, scope) }
    default:
      throw unresolved(`unknown type ${form}`, at)
  }
}

function valType(r: ByteReader, scope: Scope): ValType {
  const prim = PRIMITIVE_CODES.get(r.peek('value type'))
  if (prim) {
    r.pos++
    return primitive(prim)
  }
  const at = r.pos
  const type = scope.type(r.index33('value type'), at)
  switch (type.kind) {
    case 'resource':
    case 'func':
    case 'instance':
    case 'component':
      throw unresolved(`a ${type.kind} type used as a value type`, at)
    default:
      return type
  }
}

function optionalValType(r: ByteReader, scope: Scope): ValType | undefined {
  return r.byte('optional value type') === 0x01 ? valType(r, scope) : undefined
}

// --- Core types, skipped (their shape was checked by the structure walk) ---------------------

function coreType(r: ByteReader): void {
  if (r.byte('core type') === 0x60) {
    return coreFuncType(r)
  }
  vec(r, 'module type', () => {
    const form = r.byte('module type declaration')
    if (form === 0x00) {
      r.string('core import module name')
      r.string('core import field name')
      coreTypeRef(r)
    } else if (form === 0x01) {
      r.byte('core type')
      coreFuncType(r)
    } else if (form === 0x02) {
      r.byte('outer alias sort')
      r.byte('outer alias')
      r.u32('outer alias count')
      r.u32('outer alias index')
    } else {
      r.string('core export name')
      coreTypeRef(r)
    }
  })
}

function coreFuncType(r: ByteReader): void {
  vec(r, 'core function parameters', () => coreValType(r))
  vec(r, 'core function results', () => coreValType(r))
}

function coreValType(r: ByteReader): void {
  const b = r.byte('core value type')
  if (b === 0x63 || b === 0x64) {
    if (r.peek('heap type') === 0x65) {
      r.pos += 2
    } else if (r.peek('heap type') >= 0x68 && r.peek('heap type') <= 0x75) {
      r.pos++
    } else {
      r.index33('heap type')
    }
  }
}

function coreTypeRef(r: ByteReader): void {
  switch (r.byte('core external kind')) {
    case 0x00:
      r.u32('core type index')
      return
    case 0x01:
      coreValType(r)
      return limits(r)
    case 0x02:
      return limits(r)
    case 0x03:
      coreValType(r)
      r.byte('global mutability')
      return
    default:
      r.byte('tag attribute')
      r.u32('tag type index')
  }
}

function limits(r: ByteReader): void {
  const flags = r.byte('limits')
  const bound = flags & 0b100 ? () => r.u64('limit') : () => void r.u32('limit')
  bound()
  if (flags & 0b1) {
    bound()
  }
  if (flags & 0b1000) {
    r.u32('page size')
  }
}
