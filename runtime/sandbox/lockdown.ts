/**
 * Least authority for the sandbox worker's own realm, applied once at start-up, after the
 * worker's modules have loaded and before any guest-derived code exists.
 *
 * The glue runs in its own realm (`glue-realm.ts`), but it is handed worker-realm objects: the
 * import object, core modules, the arguments of a run. From any of them `x.constructor` leads
 * to the worker's `Function`. So this realm must hold nothing worth reaching:
 * - every function constructor (`Function`, and the async, generator and async-generator
 *   ones, as globals and as `prototype.constructor`) throws instead of compiling a string;
 *   `eval` is gone. Node cannot start a worker with `--disallow-code-generation-from-strings`
 *   (`ERR_WORKER_INVALID_EXEC_ARGV`), so this is the equivalent for a worker;
 * - Node's ambient authority is removed from the global object: `process`, `Buffer`,
 *   `require`, `fetch` and the other network classes, message channels, timers, `crypto`,
 *   and WebAssembly's compilers. What the worker needs it imported before this runs.
 *
 * It is a second layer: the loader refuses hostile names and checks the glue's syntax tree.
 */

/** Globals removed from the worker realm (kept by the worker as imports where it needs them). */
export const REMOVED_GLOBALS: readonly string[] = [
  'process',
  'Buffer',
  'require',
  'module',
  'exports',
  '__filename',
  '__dirname',
  'global',
  'fetch',
  'Request',
  'Response',
  'Headers',
  'FormData',
  'WebSocket',
  'EventSource',
  'BroadcastChannel',
  'MessageChannel',
  'MessagePort',
  'MessageEvent',
  'Worker',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'structuredClone',
  'crypto',
  'Crypto',
  'CryptoKey',
  'SubtleCrypto',
  'navigator',
  'performance',
  'eval',
]

const REMOVED_WASM: readonly string[] = [
  'compile',
  'compileStreaming',
  'instantiate',
  'instantiateStreaming',
  'validate',
]

function refuse(): never {
  throw new EvalError('code generation from strings is disabled in the sandbox')
}

/**
 * Lock the current realm down. Idempotent. Only for sandbox workers: it breaks any code that
 * later needs what it removes.
 */
export function lockDownWorkerRealm(): void {
  const g = globalThis as Record<string, unknown>
  for (const name of REMOVED_GLOBALS) {
    // NB: some globals are accessors on the global object; delete works on both forms.
    Reflect.deleteProperty(g, name)
  }
  const wasm = WebAssembly as unknown as Record<string, unknown>
  for (const name of REMOVED_WASM) {
    Reflect.deleteProperty(wasm, name)
  }
  const constructors = [
    Function,
    Object.getPrototypeOf(async () => {}).constructor,
    Object.getPrototypeOf(function* () {}).constructor,
    Object.getPrototypeOf(async function* () {}).constructor,
  ] as { prototype: object }[]
  for (const ctor of constructors) {
    Object.defineProperty(ctor.prototype, 'constructor', {
      value: refuse,
      writable: false,
      enumerable: false,
      configurable: false,
    })
  }
  // WebAssembly.Module is reachable from every core module the glue receives.
  Object.defineProperty(WebAssembly.Module.prototype, 'constructor', {
    value: refuse,
    writable: false,
    enumerable: false,
    configurable: false,
  })
  Object.defineProperty(g, 'Function', { value: refuse, writable: false, configurable: false })
}
