/**
 * Component-model types, structurally: what a WIT file declares (`wit.ts`) and what a
 * component's binary says it imports and exports (`component-types.ts`) are both read into
 * these shapes, so the two can be compared. Type names do not take part in a comparison (the
 * component model's types are structural), except resources, which are nominal: a resource is
 * the interface that defines it plus its name there.
 */

/** The component model's primitive value types. */
export type PrimitiveName =
  | 'bool'
  | 's8'
  | 'u8'
  | 's16'
  | 'u16'
  | 's32'
  | 'u32'
  | 's64'
  | 'u64'
  | 'f32'
  | 'f64'
  | 'char'
  | 'string'
  | 'error-context'

/** A resource type: nominal, known by the interface that defines it and its name there. */
export interface ResourceType {
  kind: 'resource'
  /** Its name in the interface that defines it. */
  name: string
  /** That interface, unversioned (`wasi:io/streams`); unset until the component's import says. */
  owner: string | undefined
}

/** A value type. Record, variant, enum and flags carry the name they were declared under. */
export type ValType =
  | { kind: 'primitive'; name: PrimitiveName }
  | { kind: 'list'; element: ValType }
  | { kind: 'option'; some: ValType }
  | { kind: 'result'; ok: ValType | undefined; err: ValType | undefined }
  | { kind: 'tuple'; items: ValType[] }
  | { kind: 'record'; name?: string; fields: { name: string; type: ValType }[] }
  | { kind: 'variant'; name?: string; cases: { name: string; type: ValType | undefined }[] }
  | { kind: 'enum'; name?: string; cases: string[] }
  | { kind: 'flags'; name?: string; names: string[] }
  | { kind: 'own' | 'borrow'; resource: ResourceType }
  | { kind: 'stream' | 'future'; element: ValType | undefined }

/** A function type. */
export interface FuncType {
  kind: 'func'
  params: { name: string; type: ValType }[]
  result: ValType | undefined
}

/** What a name in an interface stands for: a function or a type. */
export type InterfaceItem =
  | { sort: 'func'; type: FuncType }
  | { sort: 'type'; type: ValType | ResourceType }

/** One interface of a contract: its functions and types by name. */
export interface InterfaceContract {
  /** `ns:pkg/name`, unversioned. */
  name: string
  items: Map<string, InterfaceItem>
}

/** What a world exports: plain functions, or interfaces by name (`warden:platform/handler`). */
export interface WorldContract {
  /** `ns:pkg/world`, unversioned. */
  name: string
  functions: Map<string, FuncType>
  /** Unversioned interface names. */
  interfaces: string[]
}

/** Every interface and world the WIT files describe, keyed by unversioned name. */
export interface Contracts {
  interfaces: Map<string, InterfaceContract>
  worlds: Map<string, WorldContract>
  /** The version each package was declared with, keyed by `ns:pkg`. */
  versions: Map<string, string | undefined>
}

const PRIMITIVES: ReadonlyMap<PrimitiveName, ValType> = new Map(
  (
    [
      'bool',
      's8',
      'u8',
      's16',
      'u16',
      's32',
      'u32',
      's64',
      'u64',
      'f32',
      'f64',
      'char',
      'string',
      'error-context',
    ] as const
  ).map((name) => [name, Object.freeze({ kind: 'primitive', name }) as ValType]),
)

/** The shared, frozen value of a primitive type. */
export function primitive(name: PrimitiveName): ValType {
  return PRIMITIVES.get(name)!
}

/** True for a primitive's WIT name. */
export function isPrimitiveName(name: string): name is PrimitiveName {
  return PRIMITIVES.has(name as PrimitiveName)
}

/**
 * Structural identities of types, interned: two types get the same number iff they are the
 * same type. Each type is keyed once, from its parts' numbers, so a type built by sharing parts
 * (a tuple of a tuple of …, each used twice) costs its size, not its unfolded size.
 */
export class TypeKeys {
  readonly #ids = new Map<string, number>()
  readonly #memo = new WeakMap<object, number>()

  /** The identity of a value, resource or function type. */
  of(type: ValType | ResourceType | FuncType): number {
    const known = this.#memo.get(type)
    if (known !== undefined) {
      return known
    }
    const id = this.#intern(this.#describe(type))
    this.#memo.set(type, id)
    return id
  }

