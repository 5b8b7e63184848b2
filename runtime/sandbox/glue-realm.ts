/**
 * The realm jco's glue runs in: a fresh V8 context holding only the JavaScript language's own
 * built-ins, frozen, plus a bounded `TextDecoder` and a `TextEncoder`. It has no `process`, no
 * module loader, no `require`, no console, no `Atomics` or `SharedArrayBuffer`, no WebAssembly
 * compiler, and code generation from strings is off (`eval`, `new Function` and their async and
 * generator forms throw `EvalError`). The glue is generated from an untrusted component, so it
 * is treated as guest code: whatever it names resolves here, never in the worker's realm.
 *
 * The glue still receives worker-realm objects (the import object, the core modules, the
 * values we pass in); the worker realm is locked down too (see `lockdown.ts`), so reaching one
 * of them yields no authority either.
 */
import { compileFunction, createContext } from 'node:vm'

/** The built-ins of a glue realm that the worker needs for brand checks across realms. */
export interface RealmIntrinsics {
  Object: ObjectConstructor
  Error: ErrorConstructor
  TypeError: TypeErrorConstructor
  RangeError: RangeErrorConstructor
  Uint8Array: Uint8ArrayConstructor
  WebAssembly: typeof WebAssembly
}

/** A glue realm: compile checked glue inside it; read its intrinsics for brand checks. */
export interface GlueRealm {
  /** Compile a function body (see `loader/glue.ts`) inside the realm and call it once. */
  evaluate(body: string, filename: string): unknown
  readonly intrinsics: RealmIntrinsics
}

/** What the realm's `TextDecoder`/`TextEncoder` and `Array.prototype.push` call, in closures only. */
export interface RealmHost {
  /**
   * `n` elements are being added to an array: jco's glue lifts every list that is not bytes
   * with `push`, one element at a time, with no fuel charged. Throws to stop the run.
   */
  chargeElements(n: number): void
  /** Decode `input` with the named encoding; may throw (e.g. past the lift cap). */
  decode(label: string, input: unknown): string
  /** UTF-8 byte length of `text`. */
  byteLength(text: string): number
  /** Encode `text` into `into` (a realm Uint8Array); returns `{ read, written }`. */
  encodeInto(text: string, into: Uint8Array): { read: number; written: number }
}

// Runs inside the new context with our arguments; nothing of the glue exists yet.
const SETUP = `'use strict'
const decode = host.decode, byteLength = host.byteLength, encodeInto = host.encodeInto
const chargeElements = host.chargeElements, apply = Reflect.apply, nativePush = Array.prototype.push
Object.defineProperty(Array.prototype, 'push', {
  value: function push(...items) {
    chargeElements(items.length)
    return apply(nativePush, this, items)
  },
  writable: true, enumerable: false, configurable: true,
})
const LABELS = { 'utf-8': 'utf-8', utf8: 'utf-8', 'unicode-1-1-utf-8': 'utf-8', 'utf-16le': 'utf-16le', 'utf-16': 'utf-16le' }
class TextDecoder {
  #label
  constructor(label = 'utf-8') {
    const key = LABELS[String(label).trim().toLowerCase()]
    if (key === undefined) { throw new RangeError('unsupported encoding') }
    this.#label = key
  }
  get encoding() { return this.#label }
  decode(input) { return input === undefined ? '' : decode(this.#label, input) }
}
class TextEncoder {
  get encoding() { return 'utf-8' }
  encode(text = '') {
    const s = String(text)
    const out = new Uint8Array(byteLength(s))
    encodeInto(s, out)
    return out
  }
  encodeInto(text, into) {
    const r = encodeInto(String(text), into)
    return { read: r.read, written: r.written }
  }
}
globalThis.TextDecoder = TextDecoder
globalThis.TextEncoder = TextEncoder
// jco registers guest-owned resources for finalization: a callback that calls the guest's
// destructor, on an instance whose run is over and whose memory may serve the next run
// (memories.ts). The worker never returns to its event loop, so none would run; here none
// can: registering is accepted and does nothing (the instance is dropped whole anyway).
globalThis.FinalizationRegistry = class FinalizationRegistry {
  register() {}
  unregister() { return false }
}
for (const name of ['console', 'Atomics', 'SharedArrayBuffer', 'eval', 'escape', 'unescape']) {
  delete globalThis[name]
}
for (const name of ['compile', 'compileStreaming', 'instantiate', 'instantiateStreaming', 'validate', 'Module']) {
  delete WebAssembly[name]
}
const intrinsics = { Object, Error, TypeError, RangeError, Uint8Array, WebAssembly }
// Freeze every object reachable from the global: a glue cannot change a built-in that a later
// run (or another tenant's glue in a bug's world) would see.
const seen = new WeakSet()
const stack = [globalThis]
while (stack.length > 0) {
  const value = stack.pop()
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null || seen.has(value)) { continue }
  seen.add(value)
  for (const key of Reflect.ownKeys(value)) {
    const d = Reflect.getOwnPropertyDescriptor(value, key)
    if (d === undefined) { continue }
    // Not push: push is the metered one now, and this walk is ours, not a lift.
    if ('value' in d) { stack[stack.length] = d.value } else { stack[stack.length] = d.get; stack[stack.length] = d.set }
  }
  stack[stack.length] = Object.getPrototypeOf(value)
  if (value !== globalThis) { Object.freeze(value) }
}
return intrinsics
`

/**
 * Create a glue realm. One per loaded component: components never share built-ins.
 *
 * @example
 * const realm = createGlueRealm(codec)
 * const instantiate = realm.evaluate(glueFunctionBody(glue), 'component.js')
 */
export function createGlueRealm(codec: RealmHost): GlueRealm {
  const context = createContext(
    {},
    { name: 'warden-glue', codeGeneration: { strings: false, wasm: false } },
  )
  // NB: the host functions are passed frozen in a null-prototype object, and the setup script
  // keeps them in closures only: nothing the glue can name leads back to them.
  const host = Object.freeze(
    Object.assign(Object.create(null) as Record<string, unknown>, {
      decode: (label: string, input: unknown) => codec.decode(label, input),
      byteLength: (text: string) => codec.byteLength(text),
      encodeInto: (text: string, into: Uint8Array) => codec.encodeInto(text, into),
      chargeElements: (n: number) => codec.chargeElements(n),
    }),
  )
  const setup = compileFunction(SETUP, ['host'], { parsingContext: context })
  const intrinsics = setup(host) as RealmIntrinsics
  return {
    intrinsics,
    evaluate(body, filename) {
      const factory = compileFunction(body, [], { parsingContext: context, filename })
      return factory()
    },
  }
}
