/**
 * The glue check. Real glue, from jco 1.11.2 with the loader's options, passes, and its function
 * body compiles: every WAT guest of the test suite (generated here) and componentize-js guests
 * (test/fixtures/glue/). Hostile glue, each one a way out of the glue we know of, is refused.
 */
import { readdir, readFile } from 'node:fs/promises'
import { compileFunction, createContext } from 'node:vm'
import { componentEmbed, componentNew, parse, transpile } from '@bytecodealliance/jco'
import { describe, expect, it } from 'vitest'
import * as guests from '../../test/support/guests.js'
import { platformCaller } from '../../test/support/platform-guest.js'
import { compileWat, guestFile } from '../../test/support/wat.js'
import { WardenError } from '../errors.js'
import { checkGlue, GLUE_GLOBALS, glueFunctionBody, MAX_GLUE_CHARS } from './glue.js'

const PLATFORM_WIT = new URL('../../wit/platform.wit', import.meta.url)
const FIXTURES = new URL('../../test/fixtures/glue/', import.meta.url)

/** The glue of a component, transpiled as `transpile-child.ts` does. */
async function glueOf(component: Uint8Array): Promise<string> {
  const options = {
    name: 'component',
    instantiation: 'sync',
    typescript: false,
    nodejsCompat: false,
    base64Cutoff: 0,
  } as Parameters<typeof transpile>[1]
  const { files } = await transpile(component, options)
  return new TextDecoder().decode(files['component.js'])
}

/** A core module built into a component against `world` of `wit`. */
async function build(wit: string, world: string, wat: string): Promise<Uint8Array> {
  const embedded = await componentEmbed({
    binary: await parse(wat),
    witSource: wit,
    world,
    stringEncoding: 'utf8',
  })
  return componentNew(embedded, [])
}

/** `handler.handle` of the micro-app world: 200 with the request's path as the body. */
const MICRO_APP = `(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "warden:platform/handler@0.1.0#handle")
    (param $mp i32) (param $ml i32) (param $pp i32) (param $pl i32) (param $qp i32) (param $ql i32)
    (param $hp i32) (param $hl i32) (param $bp i32) (param $bl i32) (result i32)
    (i32.store16 (i32.const 64) (i32.const 200))
    (i32.store (i32.const 68) (i32.const 0))
    (i32.store (i32.const 72) (i32.const 0))
    (i32.store (i32.const 76) (local.get $pp))
    (i32.store (i32.const 80) (local.get $pl))
    (i32.const 64)))`

