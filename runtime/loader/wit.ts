/**
 * Reads the WIT files in `wit/` (Warden's own, trusted) into {@link Contracts}: every
 * interface's functions and types, and every world's exports, structurally. They are the one
 * source of truth for what a component may import and must export (`contract.ts`).
 *
 * The grammar is the part of WIT those files use: a root `package` and nested `package … { }`
 * blocks; `interface` with `use`, `type`, `record`, `variant`, `enum`, `flags`, `resource`
 * (methods, `static`, `constructor`) and functions; `world` with `import`/`export` of
 * interfaces and functions; feature gates (`@since`, `@unstable`, `@deprecated`) are read and
 * ignored. Anything else throws a `TypeError`: these files are ours, a mistake in one is a bug.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isPrimitiveName, primitive } from './wit-types.js'
import type {
  Contracts,
  FuncType,
  InterfaceContract,
  InterfaceItem,
  ResourceType,
  ValType,
  WorldContract,
} from './wit-types.js'

// --- Tokens ----------------------------------------------------------------------------------

interface Token {
  /** `id` (a name, `%` stripped), `ver` (a semver after `@`), or the punctuation itself. */
  t: string
  v: string
  at: number
}

const PUNCTUATION = new Set(['{', '}', '(', ')', '<', '>', ',', ';', ':', '.', '/', '=', '*', '_'])

function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  const fail = (what: string): never => {
    throw new TypeError(`${file}: ${what} at offset ${i}`)
  }
  while (i < text.length) {
    const c = text[i]!
    if (/\s/.test(c)) {
      i++
    } else if (text.startsWith('//', i)) {
      const nl = text.indexOf('\n', i)
      i = nl < 0 ? text.length : nl
    } else if (text.startsWith('/*', i)) {
      const close = text.indexOf('*/', i + 2)
      i = close < 0 ? fail('unterminated comment') : close + 2
    } else if (text.startsWith('->', i)) {
      tokens.push({ t: '->', v: '->', at: i })
      i += 2
    } else if (c === '@') {
      // A version after a package name, or a feature gate (`@since(version = 0.2.0)`).
      const version = /^@(\d+\.\d+\.\d+(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)/.exec(text.slice(i))
      if (version) {
        tokens.push({ t: 'ver', v: version[1]!, at: i })
        i += version[0].length
      } else {
        const gate = /^@[a-z-]+\s*(\([^)]*\))?/.exec(text.slice(i))
        i = gate ? i + gate[0].length : fail('unexpected @')
      }
    } else if (/[%a-zA-Z]/.test(c)) {
      const word = /^%?[a-zA-Z][a-zA-Z0-9-]*/.exec(text.slice(i))!
      tokens.push({ t: 'id', v: word[0].replace(/^%/, ''), at: i })
      i += word[0].length
    } else if (PUNCTUATION.has(c)) {
      tokens.push({ t: c, v: c, at: i })
      i++
    } else {
      fail(`unexpected ${JSON.stringify(c)}`)
    }
  }
  return tokens
}

// --- Syntax ----------------------------------------------------------------------------------

type TypeRef =
  | { form: 'name'; name: string }
  | { form: 'list' | 'option'; of: TypeRef }
  | { form: 'result'; ok: TypeRef | undefined; err: TypeRef | undefined }
  | { form: 'tuple'; items: TypeRef[] }
  | { form: 'handle'; kind: 'own' | 'borrow'; name: string }

interface FuncDecl {
  params: { name: string; type: TypeRef }[]
  result: TypeRef | undefined
}

type Decl =
  | { decl: 'use'; from: string; names: { name: string; as: string }[] }
  | { decl: 'alias'; name: string; type: TypeRef }
  | { decl: 'record'; name: string; fields: { name: string; type: TypeRef }[] }
  | { decl: 'variant'; name: string; cases: { name: string; type: TypeRef | undefined }[] }
  | { decl: 'enum' | 'flags'; name: string; cases: string[] }
  | { decl: 'resource'; name: string; funcs: { name: string; f: FuncDecl; kind: string }[] }
  | { decl: 'func'; name: string; f: FuncDecl }

