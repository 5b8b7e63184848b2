/**
 * jco's glue, generated from an untrusted component, checked and turned into a function body
 * the sandbox worker can evaluate synchronously.
 *
 * The glue is guest-derived text (STYLE.md §12): jco 1.11.2 pasted guest-chosen names into it
 * unescaped. The name grammar on the binary is the first layer; this check is the second and
 * assumes the first has failed. It parses the glue with acorn and walks the tree with its own
 * scope analysis; no regular expression looks at the code.
 */
import { Parser } from 'acorn'
import type {
  AnyNode,
  ArrowFunctionExpression,
  AssignmentProperty,
  Class,
  Expression,
  FunctionDeclaration,
  FunctionExpression,
  Identifier,
  MemberExpression,
  MethodDefinition,
  Pattern,
  PrivateIdentifier,
  Program,
  Property,
  PropertyDefinition,
  Statement,
  TemplateLiteral,
} from 'acorn'
import { WardenError } from '../errors.js'

/** Glue longer than this many characters is refused unparsed: 4 Mi (real glue: < 300 Ki). */
export const MAX_GLUE_CHARS = 4 * 1024 * 1024

/** How deep statements and expressions may nest (jco's own glue stays under 30). */
const MAX_DEPTH = 500

/** How the glue may use one global. A global with neither field is a plain value. */
export interface GlueGlobal {
  /**
   * It may stand alone as a callee (`String(x)`, `new TypeError(…)`), the right side of
   * `instanceof`, a class heritage or the operand of `typeof`, never as a plain value (so it
   * cannot be aliased and then read through a name not listed in `members`).
   */
  readonly bare?: true
  /** Member paths it may be read through (`create`, `prototype.hasOwnProperty`). */
  readonly members?: readonly string[]
}

/**
 * Every global jco 1.11.2's sync-instantiation glue reads, and how. Derived from its templates
 * (crates/js-component-bindgen/src/{intrinsics,function_bindgen,transpile_bindgen}.rs at tag
 * jco-v1.11.2), less what instantiation mode never emits (core-module loading, JSPI, tracing,
 * the WebIDL proxy), and checked against the glue of every test guest (glue.test.ts). Any
 * other free identifier refuses the glue, and so does any write to one of these.
 *
 * Never here, whatever jco does: `process`, `globalThis`, `global`, `self`, `window`,
 * `Function`, `eval`, `require`, `module`, `Buffer`, `fetch`, `setTimeout`, `queueMicrotask`,
 * `Atomics`, `SharedArrayBuffer`, `Reflect`, `Proxy`.
 */
export const GLUE_GLOBALS: ReadonlyMap<string, GlueGlobal> = new Map<string, GlueGlobal>([
  ['undefined', {}],
  // Thrown and recognised errors; ComponentError extends Error.
  ['Error', { bare: true }],
  ['TypeError', { bare: true }],
  // ToString, ToBigInt64/ToBigUint64, bitcasts, flags, chars, UTF-16 transcoding.
  ['String', { bare: true, members: ['fromCodePoint', 'fromCharCode'] }],
  ['Number', { bare: true }],
  ['BigInt', { bare: true, members: ['asIntN', 'asUintN'] }],
  ['Boolean', { bare: true }],
  // Resources (handles and Symbol.dispose as defined properties), ComponentError.payload,
  // and getErrorPayload's `hasOwnProperty.call(e, 'payload')`.
  ['Object', { members: ['create', 'defineProperty', 'prototype.hasOwnProperty'] }],
  ['Symbol', { bare: true, members: ['for', 'dispose'] }],
  ['Map', { bare: true }],
  ['FinalizationRegistry', { bare: true }],
  // Guest memory: one DataView, typed arrays for strings and lists of numbers.
  ['ArrayBuffer', { bare: true }],
  ['DataView', { bare: true }],
  ['Uint8Array', { bare: true }],
  ['Uint16Array', { bare: true }],
  ['Uint32Array', { bare: true }],
  ['BigUint64Array', { bare: true }],
  ['Int8Array', { bare: true }],
  ['Int16Array', { bare: true }],
  ['Int32Array', { bare: true }],
  ['BigInt64Array', { bare: true }],
  ['Float32Array', { bare: true }],
  ['Float64Array', { bare: true }],
  ['TextDecoder', { bare: true }],
  ['TextEncoder', { bare: true }],
  // Variant lowering's error message.
  ['JSON', { members: ['stringify'] }],
  // The sync driver loop: `value instanceof Promise`, `new Promise(…)`.
  ['Promise', { bare: true }],
  // The default instantiateCore, and the flags of components that need them.
  ['WebAssembly', { members: ['Instance', 'Global'] }],
  // Enum lowering logs a host Error handed to it instead of a case, then throws. (The worker's
  // glue realm has no console: there that call throws, and the lowering fails all the same.)
  ['console', { members: ['error'] }],
])