  #intern(text: string): number {
    let id = this.#ids.get(text)
    if (id === undefined) {
      id = this.#ids.size
      this.#ids.set(text, id)
    }
    return id
  }

  #opt(type: ValType | undefined): string {
    return type ? `#${this.of(type)}` : '_'
  }

  #describe(t: ValType | ResourceType | FuncType): string {
    switch (t.kind) {
      case 'primitive':
        return t.name
      case 'resource':
        // NB: names are labels and interface names, so `#` and `/` cannot be forged into them.
        return `resource ${t.owner ?? '?'}#${t.name}`
      case 'own':
      case 'borrow':
        return `${t.kind}<#${this.of(t.resource)}>`
      case 'list':
        return `list<#${this.of(t.element)}>`
      case 'option':
        return `option<#${this.of(t.some)}>`
      case 'result':
        return `result<${this.#opt(t.ok)},${this.#opt(t.err)}>`
      case 'tuple':
        return `tuple<${t.items.map((i) => `#${this.of(i)}`).join(',')}>`
      case 'record':
        return `record{${t.fields.map((f) => `${f.name}:#${this.of(f.type)}`).join(',')}}`
      case 'variant':
        return `variant{${t.cases.map((c) => `${c.name}(${this.#opt(c.type)})`).join(',')}}`
      case 'enum':
        return `enum{${t.cases.join(',')}}`
      case 'flags':
        return `flags{${t.names.join(',')}}`
      case 'stream':
      case 'future':
        return `${t.kind}<${this.#opt(t.element)}>`
      case 'func': {
        const params = t.params.map((p) => `${p.name}:#${this.of(p.type)}`)
        return `func(${params.join(',')})->${this.#opt(t.result)}`
      }
    }
  }
}

/** Longest printed signature in an error message. */
const MAX_PRINTED = 240

/**
 * A function's signature in WIT syntax, for messages: `write: func(level: level, message:
 * string)`. Named types print as their name; with `expand`, their definitions are spelled out
 * one level deep (for two signatures that differ only inside a named type). Cut to 240
 * characters.
 */
export function printFunc(name: string, f: FuncType, expand = false): string {
  const p = new Printer()
  const params = p.list(f.params, (x) => `${x.name}: ${p.type(x.type, expand ? 1 : 0)}`)
  const result = f.result ? ` -> ${p.type(f.result, expand ? 1 : 0)}` : ''
  return cut(`${name}: func(${params})${result}`)
}

/** A type in WIT syntax, for messages (see {@link printFunc}). */
export function printType(t: ValType | ResourceType, expand = 0): string {
  return cut(new Printer().type(t, expand))
}

/**
 * Prints within a budget of visited parts: types share parts, and a guest's type unfolded
 * could be exponentially long or wide. Past the budget the rest prints as `…`.
 */
class Printer {
  #left = MAX_PRINTED

  type(t: ValType | ResourceType, expand: number): string {
    if (this.#left <= 0) {
      return '…'
    }
    this.#left -= 1
    return this.#print(t, expand)
  }

  /** `items` printed with `each` and joined, stopping at the budget. */
  list<T>(items: readonly T[], each: (item: T) => string): string {
    const out: string[] = []
    for (const item of items) {
      if (this.#left <= 0) {
        out.push('…')
        break
      }
      this.#left -= 1
      out.push(each(item))
    }
    return out.join(', ')
  }

  #print(t: ValType | ResourceType, expand: number): string {
    const inner = (u: ValType | undefined) => (u ? this.type(u, expand) : '_')
    switch (t.kind) {
      case 'primitive':
        return t.name
      case 'resource':
        return t.name
      case 'own':
        return t.resource.name
      case 'borrow':
        return `borrow<${t.resource.name}>`
      case 'list':
        return `list<${inner(t.element)}>`
      case 'option':
        return `option<${inner(t.some)}>`
      case 'result':
        return t.ok || t.err ? `result<${inner(t.ok)}, ${inner(t.err)}>` : 'result'
      case 'tuple':
        return `tuple<${this.list(t.items, inner)}>`
      case 'stream':
      case 'future':
        return `${t.kind}<${inner(t.element)}>`
      default:
        break
    }
    if (t.name && expand <= 0) {
      return t.name
    }
    const deeper = (u: ValType | undefined) => (u ? this.type(u, expand - 1) : '_')
    switch (t.kind) {
      case 'record':
        return `record { ${this.list(t.fields, (f) => `${f.name}: ${deeper(f.type)}`)} }`
      case 'variant':
        return `variant { ${this.list(t.cases, (c) =>
          c.type ? `${c.name}(${deeper(c.type)})` : c.name,
        )} }`
      case 'enum':
        return `enum { ${this.list(t.cases, (c) => c)} }`
      case 'flags':
        return `flags { ${this.list(t.names, (n) => n)} }`
    }
  }
}

function cut(text: string): string {
  return text.length > MAX_PRINTED ? `${text.slice(0, MAX_PRINTED - 1)}…` : text
}
