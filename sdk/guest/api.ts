/**
 * The public types of `warden:app`, one region per capability. Types only, no imports: `warden
 * build` copies the common region and the regions of the listed capabilities into the app's
 * declaration of `warden:app` (sdk/author/generate.ts), so what authors type-check against is
 * this text, and the guest library (core.ts, capabilities.ts, entry.ts) implements these types.
 */

// #region common
/** Why a host call failed, as the WIT `host-error` variant names it. */
export type HostErrorKind = 'denied' | 'limit-exceeded' | 'invalid' | 'upstream'

/** Headers given by an author: a plain object, or name/value pairs. */
export type HeadersInit = Readonly<Record<string, string>> | readonly (readonly [string, string])[]

/** Read-only headers, names compared case-insensitively. */
export interface HeaderMap {
  /** The first value of `name`, or null. */
  get(name: string): string | null
  has(name: string): boolean
  /** Every header, in order, names lower-cased. */
  entries(): [string, string][]
}

/** What a micro-app's `handle` returns: every field optional (200, no headers, empty body). */
export interface AppResponse {
  status?: number
  headers?: HeadersInit
  body?: string | Uint8Array
}

/** An incoming request to a micro-app, path relative to its mount point. */
export interface AppRequest {
  method: string
  /** `/contacts/alice`: the path under the app's mount point. */
  path: string
  /** The raw query string, without `?`. */
  query: string
  /** Query parameters, decoded (the first value of each name). */
  params: Readonly<Record<string, string>>
  headers: HeaderMap
  body: Uint8Array
  text(): string
  json<T = unknown>(): T
}
// #endregion

// #region http
/** The options of {@link Http.fetch}, as `fetch`'s `init`. */
export interface FetchInit {
  /** Default `GET`. */
  method?: string
  /** Values may hold `{{secret:NAME}}`, substituted by the host when the grant binds it. */
  headers?: HeadersInit
  /** A string (UTF-8) or bytes. For JSON, `JSON.stringify` it and set `content-type`. */
  body?: string | Uint8Array
  /** Shorter than the grant's timeout, never longer. */
  timeoutMs?: number
}

/** An upstream's answer: like a fetch `Response`, but read synchronously. */
export interface FetchResponse {
  status: number
  /** `status` is 200–299. */
  ok: boolean
  headers: HeaderMap
  /** The body's bytes. */
  body: Uint8Array
  /** The body as UTF-8 text. */
  text(): string
  /** The body parsed as JSON. */
  json<T = unknown>(): T
}

/** Outbound HTTP to the granted origins. */
export interface Http {
  /**
   * Send one request and wait for the answer (synchronous: no `await`). Throws a `HostError`
   * (`denied` outside the grant, `upstream` when the upstream fails). Redirects are returned,
   * never followed.
   *
   * @example
   * const res = http.fetch('https://api.github.com/repos/o/r/labels', {
   *   headers: { authorization: 'Bearer {{secret:github_token}}' },
   * })
   */
  fetch(url: string, init?: FetchInit): FetchResponse
}
// #endregion

// #region secrets
/** Use secrets without seeing them. */
export interface Secrets {
  /** HMAC-SHA256 of `data` (a string is UTF-8) keyed by the secret `name`. */
  hmacSha256(name: string, data: string | Uint8Array): Uint8Array
  /** {@link Secrets.hmacSha256} as lower-case hex. */
  hmacSha256Hex(name: string, data: string | Uint8Array): string
  /** The plaintext: denied unless the grant says `reveal: true`. Prefer the other two. */
  reveal(name: string): string
  /**
   * The placeholder `{{secret:NAME}}` for a header value: the host puts the secret in at
   * egress, only toward the hosts the grant binds it to.
   */
  placeholder(name: string): string
}
// #endregion

// #region data
/** One page of documents. */
export interface DataPage<T = unknown> {
  entries: { key: string; value: T }[]
  /** Pass back as `cursor` for the next page; absent on the last one. */
  nextCursor?: string
}

/** Read-only reads under the granted prefixes. */
export interface Data {
  /** The document at `key`, parsed as JSON, or undefined. */
  get<T = unknown>(collection: string, key: string): T | undefined
  /** The document at `key` as stored (JSON text), or undefined. */
  getText(collection: string, key: string): string | undefined
  /** One page of the documents under `prefix` (whole segments), values parsed. */
  list<T = unknown>(
    collection: string,
    prefix: string,
    options?: { cursor?: string; limit?: number },
  ): DataPage<T>
}
// #endregion

// #region log
/** Log lines kept in the run's report; never fails, lines past the budget are counted. */
export interface Log {
  debug(message: string): void
  info(message: string): void
  warn(message: string): void
  error(message: string): void
}
// #endregion