/**
 * Property names the glue may not use as a member (`a.b`, `a['b']`), an object-literal or
 * class key, or a destructuring key: the ways from a value to its constructor (and so to
 * `Function`), to a prototype, or to the host. `prototype` has narrow exceptions for jco's
 * resource classes (see `GlueWalker.#prototype`).
 */
const DANGEROUS_NAMES: ReadonlySet<string> = new Set([
  'constructor',
  '__proto__',
  'prototype',
  'caller',
  'callee',
  'arguments',
  '__defineGetter__',
  '__defineSetter__',
  '__lookupGetter__',
  '__lookupSetter__',
  'getPrototypeOf',
  'setPrototypeOf',
  'process',
  'mainModule',
  'binding',
  'getBuiltinModule',
])

/** Identifiers refused wherever they appear, bound or not. */
const FORBIDDEN_IDENTIFIERS: ReadonlySet<string> = new Set(['eval', 'arguments'])

/**
 * Refuse the glue unless it has the shape jco 1.11.2 emits in sync instantiation mode and
 * reaches nothing outside it. Throws `invalid_component`; the detail is in `cause`.
 *
 * On the text: at most {@link MAX_GLUE_CHARS}, ASCII only, no `<!--` or `-->`.
 * On the tree (acorn, `sourceType: 'module'`):
 * - the program is exactly `export function instantiate(getCoreModule, imports,
 *   instantiateCore = …) { … }`: no import, no other export, nothing else at top level;
 * - every free identifier (bound by no enclosing scope) is in {@link GLUE_GLOBALS}, used only
 *   in the forms listed there, and never written, updated or deleted;
 * - no `import()`, `import.meta`, `with`, `debugger`, tagged template, `eval`, `arguments`;
 * - no member, key or destructuring name among the dangerous ones (`constructor`,
 *   `__proto__`, `prototype` outside jco's resource forms, …); every literal key is a safe
 *   name (ASCII letters, digits, `_ - . : / @ # $ [ ]`); a computed key that is not a literal
 *   is an identifier, a member read or arithmetic on them;
 * - string and template text is printable ASCII without backslashes.
 *
 * What it cannot see: a key computed at run time from strings (`o[k]` with `k` holding
 * `'constructor'`). jco indexes with numbers and symbols only, but telling those apart needs
 * types; keeping `process` out of the context the glue runs in is the next layer.
 *
 * @example
 * checkGlue(new TextDecoder().decode(files['component.js']))  // or throws invalid_component
 */
export function checkGlue(glue: string): void {
  parseGlue(glue)
}

/**
 * The checked glue as the body of a function that returns `instantiate`.
 *
 * @example
 * const instantiate = vm.compileFunction(glueFunctionBody(glue))()
 */
export function glueFunctionBody(glue: string): string {
  const declaration = parseGlue(glue)
  // The declaration's own text only: no comment outside it reaches the worker.
  return `'use strict';\n${glue.slice(declaration.start, declaration.end)}\nreturn instantiate\n`
}

function refuse(message: string, detail: string): never {
  throw new WardenError('invalid_component', `the generated bindings ${message}`, {
    cause: new Error(detail),
  })
}

/** Parse and check; returns the `instantiate` declaration. */
function parseGlue(glue: string): FunctionDeclaration {
  if (glue.length > MAX_GLUE_CHARS) {
    refuse('are too large', `${glue.length} characters, more than ${MAX_GLUE_CHARS}`)
  }
  checkText(glue)
  let program: Program
  try {
    program = Parser.parse(glue, {
      ecmaVersion: 'latest',
      sourceType: 'module',
      allowHashBang: false,
    })
  } catch (error) {
    // A SyntaxError, or a RangeError when deep nesting overflows acorn's recursion.
    if (error instanceof SyntaxError || error instanceof RangeError) {
      refuse('do not parse', error.message)
    }
    throw error
  }
  const declaration = checkShape(program)
  let violations: readonly string[]
  try {
    violations = new GlueWalker().check(program, declaration)
  } catch (error) {
    if (error instanceof RangeError) {
      refuse('nest too deeply', error.message)
    }
    throw error
  }
  if (violations.length > 0) {
    refuse('reach outside what jco generates', violations.slice(0, 20).join('\n'))
  }
  return declaration
}

/**
 * The text: ASCII (tab, line feed, carriage return and printable), and no `<!--` or `-->`.
 * Those two start comments in a script, the goal the worker compiles the function body in,
 * but are operators in a module, the goal parsed here: the two parsers would see different
 * programs. Non-ASCII line terminators would be the next such difference; jco writes none.
 */