interface InterfaceDecl {
  pkg: string
  name: string
  decls: Decl[]
}

interface WorldDecl {
  pkg: string
  name: string
  exports: ({ kind: 'func'; name: string; f: FuncDecl } | { kind: 'interface'; path: string })[]
}

class Parser {
  readonly #tokens: Token[]
  readonly #file: string
  #i = 0
  readonly interfaces: InterfaceDecl[] = []
  readonly worlds: WorldDecl[] = []
  readonly versions = new Map<string, string | undefined>()

  constructor(text: string, file: string) {
    this.#tokens = tokenize(text, file)
    this.#file = file
  }

  #peek(ahead = 0): Token | undefined {
    return this.#tokens[this.#i + ahead]
  }

  #fail(what: string): never {
    const at = this.#peek()?.at ?? 'the end'
    throw new TypeError(`${this.#file}: ${what} at offset ${at}`)
  }

  #take(t: string, v?: string): Token {
    const token = this.#peek()
    if (!token || token.t !== t || (v !== undefined && token.v !== v)) {
      return this.#fail(`expected ${v ?? t}`)
    }
    this.#i++
    return token
  }

  #is(t: string, v?: string): boolean {
    const token = this.#peek()
    return token !== undefined && token.t === t && (v === undefined || token.v === v)
  }

  #eat(t: string, v?: string): boolean {
    if (this.#is(t, v)) {
      this.#i++
      return true
    }
    return false
  }

  #id(): string {
    return this.#take('id').v
  }

  /** `ns:pkg`, optionally `@version`. */
  #packageName(): { name: string; version: string | undefined } {
    const ns = this.#id()
    this.#take(':')
    const name = `${ns}:${this.#id()}`
    return { name, version: this.#is('ver') ? this.#take('ver').v : undefined }
  }

  file(): void {
    this.#take('id', 'package')
    const root = this.#packageName()
    this.versions.set(root.name, root.version)
    if (this.#eat('{')) {
      this.#packageBody(root.name, true)
    } else {
      this.#take(';')
      this.#packageBody(root.name, false)
    }
    while (this.#peek()) {
      this.#take('id', 'package')
      const nested = this.#packageName()
      this.versions.set(nested.name, nested.version)
      this.#take('{')
      this.#packageBody(nested.name, true)
    }
  }

  #packageBody(pkg: string, braced: boolean): void {
    for (;;) {
      if (braced && this.#eat('}')) {
        return
      }
      if (!braced && (!this.#peek() || this.#is('id', 'package'))) {
        return
      }
      const word = this.#id()
      if (word === 'interface') {
        const name = this.#id()
        this.#take('{')
        const decls: Decl[] = []
        while (!this.#eat('}')) {
          decls.push(this.#decl())
        }
        this.interfaces.push({ pkg, name, decls })
      } else if (word === 'world') {
        this.worlds.push(this.#world(pkg))
      } else {
        this.#fail(`unexpected ${word}`)
      }
    }
  }

  #world(pkg: string): WorldDecl {
    const world: WorldDecl = { pkg, name: this.#id(), exports: [] }
    this.#take('{')
    while (!this.#eat('}')) {
      const direction = this.#id()
      if (direction !== 'import' && direction !== 'export') {
        this.#fail(`unexpected ${direction} in a world`)
      }
      let item: WorldDecl['exports'][number]
      if (this.#peek(1)?.t === ':' && this.#peek(2)?.v === 'func') {
        const name = this.#id()
        this.#take(':')
        this.#take('id', 'func')
        item = { kind: 'func', name, f: this.#funcRest() }
      } else {
        item = { kind: 'interface', path: this.#usePath() }
      }
      this.#take(';')
      if (direction === 'export') {
        world.exports.push(item)
      }
    }
    return world
  }

  /** `name`, or `ns:pkg/name` with an optional `@version` (dropped: contracts are unversioned). */
  #usePath(): string {
    const first = this.#id()
    if (!this.#eat(':')) {
      return first
    }
    const pkg = this.#id()
    this.#take('/')
    const path = `${first}:${pkg}/${this.#id()}`
    this.#eat('ver')
    return path
  }

  #decl(): Decl {
    const word = this.#id()
    switch (word) {
      case 'use': {
        const from = this.#usePath()
        this.#take('.')
        this.#take('{')
        const names: { name: string; as: string }[] = []
        do {
          const name = this.#id()
          names.push({ name, as: this.#eat('id', 'as') ? this.#id() : name })
        } while (this.#eat(','))
        this.#take('}')
        this.#take(';')
        return { decl: 'use', from, names }
      }
      case 'type': {
        const name = this.#id()
        this.#take('=')
        const type = this.#type()
        this.#take(';')
        return { decl: 'alias', name, type }
      }
      case 'record': {
        const name = this.#id()
        const fields = this.#list(() => {
          const field = this.#id()
          this.#take(':')
          return { name: field, type: this.#type() }
        })
        return { decl: 'record', name, fields }
      }
      case 'variant': {
        const name = this.#id()
        const cases = this.#list(() => {
          const c = this.#id()
          let type: TypeRef | undefined
          if (this.#eat('(')) {
            type = this.#type()
            this.#take(')')
          }
          return { name: c, type }
        })
        return { decl: 'variant', name, cases }
      }
      case 'enum':
      case 'flags':
        return { decl: word, name: this.#id(), cases: this.#list(() => this.#id()) }
      case 'resource': {
        const name = this.#id()
        const funcs: { name: string; f: FuncDecl; kind: string }[] = []
        if (this.#eat('{')) {
          while (!this.#eat('}')) {
            if (this.#eat('id', 'constructor')) {
              const f = this.#params()
              this.#take(';')
              funcs.push({ name, f: { params: f, result: undefined }, kind: 'constructor' })
              continue
            }
            const method = this.#id()
            this.#take(':')
            const kind = this.#eat('id', 'static') ? 'static' : 'method'
            this.#take('id', 'func')
            funcs.push({ name: method, f: this.#funcRest(), kind })
            this.#take(';')
          }
        } else {
          this.#take(';')
        }
        return { decl: 'resource', name, funcs }
      }
      default: {
        this.#take(':')
        this.#take('id', 'func')
        const f = this.#funcRest()
        this.#take(';')
        return { decl: 'func', name: word, f }
      }
    }
  }

  /** `{ a, b, }` with `each` reading one element. */
  #list<T>(each: () => T): T[] {
    this.#take('{')
    const out: T[] = []
    while (!this.#eat('}')) {
      out.push(each())
      if (!this.#eat(',')) {
        this.#take('}')
        break
      }
    }
    return out
  }

  #params(): { name: string; type: TypeRef }[] {
    this.#take('(')
    const params: { name: string; type: TypeRef }[] = []
    while (!this.#eat(')')) {
      const name = this.#id()
      this.#take(':')
      params.push({ name, type: this.#type() })
      if (!this.#eat(',')) {
        this.#take(')')
        break
      }
    }
    return params
  }

  #funcRest(): FuncDecl {
    const params = this.#params()
    return { params, result: this.#eat('->') ? this.#type() : undefined }
  }

  #type(): TypeRef {
    const word = this.#id()
    const angled = <T>(read: () => T): T => {
      this.#take('<')
      const value = read()
      this.#take('>')
      return value
    }
    switch (word) {
      case 'list':
      case 'option':
        return { form: word, of: angled(() => this.#type()) }
      case 'tuple':
        return {
          form: 'tuple',
          items: angled(() => {
            const items = [this.#type()]
            while (this.#eat(',')) {
              items.push(this.#type())
            }
            return items
          }),
        }
      case 'result': {
        if (!this.#is('<')) {
          return { form: 'result', ok: undefined, err: undefined }
        }
        return angled(() => {
          const ok = this.#eat('_') ? undefined : this.#type()
          const err = this.#eat(',') ? this.#type() : undefined
          return { form: 'result' as const, ok, err }
        })
      }
      case 'own':
      case 'borrow':
        return { form: 'handle', kind: word, name: angled(() => this.#id()) }
      default:
        return { form: 'name', name: word }
    }
  }
}

// --- Resolution ------------------------------------------------------------------------------

class Resolver {
  readonly #decls = new Map<string, InterfaceDecl>()
  readonly #done = new Map<string, InterfaceContract>()
  readonly #resolving = new Set<string>()

  constructor(interfaces: readonly InterfaceDecl[]) {
    for (const i of interfaces) {
      this.#decls.set(`${i.pkg}/${i.name}`, i)
    }
  }

  get names(): string[] {
    return [...this.#decls.keys()]
  }

  /** The interface `ns:pkg/name`, resolved once. */
  interface(full: string): InterfaceContract {
    const done = this.#done.get(full)
    if (done) {
      return done
    }
    const decl = this.#decls.get(full)
    if (!decl) {
      throw new TypeError(`WIT: unknown interface ${full}`)
    }
    if (this.#resolving.has(full)) {
      throw new TypeError(`WIT: interfaces use each other in a cycle at ${full}`)
    }
    this.#resolving.add(full)
    const items = new Map<string, InterfaceItem>()
    const types = new Map<string, ValType | ResourceType>()
    const named = (name: string): ValType | ResourceType => {
      const type = types.get(name)
      if (!type) {
        throw new TypeError(`WIT: unknown type ${name} in ${full}`)
      }
      return type
    }
    const resolve = (ref: TypeRef): ValType => this.#valType(ref, named, full)
    const func = (f: FuncDecl, self?: ResourceType): FuncType => ({
      kind: 'func',
      params: [
        ...(self ? [{ name: 'self', type: { kind: 'borrow' as const, resource: self } }] : []),
        ...f.params.map((p) => ({ name: p.name, type: resolve(p.type) })),
      ],
      result: f.result && resolve(f.result),
    })
    const define = (name: string, type: ValType | ResourceType) => {
      types.set(name, type)
      items.set(name, { sort: 'type', type })
    }
    for (const d of decl.decls) {
      switch (d.decl) {
        case 'use': {
          const from = this.interface(d.from.includes(':') ? d.from : `${decl.pkg}/${d.from}`)
          for (const { name, as } of d.names) {
            const item = from.items.get(name)
            if (item?.sort !== 'type') {
              throw new TypeError(`WIT: ${d.from} has no type ${name}`)
            }
            define(as, item.type)
          }
          break
        }
        case 'alias':
          define(d.name, resolve(d.type))
          break
        case 'record':
          define(d.name, {
            kind: 'record',
            name: d.name,
            fields: d.fields.map((f) => ({ name: f.name, type: resolve(f.type) })),
          })
          break
        case 'variant':
          define(d.name, {
            kind: 'variant',
            name: d.name,
            cases: d.cases.map((c) => ({ name: c.name, type: c.type && resolve(c.type) })),
          })
          break
        case 'enum':
          define(d.name, { kind: 'enum', name: d.name, cases: d.cases })
          break
        case 'flags':
          define(d.name, { kind: 'flags', name: d.name, names: d.cases })
          break
        case 'resource': {
          const resource: ResourceType = { kind: 'resource', name: d.name, owner: full }
          define(d.name, resource)
          for (const m of d.funcs) {
            if (m.kind === 'constructor') {
              const f = func(m.f)
              f.result = { kind: 'own', resource }
              items.set(`[constructor]${d.name}`, { sort: 'func', type: f })
            } else {
              const self = m.kind === 'method' ? resource : undefined
              items.set(`[${m.kind}]${d.name}.${m.name}`, { sort: 'func', type: func(m.f, self) })
            }
          }
          break
        }
        case 'func':
          items.set(d.name, { sort: 'func', type: func(d.f) })
          break
      }
    }
    const contract: InterfaceContract = { name: full, items }
    this.#resolving.delete(full)
    this.#done.set(full, contract)
    return contract
  }

  /** A world-level function: its types are primitives and anonymous ones only. */
  funcOutside(f: FuncDecl, where: string): FuncType {
    const named = (name: string): never => {
      throw new TypeError(`WIT: unknown type ${name} in ${where}`)
    }
    return {
      kind: 'func',
      params: f.params.map((p) => ({ name: p.name, type: this.#valType(p.type, named, where) })),
      result: f.result && this.#valType(f.result, named, where),
    }
  }

  #valType(ref: TypeRef, named: (name: string) => ValType | ResourceType, where: string): ValType {
    const inner = (r: TypeRef) => this.#valType(r, named, where)
    switch (ref.form) {
      case 'name': {
        if (isPrimitiveName(ref.name)) {
          return primitive(ref.name)
        }
        const type = named(ref.name)
        return type.kind === 'resource' ? { kind: 'own', resource: type } : type
      }
      case 'list':
        return { kind: 'list', element: inner(ref.of) }
      case 'option':
        return { kind: 'option', some: inner(ref.of) }
      case 'result':
        return { kind: 'result', ok: ref.ok && inner(ref.ok), err: ref.err && inner(ref.err) }
      case 'tuple':
        return { kind: 'tuple', items: ref.items.map(inner) }
      case 'handle': {
        const resource = named(ref.name)
        if (resource.kind !== 'resource') {
          throw new TypeError(`WIT: ${ref.kind}<${ref.name}> of a non-resource in ${where}`)
        }
        return { kind: ref.kind, resource }
      }
    }
  }
}

/**
 * Read WIT source texts into {@link Contracts}. Throws a `TypeError` for anything outside the
 * grammar described at the top of this file, or an unknown type or interface.
 *
 * @example
 * const contracts = parseWitContracts([readFileSync('wit/platform.wit', 'utf8')])
 * contracts.interfaces.get('warden:platform/log')?.items.get('write')
 */
export function parseWitContracts(sources: readonly string[]): Contracts {
  const interfaces: InterfaceDecl[] = []
  const worlds: WorldDecl[] = []
  const versions = new Map<string, string | undefined>()
  sources.forEach((text, n) => {
    const parser = new Parser(text, `WIT source ${n}`)
    parser.file()
    interfaces.push(...parser.interfaces)
    worlds.push(...parser.worlds)
    for (const [k, v] of parser.versions) {
      versions.set(k, v)
    }
  })
  const resolver = new Resolver(interfaces)
  const contracts: Contracts = { interfaces: new Map(), worlds: new Map(), versions }
  for (const name of resolver.names) {
    contracts.interfaces.set(name, resolver.interface(name))
  }
  for (const w of worlds) {
    const functions = new Map<string, FuncType>()
    const exported: string[] = []
    for (const e of w.exports) {
      if (e.kind === 'func') {
        functions.set(e.name, resolver.funcOutside(e.f, `${w.pkg}/${w.name}`))
      } else {
        const full = e.path.includes(':') ? e.path : `${w.pkg}/${e.path}`
        resolver.interface(full)
        exported.push(full)
      }
    }
    const world: WorldContract = { name: `${w.pkg}/${w.name}`, functions, interfaces: exported }
    contracts.worlds.set(world.name, world)
  }
  return contracts
}

/** The folder of Warden's WIT files: `wit/` at the package root, from sources or from `dist/`. */
export function witDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'wit')
    try {
      if (readdirSync(candidate).includes('platform.wit')) {
        return candidate
      }
    } catch {
      // not here: look one level up
    }
    dir = dirname(dir)
  }
  throw new Error("cannot find Warden's wit/ folder")
}

let shippedTexts: readonly string[] | undefined
let shipped: Contracts | undefined

function shippedSources(): readonly string[] {
  if (!shippedTexts) {
    const dir = witDir()
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.wit'))
      .sort()
    shippedTexts = files.map((f) => readFileSync(join(dir, f), 'utf8'))
  }
  return shippedTexts
}

/**
 * The contracts of every `*.wit` file in Warden's `wit/` folder, read once per process:
 * `warden:platform` and the WASI baseline Warden implements.
 */
export function shippedContracts(): Contracts {
  shipped ??= parseWitContracts(shippedSources())
  return shipped
}

/** {@link shippedContracts} plus the interfaces of `extra` WIT sources. */
export function contractsWith(extra: readonly string[]): Contracts {
  return extra.length === 0
    ? shippedContracts()
    : parseWitContracts([...shippedSources(), ...extra])
}
