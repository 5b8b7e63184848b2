/**
 * The adapters between an author's module and the WIT exports: an action's
 * `run(input: string) -> result<string, string>` becomes `run(input: unknown) => unknown`
 * (JSON in, JSON out, a throw is the guest's `err`); a micro-app's `handler.handle` becomes
 * `handle(req: AppRequest) => AppResponse`. Bundled into every app by `warden build`.
 */
import { headerMap, rawHeaders, toBytes, toText } from './core.js'
import type { AppRequest, AppResponse } from './api.js'
import type { RawHeader } from './core.js'

export type { AppRequest }

/** The WIT `incoming-request`. */
interface RawRequest {
  method: string
  path: string
  query: string
  headers: RawHeader[]
  body: Uint8Array
}

/** The WIT `outgoing-response`. */
interface RawResponse {
  status: number
  headers: RawHeader[]
  body: Uint8Array
}

/** The message of a thrown value, for the guest's `err` (never a stack: it may be long). */
function messageOf(error: unknown): string {
  if (error instanceof Error) {
    return error.message || error.name
  }
  return typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error))
}

/**
 * The WIT `run` of an action around the author's `run`: the input is parsed, the output
 * serialised (`undefined` is `null`), and a throw becomes the guest's `err` with its message.
 */
export function wrapAction(run: (input: unknown) => unknown): (input: string) => string {
  return (input) => {
    let parsed: unknown
    try {
      parsed = JSON.parse(input)
    } catch {
      throw guestError('the input is not JSON')
    }
    let output: unknown
    try {
      output = run(parsed)
    } catch (error) {
      throw guestError(messageOf(error))
    }
    if (output !== null && typeof (output as { then?: unknown })?.then === 'function') {
      throw guestError('run must return its output, not a promise (host calls are synchronous)')
    }
    return JSON.stringify(output === undefined ? null : output)
  }
}

/**
 * The WIT `handler` of a micro-app around the author's `handle`. A throw answers 500 with a
 * generic body: the error's text stays in the app (log it if it helps).
 */
export function wrapHandler(handle: (req: AppRequest) => AppResponse): {
  handle(req: RawRequest): RawResponse
} {
  return {
    handle(raw) {
      const params: Record<string, string> = {}
      for (const part of raw.query.split('&')) {
        if (part === '') {
          continue
        }
        const eq = part.indexOf('=')
        const name = decode(eq === -1 ? part : part.slice(0, eq))
        if (!(name in params)) {
          params[name] = decode(eq === -1 ? '' : part.slice(eq + 1))
        }
      }
      const request: AppRequest = {
        method: raw.method,
        path: raw.path,
        query: raw.query,
        params,
        headers: headerMap(raw.headers),
        body: raw.body,
        text: () => toText(raw.body),
        json: <T>() => JSON.parse(toText(raw.body)) as T,
      }
      let response: AppResponse
      try {
        response = handle(request)
      } catch {
        return { status: 500, headers: [plain], body: toBytes('internal error') }
      }
      if (response === null || typeof response !== 'object') {
        return { status: 500, headers: [plain], body: toBytes('the app answered no response') }
      }
      return {
        status: response.status ?? 200,
        headers: rawHeaders(response.headers),
        body: toBytes(response.body ?? ''),
      }
    },
  }
}

const plain: RawHeader = { name: 'content-type', value: 'text/plain; charset=utf-8' }

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    return text
  }
}

/** What the componentize-js bindings turn into a WIT `err`: the thrown value's `payload`. */
function guestError(message: string): Error & { payload: string } {
  return Object.assign(new Error(message), { payload: message })
}