function checkText(glue: string): void {
  for (let i = 0; i < glue.length; i++) {
    const c = glue.charCodeAt(i)
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c > 0x7e) {
      refuse('contain a character jco does not write', `code unit 0x${c.toString(16)} at ${i}`)
    }
  }
  if (glue.includes('<!--') || glue.includes('-->')) {
    refuse('contain an HTML-like comment', 'the text has <!-- or -->')
  }
}

/** The one shape of jco 1.11.2's sync glue: a single exported `instantiate`. */
function checkShape(program: Program): FunctionDeclaration {
  const [only, ...rest] = program.body
  const declaration = only?.type === 'ExportNamedDeclaration' ? only.declaration : undefined
  if (
    rest.length > 0 ||
    only?.type !== 'ExportNamedDeclaration' ||
    only.specifiers.length > 0 ||
    only.source ||
    declaration?.type !== 'FunctionDeclaration' ||
    declaration.id.name !== 'instantiate' ||
    declaration.async ||
    declaration.generator
  ) {
    refuse('have an unexpected shape', 'the program is not one exported function instantiate')
  }
  const [getCoreModule, imports, instantiateCore, ...more] = declaration.params
  if (
    more.length > 0 ||
    getCoreModule?.type !== 'Identifier' ||
    getCoreModule.name !== 'getCoreModule' ||
    imports?.type !== 'Identifier' ||
    imports.name !== 'imports' ||
    instantiateCore?.type !== 'AssignmentPattern' ||
    instantiateCore.left.type !== 'Identifier' ||
    instantiateCore.left.name !== 'instantiateCore'
  ) {
    refuse(
      'have an unexpected shape',
      'instantiate does not take (getCoreModule, imports, instantiateCore = …)',
    )
  }
  return declaration
}

/** One lexical scope and the names declared directly in it. */
class Scope {
  readonly names = new Set<string>()
  /** The classes among `names`: only these may have methods assigned to their prototype. */
  readonly classes = new Set<string>()
  readonly parent: Scope | undefined
  /** `function` scopes take `var`s; `params` scopes keep parameters apart from them. */
  readonly kind: 'function' | 'params' | 'block'

  constructor(parent: Scope | undefined, kind: 'function' | 'params' | 'block') {
    this.parent = parent
    this.kind = kind
  }

  /** The scope that declares `name`, if any does. */
  lookup(name: string): Scope | undefined {
    for (let scope: Scope | undefined = this; scope; scope = scope.parent) {
      if (scope.names.has(name)) {
        return scope
      }
    }
    return undefined
  }

  varScope(): Scope {
    let scope: Scope = this
    while (scope.kind !== 'function' && scope.parent) {
      scope = scope.parent
    }
    return scope
  }
}

/**
 * How an expression is used where it stands: `bare` is a position a global may take alone (see
 * {@link GlueGlobal.bare}); `write` is the target of an assignment, update or `delete`.
 */
type Use = 'value' | 'bare' | 'write'

/** A name read or written, resolved once every declaration is known. */
interface Reference {
  name: string
  scope: Scope
  use: Use
  /** The non-computed member names read from it, in order (`Object.prototype.x`: prototype, x). */
  path: readonly string[]
  /** The member chain goes on past `path` with a computed or private step. */
  deeper: boolean
  at: number
}

/** `R.prototype` in the glue, judged once every declaration is known. */
interface PrototypeSite {
  name: string
  scope: Scope
  /** `R.prototype.m` read, `R.prototype.m = …`, `Object.create(R.prototype)`, or anything else. */
  form: 'read' | 'write' | 'create' | 'other'
  at: number
}

/**
 * The walk. Each node is visited exactly once and counted, and the count is compared with a
 * generic crawl of the tree: a node type or child this walk forgot would otherwise hide the
 * identifiers under it.
 */
class GlueWalker {
  readonly #violations: string[] = []
  readonly #references: Reference[] = []
  readonly #prototypes: PrototypeSite[] = []
  /** `R.prototype` nodes that are the argument of `Object.create`. */
  readonly #createArguments = new WeakSet<AnyNode>()
  #visited = 0
  #depth = 0

  check(program: Program, declaration: FunctionDeclaration): readonly string[] {
    const module = new Scope(undefined, 'function')
    this.#enter(program)
    this.#enter(program.body[0]!)
    this.#enter(declaration)
    module.names.add(declaration.id.name)
    this.#function(declaration, module)
    for (const ref of this.#references) {
      this.#resolve(ref)
    }
    for (const site of this.#prototypes) {
      this.#resolvePrototype(site)
    }
    const total = countNodes(program)
    if (total !== this.#visited) {
      this.#violations.push(`internal: the check visited ${this.#visited} of ${total} nodes`)
    }
    return this.#violations
  }