/** Every function of Warden's WASI baseline (host-capabilities/wasi/descriptor.ts), 0.2.0. */
const WASI_WIT = `
package test:wasi-app;

world app {
  import wasi:cli/environment@0.2.0;
  import wasi:cli/exit@0.2.0;
  import wasi:cli/stdin@0.2.0;
  import wasi:cli/stdout@0.2.0;
  import wasi:cli/stderr@0.2.0;
  import wasi:cli/terminal-stdout@0.2.0;
  import wasi:clocks/monotonic-clock@0.2.0;
  import wasi:clocks/wall-clock@0.2.0;
  import wasi:random/random@0.2.0;
  import wasi:random/insecure@0.2.0;
  import wasi:random/insecure-seed@0.2.0;
  export run: func(input: string) -> result<string, string>;
}

package wasi:io@0.2.0 {
  interface error {
    resource error { to-debug-string: func() -> string; }
  }
  interface poll {
    resource pollable { ready: func() -> bool; block: func(); }
    poll: func(in: list<borrow<pollable>>) -> list<u32>;
  }
  interface streams {
    use error.{error};
    use poll.{pollable};
    variant stream-error { last-operation-failed(error), closed }
    resource input-stream {
      read: func(len: u64) -> result<list<u8>, stream-error>;
      blocking-read: func(len: u64) -> result<list<u8>, stream-error>;
      subscribe: func() -> pollable;
    }
    resource output-stream {
      check-write: func() -> result<u64, stream-error>;
      write: func(contents: list<u8>) -> result<_, stream-error>;
      blocking-write-and-flush: func(contents: list<u8>) -> result<_, stream-error>;
      blocking-flush: func() -> result<_, stream-error>;
      subscribe: func() -> pollable;
    }
  }
}

package wasi:cli@0.2.0 {
  interface environment {
    get-environment: func() -> list<tuple<string, string>>;
    get-arguments: func() -> list<string>;
    initial-cwd: func() -> option<string>;
  }
  interface exit { exit: func(status: result); }
  interface stdin {
    use wasi:io/streams@0.2.0.{input-stream};
    get-stdin: func() -> input-stream;
  }
  interface stdout {
    use wasi:io/streams@0.2.0.{output-stream};
    get-stdout: func() -> output-stream;
  }
  interface stderr {
    use wasi:io/streams@0.2.0.{output-stream};
    get-stderr: func() -> output-stream;
  }
  interface terminal-output { resource terminal-output; }
  interface terminal-stdout {
    use terminal-output.{terminal-output};
    get-terminal-stdout: func() -> option<terminal-output>;
  }
}

package wasi:clocks@0.2.0 {
  interface monotonic-clock {
    use wasi:io/poll@0.2.0.{pollable};
    type instant = u64;
    type duration = u64;
    now: func() -> instant;
    resolution: func() -> duration;
    subscribe-instant: func(when: instant) -> pollable;
    subscribe-duration: func(when: duration) -> pollable;
  }
  interface wall-clock {
    record datetime { seconds: u64, nanoseconds: u32 }
    now: func() -> datetime;
    resolution: func() -> datetime;
  }
}

package wasi:random@0.2.0 {
  interface random {
    get-random-bytes: func(len: u64) -> list<u8>;
    get-random-u64: func() -> u64;
  }
  interface insecure {
    get-insecure-random-bytes: func(len: u64) -> list<u8>;
    get-insecure-random-u64: func() -> u64;
  }
  interface insecure-seed { insecure-seed: func() -> tuple<u64, u64>; }
}
`

/** Imports every WASI function above (so jco writes glue for each), and does nothing. */
const WASI_WAT = `(module
  (import "wasi:cli/environment@0.2.0" "get-environment" (func (param i32)))
  (import "wasi:cli/environment@0.2.0" "get-arguments" (func (param i32)))
  (import "wasi:cli/environment@0.2.0" "initial-cwd" (func (param i32)))
  (import "wasi:cli/exit@0.2.0" "exit" (func (param i32)))
  (import "wasi:cli/stdin@0.2.0" "get-stdin" (func (result i32)))
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func (result i32)))
  (import "wasi:cli/stderr@0.2.0" "get-stderr" (func (result i32)))
  (import "wasi:cli/terminal-stdout@0.2.0" "get-terminal-stdout" (func (param i32)))
  (import "wasi:cli/terminal-output@0.2.0" "[resource-drop]terminal-output" (func (param i32)))
  (import "wasi:io/error@0.2.0" "[method]error.to-debug-string" (func (param i32 i32)))
  (import "wasi:io/error@0.2.0" "[resource-drop]error" (func (param i32)))
  (import "wasi:io/poll@0.2.0" "[method]pollable.ready" (func (param i32) (result i32)))
  (import "wasi:io/poll@0.2.0" "[method]pollable.block" (func (param i32)))
  (import "wasi:io/poll@0.2.0" "poll" (func (param i32 i32 i32)))
  (import "wasi:io/poll@0.2.0" "[resource-drop]pollable" (func (param i32)))
  (import "wasi:io/streams@0.2.0" "[method]input-stream.read" (func (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.0" "[method]input-stream.blocking-read" (func (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.0" "[method]input-stream.subscribe" (func (param i32) (result i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.check-write" (func (param i32 i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.write" (func (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush"
    (func (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-flush" (func (param i32 i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.subscribe" (func (param i32) (result i32)))
  (import "wasi:io/streams@0.2.0" "[resource-drop]input-stream" (func (param i32)))
  (import "wasi:io/streams@0.2.0" "[resource-drop]output-stream" (func (param i32)))
  (import "wasi:clocks/monotonic-clock@0.2.0" "now" (func (result i64)))
  (import "wasi:clocks/monotonic-clock@0.2.0" "resolution" (func (result i64)))
  (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-instant" (func (param i64) (result i32)))
  (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration" (func (param i64) (result i32)))
  (import "wasi:clocks/wall-clock@0.2.0" "now" (func (param i32)))
  (import "wasi:clocks/wall-clock@0.2.0" "resolution" (func (param i32)))
  (import "wasi:random/random@0.2.0" "get-random-bytes" (func (param i64 i32)))
  (import "wasi:random/random@0.2.0" "get-random-u64" (func (result i64)))
  (import "wasi:random/insecure@0.2.0" "get-insecure-random-bytes" (func (param i64 i32)))
  (import "wasi:random/insecure@0.2.0" "get-insecure-random-u64" (func (result i64)))
  (import "wasi:random/insecure-seed@0.2.0" "insecure-seed" (func (param i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i32) (i32.const 16)))`

