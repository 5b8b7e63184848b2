/**
 * Warden's built-in JS agent component (the `js` app): `run(input)` takes
 * `{"source": "<JS>", "input": <JSON>}`, evaluates `source` as the body of an async function
 * `(warden, input) => …` and answers `{"ok": <return value as JSON>}` or, when the script
 * throws, an `err` of `{"message", "stack"}` with the stack's lines in the script's own source.
 *
 * Built with componentize-js by `runtime/agent/build.ts` (cached by input hash, never on a
 * request path). The script sees one global of ours, `warden`; every call it makes goes
 * through the platform's capabilities, which the run's token grants or denies. Nothing here is
 * a security boundary: the fresh instance, the token and the broker are.
 */
import { get as dataGet, listKeys } from 'warden:platform/data@0.1.0'
import { fetch as httpFetch } from 'warden:platform/http@0.1.0'
import { write } from 'warden:platform/log@0.1.0'
import { hmacSha256 } from 'warden:platform/secrets@0.1.0'

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

/** A host refusal (`denied`, `limit-exceeded`, `invalid`, `upstream`) the script can catch. */
class WardenHostError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`)
    this.name = 'WardenHostError'
    this.kind = kind
  }
}

/** Call a host function; its WIT `err` becomes a {@link WardenHostError}. */
function host(fn, ...args) {
  try {
    return fn(...args)
  } catch (error) {
    const payload = error && typeof error === 'object' ? error.payload : undefined
    if (payload && typeof payload === 'object' && typeof payload.tag === 'string') {
      throw new WardenHostError(payload.tag, String(payload.val ?? ''))
    }
    // An error of the bindings (a bad argument) names their file, in the directory the
    // component was built in: the script reads `warden` instead.
    if (error instanceof Error) {
      try {
        Object.defineProperty(error, 'fileName', { value: 'warden', configurable: true })
      } catch {
        // Not ours to rename: leave it.
      }
    }
    throw error
  }
}

function bytesOf(data) {
  if (data === undefined || data === null) {
    return undefined
  }
  if (typeof data === 'string') {
    return utf8.encode(data)
  }
  if (data instanceof ArrayBuffer) {
    return new Uint8Array(data)
  }
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  }
  return utf8.encode(JSON.stringify(data))
}

function headerList(headers) {
  if (headers === undefined || headers === null) {
    return []
  }
  const entries = Array.isArray(headers) ? headers : Object.entries(headers)
  return entries.map(([name, value]) => ({ name: String(name), value: String(value) }))
}

/** A fetch-like response over the WIT `response`. */
function responseOf(raw) {
  const headers = {}
  for (const { name, value } of raw.headers) {
    const key = name.toLowerCase()
    headers[key] = key in headers ? `${headers[key]}, ${value}` : value
  }
  const body = raw.body
  return {
    status: raw.status,
    ok: raw.status >= 200 && raw.status < 300,
    headers,
    bytes: () => body,
    text: async () => fromUtf8.decode(body),
    json: async () => JSON.parse(fromUtf8.decode(body)),
  }
}

function text(args) {
  return args.map((a) => (typeof a === 'string' ? a : safeJson(a))).join(' ')
}

function safeJson(value) {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

function logAt(level) {
  return (...args) => write(level, text(args))
}

const log = Object.assign(logAt('info'), {
  debug: logAt('debug'),
  info: logAt('info'),
  warn: logAt('warn'),
  error: logAt('error'),
})

/** The script's `warden` global. */
const warden = Object.freeze({
  /** `fetch(url, { method, headers, body, timeoutMs })` over the http capability. */
  async fetch(url, init = {}) {
    const raw = host(httpFetch, {
      method: String(init.method ?? 'GET').toUpperCase(),
      url: String(url),
      headers: headerList(init.headers),
      body: bytesOf(init.body),
      timeoutMs: init.timeoutMs === undefined ? undefined : Number(init.timeoutMs),
    })
    return responseOf(raw)
  },
  secrets: Object.freeze({
    /** HMAC-SHA256 of `data` with the secret `name`, as lower-case hex. */
    async hmac(name, data) {
      const mac = host(hmacSha256, String(name), bytesOf(data) ?? new Uint8Array())
      return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('')
    },
  }),
  data: Object.freeze({
    /** The document at `key`, parsed, or null. */
    async get(collection, key) {
      const value = host(dataGet, String(collection), String(key))
      return value === undefined ? null : JSON.parse(value)
    },
    /** One page of keys under `prefix`: `{ entries: [{ key, value }], nextCursor }`. */
    async list(collection, prefix = '', options = {}) {
      const page = host(
        listKeys,
        String(collection),
        String(prefix),
        options.cursor === undefined ? undefined : String(options.cursor),
        Number(options.limit ?? 100),
      )
      return { entries: page.entries, nextCursor: page.nextCursor ?? null }
    },
  }),
  log,
  HostError: WardenHostError,
})

globalThis.warden = warden
// The engine's own fetch is built without its HTTP feature and would end the run: the script's
// egress is `warden.fetch`, through the token's http grant.
globalThis.fetch = () =>
  Promise.reject(new TypeError('fetch is not available here: use warden.fetch'))
globalThis.console = Object.freeze({
  log: logAt('info'),
  info: logAt('info'),
  debug: logAt('debug'),
  warn: logAt('warn'),
  error: logAt('error'),
})

const AsyncFunction = (async () => {}).constructor

/** Lines the engine puts before the script's body: `async function anonymous(warden,input\n) {`. */
const HEADER_LINES = 2

/** A frame of the script itself: `name@agent.js line N > AsyncFunction:LINE:COL`. */
const SCRIPT_FRAME = /^(.*)@.* > AsyncFunction:(\d+):(\d+)$/

/**
 * The script's own frames of an engine stack, as `name@script:LINE:COL` with lines counted in
 * its source; frames of this file and of the bindings are left out.
 */
function scriptFrames(stack) {
  const frames = []
  for (const frame of stack.split('\n')) {
    const m = SCRIPT_FRAME.exec(frame)
    if (m) {
      const line = Math.max(1, Number(m[2]) - HEADER_LINES)
      frames.push(
        `${m[1] === 'anonymous' ? '<script>' : m[1] || '<anonymous>'}@script:${line}:${m[3]}`,
      )
    }
  }
  return frames.join('\n')
}

// What the script reads of a stack is its own frames only: the engine's frames of the bindings
// name the directory the component was built in, which is the host's business, not the guest's.
const engineStack = Object.getOwnPropertyDescriptor(Error.prototype, 'stack')
if (engineStack?.get) {
  Object.defineProperty(Error.prototype, 'stack', {
    configurable: false,
    enumerable: false,
    get() {
      const raw = engineStack.get.call(this)
      return typeof raw === 'string' ? scriptFrames(raw) : raw
    },
    set: engineStack.set,
  })
}

// `Error.captureStackTrace(o)` writes the engine's raw frames onto `o`: the same mapping.
const captureEngineStack = Error.captureStackTrace
if (typeof captureEngineStack === 'function') {
  Object.defineProperty(Error, 'captureStackTrace', {
    configurable: false,
    writable: false,
    enumerable: false,
    value: function captureStackTrace(target, ...rest) {
      captureEngineStack.call(Error, target, ...rest)
      const raw = Object.getOwnPropertyDescriptor(target, 'stack')?.value
      if (typeof raw === 'string') {
        Object.defineProperty(target, 'stack', {
          value: scriptFrames(raw),
          writable: true,
          configurable: true,
          enumerable: false,
        })
      }
    },
  })
}

/** The script's frames of a thrown value's stack ('' when it has none). */
function scriptStack(error) {
  const stack =
    error && typeof error === 'object' && typeof error.stack === 'string' ? error.stack : ''
  // Already mapped by the getter above, unless the script set its own stack string.
  return stack.split('\n').every((frame) => frame === '' || /@script:\d+:\d+$/.test(frame))
    ? stack
    : scriptFrames(stack)
}

/** The `err` of a run: what the script threw; `compiling` when its source did not parse. */
function failure(error, compiling = false) {
  try {
    const message =
      error && typeof error === 'object' && 'message' in error
        ? `${String(error.name ?? 'Error')}: ${String(error.message)}`
        : `Uncaught ${safeJson(error)}`
    let stack = scriptStack(error)
    if (stack === '' && compiling && typeof error?.lineNumber === 'number') {
      // A syntax error has no frames: its position is in the error.
      stack = `<script>@script:${Math.max(1, error.lineNumber - HEADER_LINES)}:${error.columnNumber}`
    }
    return JSON.stringify({ message, stack })
  } catch {
    return JSON.stringify({ message: 'Uncaught exception', stack: '' })
  }
}

/** The `action` export. */
export async function run(request) {
  let source
  let input
  try {
    ;({ source, input } = JSON.parse(request))
  } catch {
    throw JSON.stringify({ message: 'SyntaxError: the request is not JSON', stack: '' })
  }
  let fn
  try {
    fn = new AsyncFunction('warden', 'input', String(source))
  } catch (error) {
    throw failure(error, true)
  }
  let value
  try {
    value = await fn(warden, input)
  } catch (error) {
    throw failure(error)
  }
  let json
  try {
    json = JSON.stringify({ ok: value === undefined ? null : value })
  } catch (error) {
    throw failure(error)
  }
  return json
}