  #violation(node: AnyNode, what: string): void {
    this.#violations.push(`${what} at ${node.start}`)
  }

  #enter(_node: AnyNode): void {
    this.#visited++
  }

  #nest(): void {
    if (++this.#depth > MAX_DEPTH) {
      throw new RangeError(`nesting deeper than ${MAX_DEPTH}`)
    }
  }

  // Scopes and declarations.

  #declare(scope: Scope, id: Identifier): void {
    this.#enter(id)
    this.#identifier(id)
    scope.names.add(id.name)
  }

  /** A function of any kind; the caller has entered its node (and declared a declaration's id). */
  #function(
    node: FunctionDeclaration | FunctionExpression | ArrowFunctionExpression,
    outer: Scope,
  ): void {
    // Parameters get their own scope: a default value never sees the body's `var`s.
    const params = new Scope(outer, 'params')
    if (node.type === 'FunctionDeclaration') {
      this.#enter(node.id)
      this.#identifier(node.id)
    } else if (node.type === 'FunctionExpression' && node.id) {
      this.#declare(params, node.id)
    }
    for (const param of node.params) {
      this.#pattern(param, params, params)
    }
    const body = new Scope(params, 'function')
    if (node.body.type === 'BlockStatement') {
      this.#enter(node.body)
      for (const statement of node.body.body) {
        this.#statement(statement, body)
      }
    } else {
      this.#expression(node.body, body, 'value')
    }
  }

  /** A binding pattern: names go into `target`, default values are evaluated in `scope`. */
  #pattern(node: Pattern, target: Scope, scope: Scope): void {
    switch (node.type) {
      case 'Identifier':
        this.#declare(target, node)
        return
      case 'ObjectPattern':
        this.#enter(node)
        for (const property of node.properties) {
          this.#enter(property)
          if (property.type === 'RestElement') {
            this.#pattern(property.argument, target, scope)
          } else {
            this.#key(property, scope)
            this.#pattern(property.value, target, scope)
          }
        }
        return
      case 'ArrayPattern':
        this.#enter(node)
        for (const element of node.elements) {
          if (element) {
            this.#pattern(element, target, scope)
          }
        }
        return
      case 'RestElement':
        this.#enter(node)
        this.#pattern(node.argument, target, scope)
        return
      case 'AssignmentPattern':
        this.#enter(node)
        this.#pattern(node.left, target, scope)
        this.#expression(node.right, scope, 'value')
        return
      default:
        // A MemberExpression cannot be bound; acorn never puts one here.
        this.#unknown(node)
    }
  }

  /** An assignment target: its names are references, written. */
  #target(node: Pattern, scope: Scope): void {
    switch (node.type) {
      case 'Identifier':
      case 'MemberExpression':
        this.#expression(node, scope, 'write')
        return
      case 'ObjectPattern':
        this.#enter(node)
        for (const property of node.properties) {
          this.#enter(property)
          if (property.type === 'RestElement') {
            this.#target(property.argument, scope)
          } else {
            this.#key(property, scope)
            this.#target(property.value, scope)
          }
        }
        return
      case 'ArrayPattern':
        this.#enter(node)
        for (const element of node.elements) {
          if (element) {
            this.#target(element, scope)
          }
        }
        return
      case 'RestElement':
        this.#enter(node)
        this.#target(node.argument, scope)
        return
      case 'AssignmentPattern':
        this.#enter(node)
        this.#target(node.left, scope)
        this.#expression(node.right, scope, 'value')
        return
      default:
        this.#unknown(node)
    }
  }

  // Statements.

  #statement(node: Statement, scope: Scope): void {
    this.#enter(node)
    this.#nest()
    try {
      this.#statementBody(node, scope)
    } finally {
      this.#depth--
    }
  }

  #statementBody(node: Statement, scope: Scope): void {
    switch (node.type) {
      case 'ExpressionStatement':
        this.#expression(node.expression, scope, 'value')
        return
      case 'BlockStatement': {
        const block = new Scope(scope, 'block')
        for (const statement of node.body) {
          this.#statement(statement, block)
        }
        return
      }
      case 'EmptyStatement':
        return
      case 'ReturnStatement':
      case 'ThrowStatement':
        if (node.argument) {
          this.#expression(node.argument, scope, 'value')
        }
        return
      case 'IfStatement':
        this.#expression(node.test, scope, 'value')
        this.#statement(node.consequent, scope)
        if (node.alternate) {
          this.#statement(node.alternate, scope)
        }
        return
      case 'LabeledStatement':
        this.#enter(node.label) // a label, not a variable
        this.#statement(node.body, scope)
        return
      case 'BreakStatement':
      case 'ContinueStatement':
        if (node.label) {
          this.#enter(node.label)
        }
        return
      case 'SwitchStatement': {
        // The discriminant is outside the cases' block: it never sees their declarations.
        this.#expression(node.discriminant, scope, 'value')
        const cases = new Scope(scope, 'block')
        for (const c of node.cases) {
          this.#enter(c)
          if (c.test) {
            this.#expression(c.test, cases, 'value')
          }
          for (const statement of c.consequent) {
            this.#statement(statement, cases)
          }
        }
        return
      }
      case 'TryStatement':
        this.#statement(node.block, scope)
        if (node.handler) {
          this.#enter(node.handler)
          const caught = new Scope(scope, 'block')
          if (node.handler.param) {
            this.#pattern(node.handler.param, caught, caught)
          }
          this.#statement(node.handler.body, caught)
        }
        if (node.finalizer) {
          this.#statement(node.finalizer, scope)
        }
        return
      case 'WhileStatement':
      case 'DoWhileStatement':
        this.#expression(node.test, scope, 'value')
        this.#statement(node.body, scope)
        return
      case 'ForStatement': {
        const head = new Scope(scope, 'block')
        if (node.init?.type === 'VariableDeclaration') {
          this.#statement(node.init, head)
        } else if (node.init) {
          this.#expression(node.init, head, 'value')
        }
        if (node.test) {
          this.#expression(node.test, head, 'value')
        }
        if (node.update) {
          this.#expression(node.update, head, 'value')
        }
        this.#statement(node.body, head)
        return
      }
      case 'ForInStatement':
      case 'ForOfStatement': {
        const head = new Scope(scope, 'block')
        if (node.left.type === 'VariableDeclaration') {
          this.#statement(node.left, head)
        } else {
          this.#target(node.left, head)
        }
        this.#expression(node.right, head, 'value')
        this.#statement(node.body, head)
        return
      }
      case 'VariableDeclaration': {
        if (node.kind !== 'var' && node.kind !== 'let' && node.kind !== 'const') {
          this.#violation(node, `a ${node.kind} declaration`)
        }
        const target = node.kind === 'var' ? scope.varScope() : scope
        for (const declarator of node.declarations) {
          this.#enter(declarator)
          this.#pattern(declarator.id, target, scope)
          if (declarator.init) {
            this.#expression(declarator.init, scope, 'value')
          }
        }
        return
      }
      case 'FunctionDeclaration':
        // Block-scoped: the glue is strict code (a module here, 'use strict' in the worker).
        scope.names.add(node.id.name)
        this.#function(node, scope)
        return
      case 'ClassDeclaration':
        scope.names.add(node.id.name)
        scope.classes.add(node.id.name)
        this.#class(node, scope)
        return
      case 'WithStatement':
        this.#violation(node, 'a with statement')
        return
      case 'DebuggerStatement':
        this.#violation(node, 'a debugger statement')
        return
      default:
        this.#unknown(node)
    }
  }

  /** A class; the caller has entered its node and declared a declaration's id. */
  #class(node: Class, scope: Scope): void {
    const inner = new Scope(scope, 'block')
    if (node.type === 'ClassDeclaration') {
      this.#enter(node.id!)
      this.#identifier(node.id!)
    } else if (node.id) {
      this.#declare(inner, node.id)
    }
    if (node.superClass) {
      this.#expression(node.superClass, scope, 'bare')
    }
    this.#enter(node.body)
    for (const member of node.body.body) {
      this.#enter(member)
      switch (member.type) {
        case 'MethodDefinition':
          if (member.kind === 'constructor') {
            this.#enter(member.key) // `constructor (value) { … }`: the one place the name is fine
          } else {
            this.#key(member, inner)
          }
          this.#enter(member.value)
          this.#function(member.value, inner)
          break
        case 'PropertyDefinition':
          this.#key(member, inner)
          if (member.value) {
            this.#expression(member.value, new Scope(inner, 'function'), 'value')
          }
          break
        case 'StaticBlock': {
          const block = new Scope(inner, 'function')
          for (const statement of member.body) {
            this.#statement(statement, block)
          }
          break
        }
        default:
          this.#unknown(member)
      }
    }
  }

  // Expressions.

  #expression(node: AnyNode, scope: Scope, use: Use): void {
    this.#enter(node)
    this.#nest()
    try {
      this.#expressionBody(node, scope, use)
    } finally {
      this.#depth--
    }
  }

  #expressionBody(node: AnyNode, scope: Scope, use: Use): void {
    switch (node.type) {
      case 'Identifier':
        this.#identifier(node)
        this.#references.push({
          name: node.name,
          scope,
          use,
          path: [],
          deeper: false,
          at: node.start,
        })
        return
      case 'MemberExpression':
        this.#member(node, scope, use)
        return
      case 'Literal':
        if (typeof node.value === 'string' && !isSafeText(node.value)) {
          this.#violation(node, 'a string with characters jco does not write')
        }
        return
      case 'ThisExpression':
      case 'Super':
        return
      case 'TemplateLiteral':
        this.#template(node, scope)
        return
      case 'ArrayExpression':
        for (const element of node.elements) {
          if (element) {
            this.#expression(element, scope, 'value')
          }
        }
        return
      case 'SpreadElement':
        this.#expression(node.argument, scope, 'value')
        return
      case 'ObjectExpression':
        for (const property of node.properties) {
          if (property.type === 'SpreadElement') {
            this.#expression(property, scope, 'value')
          } else {
            this.#enter(property)
            this.#key(property, scope)
            this.#expression(property.value, scope, 'value')
          }
        }
        return
      case 'FunctionExpression':
      case 'ArrowFunctionExpression':
        this.#function(node, scope)
        return
      case 'ClassExpression':
        this.#class(node, scope)
        return
      case 'UnaryExpression':
        this.#expression(
          node.argument,
          scope,
          node.operator === 'delete' ? 'write' : node.operator === 'typeof' ? 'bare' : 'value',
        )
        return
      case 'UpdateExpression':
        this.#expression(node.argument, scope, 'write')
        return
      case 'BinaryExpression':
        if (node.left.type === 'PrivateIdentifier') {
          this.#enter(node.left) // `#x in o`
        } else {
          this.#expression(node.left, scope, 'value')
        }
        this.#expression(node.right, scope, node.operator === 'instanceof' ? 'bare' : 'value')
        return
      case 'LogicalExpression':
        this.#expression(node.left, scope, 'value')
        this.#expression(node.right, scope, 'value')
        return
      case 'AssignmentExpression':
        this.#target(node.left, scope)
        this.#expression(node.right, scope, 'value')
        return
      case 'ConditionalExpression':
        this.#expression(node.test, scope, 'value')
        this.#expression(node.consequent, scope, 'value')
        this.#expression(node.alternate, scope, 'value')
        return
      case 'SequenceExpression':
        for (const e of node.expressions) {
          this.#expression(e, scope, 'value')
        }
        return
      case 'CallExpression':
      case 'NewExpression':
        if (node.type === 'CallExpression' && isObjectCreate(node.callee)) {
          const [first] = node.arguments
          if (first) {
            this.#createArguments.add(first)
          }
        }
        this.#expression(node.callee, scope, 'bare')
        for (const argument of node.arguments) {
          this.#expression(argument, scope, 'value')
        }
        return
      case 'ChainExpression':
      case 'ParenthesizedExpression':
        this.#expression(node.expression, scope, use)
        return
      case 'YieldExpression':
      case 'AwaitExpression':
        if (node.argument) {
          this.#expression(node.argument, scope, 'value')
        }
        return
      case 'MetaProperty':
        this.#enter(node.meta)
        this.#enter(node.property)
        // `new.target`: jco's resource constructors tell `new R()` from Object.create(R.prototype).
        if (node.meta.name !== 'new' || node.property.name !== 'target') {
          this.#violation(node, `${node.meta.name}.${node.property.name}`)
        }
        return
      case 'ImportExpression':
        this.#violation(node, 'import()')
        this.#expression(node.source, scope, 'value')
        if (node.options) {
          this.#expression(node.options, scope, 'value')
        }
        return
      case 'TaggedTemplateExpression':
        this.#violation(node, 'a tagged template')
        this.#expression(node.tag, scope, 'value')
        this.#expression(node.quasi, scope, 'value')
        return
      default:
        this.#unknown(node)
    }
  }

  #template(node: TemplateLiteral, scope: Scope): void {
    for (const quasi of node.quasis) {
      this.#enter(quasi)
      const cooked = quasi.value.cooked
      if (typeof cooked !== 'string' || !isSafeText(cooked)) {
        this.#violation(quasi, 'template text with characters jco does not write')
      }
    }
    for (const e of node.expressions) {
      this.#expression(e, scope, 'value')
    }
  }

  /**
   * `root.a.b[c].d`, walked from the root out. Each step's name is checked; an identifier
   * root is recorded with the names read from it before any computed step, so a global is
   * judged by the path it is read through.
   */
  #member(node: MemberExpression, scope: Scope, use: Use): void {
    const steps: MemberExpression[] = [node]
    let root: AnyNode = node.object
    while (root.type === 'MemberExpression') {
      steps.push(root)
      root = root.object
    }
    if (this.#depth + steps.length > MAX_DEPTH) {
      throw new RangeError(`a member chain deeper than ${MAX_DEPTH}`)
    }
    steps.reverse()
    for (const step of steps) {
      if (step !== node) {
        this.#enter(step) // `node` itself was entered by #expression
      }
    }
    const path: string[] = []
    let deeper = false
    for (const [i, step] of steps.entries()) {
      if (step.computed) {
        deeper = true
        this.#computedKey(step.property, scope)
        continue
      }
      this.#enter(step.property)
      if (step.property.type !== 'Identifier') {
        deeper = true // `this.#x`
        continue
      }
      const name = step.property.name
      if (!deeper) {
        path.push(name)
      }
      if (name === 'prototype') {
        this.#prototype(step, steps[i + 1], root, scope, use)
      } else {
        this.#name(step.property, name)
      }
    }
    if (root.type === 'Identifier') {
      this.#enter(root)
      this.#identifier(root)
      const rootUse = use === 'write' ? 'write' : 'value'
      this.#references.push({ name: root.name, scope, use: rootUse, path, deeper, at: root.start })
    } else {
      this.#expression(root, scope, 'value')
    }
  }

  /**
   * `R.prototype`, allowed in jco's forms only: `Object.prototype.hasOwnProperty` (judged with
   * the global `Object`), `Object.create(R.prototype)` and `R.prototype.method` read, with `R`
   * bound in the glue (an imported resource class), and `R.prototype.method = function …`
   * with `R` a class the glue declares (an exported resource). Never `R.prototype` itself as a
   * value or target.
   */
  #prototype(
    step: MemberExpression,
    outer: MemberExpression | undefined,
    root: AnyNode,
    scope: Scope,
    use: Use,
  ): void {
    if (step.object !== root || root.type !== 'Identifier') {
      this.#violation(step, 'the name prototype')
      return
    }
    const form =
      outer && !outer.computed
        ? use === 'write'
          ? 'write'
          : 'read'
        : this.#createArguments.has(step)
          ? 'create'
          : 'other'
    this.#prototypes.push({ name: root.name, scope, form, at: step.start })
  }

  /** A key in an object literal, a destructuring pattern or a class body. */
  #key(
    node: Property | AssignmentProperty | MethodDefinition | PropertyDefinition,
    scope: Scope,
  ): void {
    if (node.computed) {
      this.#computedKey(node.key, scope)
      return
    }
    this.#enter(node.key)
    if (node.key.type === 'Identifier') {
      this.#name(node.key, node.key.name)
    } else if (
      node.key.type === 'Literal' &&
      (typeof node.key.value === 'string' || typeof node.key.value === 'number')
    ) {
      this.#name(node.key, String(node.key.value))
    } else if (node.key.type === 'PrivateIdentifier') {
      this.#name(node.key, node.key.name)
    } else {
      this.#unknown(node.key)
    }
  }

  /**
   * A computed key: a literal with a safe name, or the indexing jco does (`table[handle << 1]`,
   * `rsc[symbolRscHandle]`, `view[i]`): identifiers, member reads and arithmetic on them.
   */
  #computedKey(node: Expression | PrivateIdentifier, scope: Scope): void {
    if (node.type === 'Literal') {
      this.#enter(node)
      if (typeof node.value === 'string' || typeof node.value === 'number') {
        this.#name(node, String(node.value))
      } else {
        this.#violation(node, 'a computed key that is neither a string nor a number')
      }
      return
    }
    if (!isIndexExpression(node)) {
      this.#violation(node, 'a computed key jco does not write')
    }
    this.#expression(node, scope, 'value')
  }

  #name(node: AnyNode, name: string): void {
    if (DANGEROUS_NAMES.has(name)) {
      this.#violation(node, `the name ${name}`)
    } else if (!isSafeName(name)) {
      this.#violation(node, 'a name with characters jco does not write')
    }
  }

  #identifier(node: Identifier): void {
    if (FORBIDDEN_IDENTIFIERS.has(node.name)) {
      this.#violation(node, `the identifier ${node.name}`)
    }
  }

  #resolve(ref: Reference): void {
    if (ref.scope.lookup(ref.name)) {
      return
    }
    const global = GLUE_GLOBALS.get(ref.name)
    const where = [ref.name, ...ref.path].join('.') + (ref.deeper ? '[…]' : '')
    if (!global) {
      this.#violations.push(`the global ${ref.name} at ${ref.at}`)
    } else if (ref.use === 'write') {
      this.#violations.push(`a write to the global ${where} at ${ref.at}`)
    } else if (ref.path.length > 0) {
      if (!global.members?.some((member) => startsWithPath(ref.path, member))) {
        this.#violations.push(`the global ${where} at ${ref.at}`)
      }
    } else if (global.bare || global.members) {
      // Not a plain value: only alone in a bare position.
      if (!(global.bare && ref.use === 'bare' && !ref.deeper)) {
        this.#violations.push(`the global ${where} used as a value at ${ref.at}`)
      }
    }
  }

  #resolvePrototype(site: PrototypeSite): void {
    const declared = site.scope.lookup(site.name)
    if (!declared) {
      // Only Object.prototype.hasOwnProperty, which #resolve judges as a path of Object.
      if (site.name !== 'Object' || site.form !== 'read') {
        this.#violations.push(`${site.name}.prototype at ${site.at}`)
      }
      return
    }
    const ok =
      site.form === 'read' ||
      site.form === 'create' ||
      (site.form === 'write' && declared.classes.has(site.name))
    if (!ok) {
      this.#violations.push(`${site.name}.prototype at ${site.at}`)
    }
  }

  #unknown(node: AnyNode): void {
    this.#violation(node, `a ${node.type} node`)
  }
}