/** Every WAT guest of the test suite, plus the micro-app world and the whole WASI baseline. */
const WAT_GUESTS: ReadonlyArray<readonly [string, () => Promise<Uint8Array>]> = [
  ['echo (log; export run)', () => guestFile('echo')],
  ['atomic-wait (two core modules, no imports)', () => guestFile('atomic-wait')],
  ['platform-caller (http, secrets, data, log)', platformCaller],
  [
    'micro-app (export handler)',
    async () => build(await readFile(PLATFORM_WIT, 'utf8'), 'micro-app', MICRO_APP),
  ],
  ['WASI baseline (cli, io, clocks, random)', () => build(WASI_WIT, 'app', WASI_WAT)],
  [
    'an import and no export',
    () =>
      compileWat('(component (import "wasi:random/random@0.2.0" (instance (export "f" (func)))))'),
  ],
  ...Object.entries(guests).map(
    ([name, wat]) =>
      [`guests.${name}`, () => compileWat(typeof wat === 'function' ? wat(2) : wat)] as const,
  ),
]

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return error instanceof WardenError ? error.code : `not a WardenError: ${String(error)}`
  }
  return undefined
}

/** Compile the function body in a fresh context and call it, as the worker's glue realm does. */
function instantiateOf(glue: string): unknown {
  const body = glueFunctionBody(glue)
  return compileFunction(body, [], { parsingContext: createContext({}) })()
}

/** A glue of jco's shape around `body`. */
function glue(body: string): string {
  const core = '(module, importObject) => new WebAssembly.Instance(module, importObject)'
  const head = `export function instantiate(getCoreModule, imports, instantiateCore = ${core})`
  return `${head} {\n${body}\n}\n`
}

describe('real glue', () => {
  it.each(WAT_GUESTS)('accepts %s, and its body compiles', async (_name, component) => {
    const text = await glueOf(await component())
    expect(codeOf(() => checkGlue(text))).toBeUndefined()
    expect(typeof instantiateOf(text)).toBe('function')
  })

  it('accepts every componentize-js fixture, and each body compiles', async () => {
    const names = (await readdir(FIXTURES)).filter((n) => n.endsWith('.js'))
    expect(names.length).toBeGreaterThanOrEqual(5)
    for (const name of names) {
      const text = await readFile(new URL(name, FIXTURES), 'utf8')
      expect({ name, code: codeOf(() => checkGlue(text)) }).toEqual({ name, code: undefined })
      expect(typeof instantiateOf(text)).toBe('function')
    }
  })

  it('checks the largest real glue (236 KB) in bounded time', async () => {
    const text = await readFile(new URL('componentize-js-all-features.js', FIXTURES), 'utf8')
    const start = performance.now()
    checkGlue(text)
    // Warm, it takes ~40 ms; the bound only catches a blow-up, on a loaded machine.
    expect(performance.now() - start).toBeLessThan(5000)
  })

  it('returns a strict function body with only the declaration in it', () => {
    const body = glueFunctionBody(`/* before */ ${glue('')} // after`)
    expect(body.startsWith("'use strict';\nfunction instantiate(")).toBe(true)
    expect(body.endsWith('}\nreturn instantiate\n')).toBe(true)
    expect(body).not.toContain('before')
    expect(body).not.toContain('after')
  })

  it("accepts jco's own forms of the names it refuses elsewhere", () => {
    const jcoForms = glue(`
  const hasOwnProperty = Object.prototype.hasOwnProperty;
  const symbolRscHandle = Symbol('handle');
  const symbolDispose = Symbol.dispose || Symbol.for('dispose');
  const { Counter } = imports['test:kitchen/host'];
  const handleTable1 = [1 << 30, 0];
  class Gadget {
    constructor(arg0) {
      var rsc1 = new.target === Gadget ? this : Object.create(Gadget.prototype);
      Object.defineProperty(rsc1, symbolRscHandle, { writable: true, value: arg0 });
      const c = Object.create(Counter.prototype);
      c[symbolDispose] = undefined;
    }
  }
  Gadget.prototype.name = function name() {
    var handle1 = this[symbolRscHandle];
    return handleTable1[(handle1 << 1) + 1] & ~(1 << 30);
  };
  const method = Counter.prototype.add;
  const imports0 = { '[constructor]fields': method, '[method]output-stream.write': method, '': {} };
  return { hasOwnProperty, imports0, Gadget };`)
    expect(codeOf(() => checkGlue(jcoForms))).toBeUndefined()
  })
})

