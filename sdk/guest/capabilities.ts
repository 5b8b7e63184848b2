/**
 * The four capabilities of `warden:app`, each a factory over its raw WIT import (as
 * componentize-js hands it to the bundle). `warden build` generates the module `warden:app`
 * from the manifest: it imports only the listed interfaces and calls only their factories,
 * so an app declares exactly what it lists.
 */
import { headerMap, hostCall, rawHeaders, toBytes, toHex, toText } from './core.js'
import type { Data, DataPage, FetchInit, FetchResponse, Http, Log, Secrets } from './api.js'
import type { RawHeader } from './core.js'

export type { Data, DataPage, FetchInit, FetchResponse, Http, Log, Secrets }

// ── http ────────────────────────────────────────────────────────────────────────────────────

/** The raw `warden:platform/http` import. */
export interface RawHttp {
  fetch(req: {
    method: string
    url: string
    headers: RawHeader[]
    body: Uint8Array | undefined
    timeoutMs: number | undefined
  }): { status: number; headers: RawHeader[]; body: Uint8Array }
}
/** The `http` of `warden:app`. */
export function createHttp(raw: RawHttp): Http {
  return {
    fetch(url, init = {}) {
      const answer = hostCall(() =>
        raw.fetch({
          method: (init.method ?? 'GET').toUpperCase(),
          url,
          headers: rawHeaders(init.headers),
          body: init.body === undefined ? undefined : toBytes(init.body),
          timeoutMs: init.timeoutMs,
        }),
      )
      return {
        status: answer.status,
        ok: answer.status >= 200 && answer.status < 300,
        headers: headerMap(answer.headers),
        body: answer.body,
        text: () => toText(answer.body),
        json: <T>() => JSON.parse(toText(answer.body)) as T,
      }
    },
  }
}

// ── secrets ─────────────────────────────────────────────────────────────────────────────────

/** The raw `warden:platform/secrets` import. */
export interface RawSecrets {
  hmacSha256(name: string, data: Uint8Array): Uint8Array
  reveal(name: string): string
}
/** The `secrets` of `warden:app`. */
export function createSecrets(raw: RawSecrets): Secrets {
  const hmac = (name: string, data: string | Uint8Array) =>
    hostCall(() => raw.hmacSha256(name, toBytes(data)))
  return {
    hmacSha256: hmac,
    hmacSha256Hex: (name, data) => toHex(hmac(name, data)),
    reveal: (name) => hostCall(() => raw.reveal(name)),
    placeholder: (name) => `{{secret:${name}}}`,
  }
}

// ── data ────────────────────────────────────────────────────────────────────────────────────

/** The raw `warden:platform/data` import. */
export interface RawData {
  get(collection: string, key: string): string | undefined
  listKeys(
    collection: string,
    prefix: string,
    cursor: string | undefined,
    limit: number,
  ): { entries: { key: string; value: string }[]; nextCursor?: string | undefined }
}
/** The `data` of `warden:app`. */
export function createData(raw: RawData): Data {
  const getText = (collection: string, key: string) => hostCall(() => raw.get(collection, key))
  return {
    getText,
    get<T>(collection: string, key: string) {
      const value = getText(collection, key)
      return value === undefined ? undefined : (JSON.parse(value) as T)
    },
    list<T>(collection: string, prefix: string, options: { cursor?: string; limit?: number } = {}) {
      const page = hostCall(() =>
        raw.listKeys(collection, prefix, options.cursor, options.limit ?? 100),
      )
      return {
        entries: page.entries.map((e) => ({ key: e.key, value: JSON.parse(e.value) as T })),
        ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }),
      }
    },
  }
}

// ── log ─────────────────────────────────────────────────────────────────────────────────────

/** The raw `warden:platform/log` import. */
export interface RawLog {
  write(level: 'debug' | 'info' | 'warn' | 'error', message: string): void
}

/** The `log` of `warden:app`. */
export function createLog(raw: RawLog): Log {
  return {
    debug: (m) => raw.write('debug', String(m)),
    info: (m) => raw.write('info', String(m)),
    warn: (m) => raw.write('warn', String(m)),
    error: (m) => raw.write('error', String(m)),
  }
}