/**
 * A property name or literal key: ASCII letters, digits and `_ - . : / @ # $ [ ]`. That is
 * every WIT name, core name and intrinsic jco writes (`'[method]output-stream.read'`,
 * `'warden:platform/handler@0.1.0#handle'`, `''` for the shim's unnamed module), and no quote,
 * space, bracket pair or operator that would come from broken escaping.
 */
function isSafeName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    const ok =
      (c >= 0x30 && c <= 0x39) || // 0-9
      (c >= 0x41 && c <= 0x5a) || // A-Z
      (c >= 0x61 && c <= 0x7a) || // a-z
      c === 0x5f || // _
      c === 0x2d || // -
      c === 0x2e || // .
      c === 0x3a || // :
      c === 0x2f || // /
      c === 0x40 || // @
      c === 0x23 || // #
      c === 0x24 || // $
      c === 0x5b || // [
      c === 0x5d // ]
    if (!ok) {
      return false
    }
  }
  return true
}

/** String and template text: printable ASCII without backslash (jco's messages and names). */
function isSafeText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x20 || c > 0x7e || c === 0x5c) {
      return false
    }
  }
  return true
}

/** `Object.create`, the only callee whose argument may be a bare `R.prototype`. */
function isObjectCreate(node: AnyNode): boolean {
  return (
    node.type === 'MemberExpression' &&
    !node.computed &&
    node.object.type === 'Identifier' &&
    node.object.name === 'Object' &&
    node.property.type === 'Identifier' &&
    node.property.name === 'create'
  )
}