describe('hostile glue', () => {
  const NEVER = [
    'process',
    'globalThis',
    'global',
    'self',
    'window',
    'Function',
    'eval',
    'require',
    'module',
    'Buffer',
    'fetch',
    'setTimeout',
    'queueMicrotask',
    'Atomics',
    'SharedArrayBuffer',
    'Reflect',
    'Proxy',
  ]

  it.each(NEVER)('refuses the global %s, in every position', (name) => {
    expect(GLUE_GLOBALS.has(name)).toBe(false)
    const uses = [`const x = ${name}`, `${name}()`, `new ${name}()`, `${name}.x`, `typeof ${name}`]
    for (const use of uses) {
      const code = codeOf(() => checkGlue(glue(use)))
      expect({ use, code }).toEqual({ use, code: 'invalid_component' })
    }
  })

  it.each([
    ['import()', "import('fs')"],
    ['import.meta', 'const u = import.meta.url'],
    ['the constructor chain', "imports.constructor.constructor('return process')()"],
    ['a computed constructor', "imports['constructor']"],
    ['a computed __proto__', "imports['__proto__']"],
    ['an object key __proto__', 'const o = { __proto__: null }'],
    ['a string object key __proto__', "const o = { '__proto__': null }"],
    ['a destructured constructor', 'const { constructor } = imports'],
    ['a class method named constructor, but static', 'class A { static constructor() {} }'],
    ['caller', 'function f() {} f.caller'],
    ['getPrototypeOf', 'Object.getPrototypeOf(imports)'],
    ['mainModule', 'imports.mainModule'],
    ['getBuiltinModule', 'imports.getBuiltinModule'],
    ['with', 'with (imports) {}'],
    ['debugger', 'debugger'],
    ['a tagged template', 'String.raw`x`'],
    ['arguments', 'function f() { return arguments }'],
    ['a direct eval', "eval('1')"],
    ['new Function', "new Function('return 1')"],
    ['a global aliased, then read', 'const O = Object; O.getOwnPropertyNames(O)'],
    ['a global as an argument', 'Object.defineProperty(Error, "prepareStackTrace", {})'],
    ['a global member jco does not use', 'Object.assign({}, imports)'],
    ['WebAssembly.compile', 'WebAssembly.compile(new Uint8Array(8))'],
    ['WebAssembly.Module', 'new WebAssembly.Module(new Uint8Array(8))'],
    ['a write to a global', 'Error.prepareStackTrace = (e, frames) => frames'],
    ['a write through a global', 'Object.prototype.polluted = 1'],
    ['a delete of a global member', 'delete Symbol.for'],
    ['Object.prototype as a value', 'const p = Object.prototype'],
    ['the prototype of an import', "imports['warden:platform/log'].write.prototype.x = 1"],
    [
      'a method written onto an imported class',
      "const { R } = imports['x']; R.prototype.m = function m() {}",
    ],
    ['a prototype replaced', 'class R {} R.prototype = {}'],
    ['a prototype as a value', 'class R {} const p = R.prototype'],
    ['a key made by concatenation', "imports['constr' + 'uctor']"],
    ['a key made from a template', 'imports[`constructor`]'],
    ['a key with a quote in it', 'imports["run\'+x+\'"]'],
    ['an escaped quote in a key', "imports['run\\u0027']"],
    ['a key that is a call', "imports[String('constructor')]"],
    ['a string with a control character', "const s = 'a\\u0000b'"],
    ['a let in a sibling block hiding a global', '{ let process = 1 } process.exit()'],
    ['a case declaration hiding the discriminant', 'switch (process) { case 1: let process = 1 }'],
    ['a body var hiding a default parameter', 'function f(a = process) { var process; return a }'],
    ['a catch parameter hiding a later read', 'try {} catch (process) {} process.exit()'],
    ['a function expression name hiding a later read', '(function process() {}); process.exit()'],
    ['a label named like a global', 'process: for (;;) { break process } process.exit()'],
    ['a global written through destructuring', '({ a: process } = imports)'],
  ])('refuses %s', (_name, body) => {
    expect(codeOf(() => checkGlue(glue(body)))).toBe('invalid_component')
  })

  it("refuses the bug's payload: a quote-injected core export name", async () => {
    const echo = await glueOf(await guestFile('echo'))
    expect(echo).toContain('exports1Run = exports1.run;')
    const payload = "exports1['run'+(process.kill(process.pid,'SIGKILL'),'')+'']"
    const hostile = echo.replace('exports1Run = exports1.run;', `exports1Run = ${payload};`)
    expect(codeOf(() => glueFunctionBody(hostile))).toBe('invalid_component')
    const minimal = glue(`const exports1 = {}; ${payload}`)
    expect(codeOf(() => checkGlue(minimal))).toBe('invalid_component')
  })

  const params = '(getCoreModule, imports, instantiateCore = null)'
  it.each([
    ['a second export', `${glue('')}export const x = 1\n`],
    ['an import declaration', `import fs from 'fs'\n${glue('')}`],
    ['a default export', `export default function instantiate${params} {}`],
    ['a statement beside the export', `globalThis.x = 1\n${glue('')}`],
    ['a re-export', `${glue('')}export { instantiate as run }\n`],
    ['no export', `function instantiate${params} {}`],
    ['another name', `export function run${params} {}`],
    ['other parameters', 'export function instantiate(getCoreModule, imports = process) {}'],
    ['an async instantiate', `export async function instantiate${params} {}`],
    [
      'an HTML-like comment, a comment only to the worker',
      glue('var z = 0 <!--y, process = 1\n  process.exit()'),
    ],
    ['a non-ASCII line separator', glue('const s = 1\u2028')],
    ['text that does not parse', glue('const = ;')],
  ])('refuses %s', (_name, text) => {
    expect(codeOf(() => glueFunctionBody(text))).toBe('invalid_component')
  })

  it('refuses glue larger than MAX_GLUE_CHARS before parsing it', () => {
    const huge = glue('') + ' '.repeat(MAX_GLUE_CHARS)
    const start = performance.now()
    expect(codeOf(() => checkGlue(huge))).toBe('invalid_component')
    expect(performance.now() - start).toBeLessThan(1000)
  })

  it.each([
    ['100k nested parentheses', `const x = ${'('.repeat(100_000)}1${')'.repeat(100_000)}`],
    ['100k nested arrays', `const x = ${'['.repeat(100_000)}1${']'.repeat(100_000)}`],
    ['100k nested blocks', `${'{'.repeat(100_000)}${'}'.repeat(100_000)}`],
    ['100k chained calls', `const f = () => f; f${'()'.repeat(100_000)}`],
    ['a 100k-long member chain', `const o = {}; o${'.a'.repeat(100_000)}`],
    ['600 nested arrays (past MAX_DEPTH)', `const x = ${'['.repeat(600)}1${']'.repeat(600)}`],
  ])('refuses %s, and stays up', (_name, body) => {
    expect(codeOf(() => checkGlue(glue(body)))).toBe('invalid_component')
  })
})
