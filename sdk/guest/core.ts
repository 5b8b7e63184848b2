/**
 * The guest side of `warden:app`, shared by every capability: the friendly error that mirrors
 * the WIT `host-error`, header maps, byte/text helpers, and the micro-app response helpers.
 * This code is bundled into the app (esbuild) and runs inside the component (StarlingMonkey):
 * no Node APIs, no DOM, only what the engine has (TextEncoder, TextDecoder, JSON).
 */
import type { AppResponse, HeaderMap, HeadersInit, HostErrorKind } from './api.js'

export type { AppResponse, HeaderMap, HeadersInit, HostErrorKind }

const KINDS: readonly string[] = ['denied', 'limit-exceeded', 'invalid', 'upstream']

/**
 * A host call that failed: `kind` is the WIT `host-error` case, `reason` the host's words (never
 * a secret). `denied`: not granted; `limit-exceeded`: a run budget is spent; `invalid`: bad
 * arguments; `upstream`: the upstream failed.
 *
 * @example
 * try { http.fetch(url) } catch (e) { if (e instanceof HostError && e.kind === 'denied') … }
 */
export class HostError extends Error {
  readonly kind: HostErrorKind
  readonly reason: string
  constructor(kind: HostErrorKind, reason: string) {
    super(`${kind}: ${reason}`)
    this.name = 'HostError'
    this.kind = kind
    this.reason = reason
  }
}

/**
 * Call a raw import and turn its WIT `err` (thrown with a `payload` by the bindings) into a
 * {@link HostError}. Anything else is rethrown as it is.
 */
export function hostCall<T>(call: () => T): T {
  try {
    return call()
  } catch (error) {
    const payload = (error as { payload?: { tag?: unknown; val?: unknown } } | null)?.payload
    if (payload && typeof payload.tag === 'string' && KINDS.includes(payload.tag)) {
      throw new HostError(payload.tag as HostErrorKind, String(payload.val ?? ''))
    }
    throw error
  }
}

/** One header as the WIT `header` record holds it. */
export interface RawHeader {
  name: string
  value: string
}

/** A {@link HeaderMap} over WIT header records. */
export function headerMap(raw: readonly RawHeader[]): HeaderMap {
  const list: [string, string][] = raw.map((h) => [h.name.toLowerCase(), h.value])
  return {
    get(name) {
      const key = name.toLowerCase()
      const found = list.find(([n]) => n === key)
      return found ? found[1] : null
    },
    has(name) {
      const key = name.toLowerCase()
      return list.some(([n]) => n === key)
    },
    entries: () => list.map(([n, v]) => [n, v]),
  }
}

/** Headers an author gave, as WIT header records. */
export function rawHeaders(init: HeadersInit | undefined): RawHeader[] {
  if (!init) {
    return []
  }
  const pairs: readonly (readonly [string, string])[] = Array.isArray(init)
    ? (init as readonly (readonly [string, string])[])
    : Object.entries(init as Record<string, string>)
  return pairs.map(([name, value]) => ({ name, value: String(value) }))
}

/** UTF-8 bytes of a string (bytes pass through). */
export function toBytes(value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? new TextEncoder().encode(value) : value
}

/** A UTF-8 decoding of bytes. */
export function toText(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes)
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) {
    out += b.toString(16).padStart(2, '0')
  }
  return out
}

/**
 * A JSON response.
 *
 * @example
 * return json({ ok: true }, { status: 201 })
 */
export function json(value: unknown, init: Omit<AppResponse, 'body'> = {}): AppResponse {
  return withType(JSON.stringify(value), 'application/json', init)
}

/** An HTML response (`text/html; charset=utf-8`). */
export function html(body: string, init: Omit<AppResponse, 'body'> = {}): AppResponse {
  return withType(body, 'text/html; charset=utf-8', init)
}

/** A plain-text response (`text/plain; charset=utf-8`). */
export function text(body: string, init: Omit<AppResponse, 'body'> = {}): AppResponse {
  return withType(body, 'text/plain; charset=utf-8', init)
}

function withType(body: string, type: string, init: Omit<AppResponse, 'body'>): AppResponse {
  const headers = rawHeaders(init.headers)
  if (!headers.some((h) => h.name.toLowerCase() === 'content-type')) {
    headers.push({ name: 'content-type', value: type })
  }
  return {
    status: init.status ?? 200,
    headers: headers.map((h) => [h.name, h.value] as [string, string]),
    body,
  }
}