/** `path` begins with the dotted `member`. */
function startsWithPath(path: readonly string[], member: string): boolean {
  const parts = member.split('.')
  return parts.length <= path.length && parts.every((part, i) => path[i] === part)
}

const NUMERIC_OPERATORS: ReadonlySet<string> = new Set([
  '-',
  '*',
  '/',
  '%',
  '**',
  '<<',
  '>>',
  '>>>',
  '&',
  '|',
  '^',
])

/**
 * A computed key jco writes: identifiers, member reads, and numeric operators over them. A
 * `+` needs a number on one side, so the key ends or starts with digits, as no dangerous name
 * does; `k1 + k2` of two unknowns could be `'constr' + 'uctor'`.
 */
function isIndexExpression(node: AnyNode): boolean {
  switch (node.type) {
    case 'Identifier':
      return true
    case 'Literal':
      return typeof node.value === 'number'
    case 'MemberExpression':
      return (!node.computed || isIndexExpression(node.property)) && isIndexExpression(node.object)
    case 'UnaryExpression':
      return (node.operator === '-' || node.operator === '~') && isIndexExpression(node.argument)
    case 'BinaryExpression':
      if (node.left.type === 'PrivateIdentifier') {
        return false
      }
      if (node.operator === '+' && !isNumeric(node.left) && !isNumeric(node.right)) {
        return false
      }
      return (
        (node.operator === '+' || NUMERIC_OPERATORS.has(node.operator)) &&
        isIndexExpression(node.left) &&
        isIndexExpression(node.right)
      )
    default:
      return false
  }
}

/** An expression whose value is always a number or a BigInt, never a string. */
function isNumeric(node: AnyNode): boolean {
  switch (node.type) {
    case 'Literal':
      return typeof node.value === 'number'
    case 'UnaryExpression':
      return node.operator === '-' || node.operator === '~'
    case 'BinaryExpression':
      return NUMERIC_OPERATORS.has(node.operator)
    default:
      return false
  }
}

/** Every node under `root`, found generically: any object with a string `type`. */
function countNodes(root: AnyNode): number {
  let count = 0
  const stack: object[] = [root]
  while (stack.length > 0) {
    const value = stack.pop() as Record<string, unknown>
    if (typeof value.type === 'string') {
      count++
    }
    // NB: for…in rather than Object.entries: this runs over every node, and the entries
    // arrays were most of the check's garbage on componentize-js glue.
    for (const key in value) {
      const child = value[key]
      if (typeof child === 'object' && child !== null && key !== 'loc') {
        stack.push(child)
      }
    }
  }
  return count
}
