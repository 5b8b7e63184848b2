/**
 * A small typed client of the Warden HTTP API (docs/control-plane.md) over `fetch`. API-key
 * routes send `key`; `invoke`, `attenuateToken` and `invocation` send a capability token.
 */
import { WardenApiError } from './errors.js'
import type {
  ApiKeyInfo,
  ApiRole,
  App,
  AppDetail,
  AppFilter,
  AppPage,
  AttenuateRequest,
  AuditFilter,
  AuditHead,
  AuditPage,
  AuditVerifyAnswer,
  GrantRequest,
  InvocationAnswer,
  InvokeResult,
  MintedToken,
  NewApiKey,
  Route,
  RouteRequest,
  RunRequest,
  RunResult,
  SecretInfo,
  TokenEntry,
  UploadMeta,
  UploadResult,
} from './types.js'

/** Options of {@link WardenClient}. */
export interface WardenClientOptions {
  /** The server's base URL: `http://127.0.0.1:8080`. */
  server: string
  /** An API key (`wdn_…`) for the admin, publisher and auditor routes. */
  key?: string
  /** A capability token: the default of `invoke`, `attenuateToken` and `invocation`. */
  token?: string
  /** Default the global `fetch`. */
  fetch?: typeof fetch
}

interface Call {
  method: string
  path: string
  /** The credential to send; none when undefined. */
  auth: string | undefined
  query?: Record<string, string | number | undefined>
  json?: unknown
  body?: Uint8Array
  contentType?: string
}

/** One path segment, percent-encoded (a data key's `/` included). */
const seg = (value: string) => encodeURIComponent(value)

/**
 * The Warden API over HTTP. Every method resolves with the parsed answer or rejects with a
 * {@link WardenApiError}.
 *
 * @example
 * const warden = new WardenClient({ server: 'http://127.0.0.1:8080', key: process.env.WARDEN_KEY })
 * const { app } = await warden.upload(bytes, { name: 'hello', owner: 'me', purpose: 'demo' })
 * const { token } = await warden.grantToken({ app: app.id, grants: { log: true } })
 * const { output } = await warden.invoke(app.id, { name: 'Ada' }, token)
 */
export class WardenClient {
  readonly server: string
  readonly #key: string | undefined
  readonly #token: string | undefined
  readonly #fetch: typeof fetch

  constructor(options: WardenClientOptions) {
    let url: URL
    try {
      url = new URL(options.server)
    } catch (error) {
      throw new TypeError('server: not a URL', { cause: error })
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError('server: an http or https URL')
    }
    if (url.username || url.password) {
      throw new TypeError('server: no credentials in the URL; pass key or token')
    }
    this.server = url.href.replace(/\/+$/, '')
    this.#key = options.key
    this.#token = options.token
    this.#fetch = options.fetch ?? globalThis.fetch
  }

  // ── system ──────────────────────────────────────────────────────────────────────────────

  /** `GET /healthz`. */
  health(): Promise<{ ok: true }> {
    return this.#json({ method: 'GET', path: '/healthz', auth: undefined })
  }

  // ── apps ────────────────────────────────────────────────────────────────────────────────

  /** Upload component bytes: a new app, a new version, or nothing new (`changed: false`). */
  async upload(bytes: Uint8Array, meta: UploadMeta): Promise<UploadResult> {
    const { status, body } = await this.#send({
      method: 'POST',
      path: '/v1/apps',
      auth: this.#key,
      query: { ...meta },
      body: bytes,
      contentType: 'application/wasm',
    })
    return { app: body as App, changed: status === 201 }
  }

  /** The registry, filtered, one page. */
  listApps(filter: AppFilter = {}): Promise<AppPage> {
    return this.#json({ method: 'GET', path: '/v1/apps', auth: this.#key, query: { ...filter } })
  }

  /** One app by id or name, with the tokens granted for it. */
  getApp(app: string): Promise<AppDetail> {
    return this.#json({ method: 'GET', path: `/v1/apps/${seg(app)}`, auth: this.#key })
  }

  /**
   * Approve the current build (admin), named by the `digest` you reviewed: the server answers
   * `conflict` when another build became current since.
   */
  approve(app: string, digest?: string): Promise<App> {
    const query = digest === undefined ? '' : `?digest=${encodeURIComponent(digest)}`
    return this.#json({
      method: 'POST',
      path: `/v1/apps/${seg(app)}/approve${query}`,
      auth: this.#key,
    })
  }

  /** Kill switch: refuse new runs and end running ones (admin). */
  disable(app: string): Promise<App> {
    return this.#appAction(app, 'disable')
  }

  /** Lift the kill switch (admin). */
  enable(app: string): Promise<App> {
    return this.#appAction(app, 'enable')
  }

  /** Decommission: revoke its tokens, end its runs; `not_found` from then on (admin). */
  decommission(app: string): Promise<App> {
    return this.#json({ method: 'DELETE', path: `/v1/apps/${seg(app)}`, auth: this.#key })
  }

  /**
   * Run an action once under a capability token (default: the client's `token`). A run Warden
   * ended, or the app's own `err`, rejects with a {@link WardenApiError} carrying the report.
   */
  invoke(app: string, input: unknown, token = this.#token): Promise<InvokeResult> {
    return this.#json({
      method: 'POST',
      path: `/v1/apps/${seg(app)}/invoke`,
      auth: token,
      json: { input },
    })
  }

  // ── HTTP micro-app routes ───────────────────────────────────────────────────────────────

  /**
   * Serve an approved micro-app at `/apps/<name>/` (admin): with a token you hold
   * (`{ token }`), or a fresh one minted for the route (`{ grants, limits, ttlSeconds }`).
   * Binding again replaces the binding.
   *
   * @example
   * const route = await warden.bindRoute('hello-http', { grants: { log: true } })
   * await fetch(`${warden.server}${route.path}greet`)
   */
  bindRoute(app: string, request: RouteRequest = {}): Promise<Route> {
    return this.#json({
      method: 'POST',
      path: `/v1/apps/${seg(app)}/route`,
      auth: this.#key,
      json: request,
    })
  }

  /** The app's route binding (admin, publisher, auditor); `not_found` when there is none. */
  getRoute(app: string): Promise<Route> {
    return this.#json({ method: 'GET', path: `/v1/apps/${seg(app)}/route`, auth: this.#key })
  }

  /** Stop serving the app (admin); the bound token is not revoked. Answers the old binding. */
  unbindRoute(app: string): Promise<Route> {
    return this.#json({ method: 'DELETE', path: `/v1/apps/${seg(app)}/route`, auth: this.#key })
  }

  /**
   * An agent's ephemeral run (`POST /v1/runs`) under a capability token (default: the client's
   * `token`): JS `source` in Warden's built-in sandbox (a token for the app `js`), or a deployed
   * action by `app`. A script that throws rejects with `guest_error`, its message and its
   * `scriptStack` (lines of the source); a limit with Warden's code; both carry the report and logs.
   *
   * @example
   * const { output } = await client.run({ source: 'return input.n * 2', input: { n: 21 } }, token) // 42
   */
  run(request: RunRequest, token = this.#token): Promise<RunResult> {
    return this.#json({ method: 'POST', path: '/v1/runs', auth: token, json: request })
  }

  /** {@link WardenClient.run} of JS `source` with `input`. */
  runJs(source: string, input?: unknown, token = this.#token): Promise<RunResult> {
    return this.run(input === undefined ? { source } : { source, input }, token)
  }

  // ── tokens ──────────────────────────────────────────────────────────────────────────────

  /** Mint a token for an approved app's current build (admin). */
  grantToken(request: GrantRequest): Promise<MintedToken> {
    return this.#json({ method: 'POST', path: '/v1/tokens', auth: this.#key, json: request })
  }

  /** A narrower child of `parent` (default: the client's `token`). */
  attenuateToken(request: AttenuateRequest, parent = this.#token): Promise<MintedToken> {
    return this.#json({ method: 'POST', path: '/v1/tokens/attenuate', auth: parent, json: request })
  }

  /** Revoke a token and every token derived from it (admin). */
  revokeToken(jti: string): Promise<{ jti: string; revoked: true }> {
    return this.#json({ method: 'DELETE', path: `/v1/tokens/${seg(jti)}`, auth: this.#key })
  }

  /** Tokens granted, newest first, of one app when given (admin). */
  async listTokens(app?: string): Promise<TokenEntry[]> {
    const answer = await this.#json<{ tokens: TokenEntry[] }>({
      method: 'GET',
      path: '/v1/tokens',
      auth: this.#key,
      query: { app },
    })
    return answer.tokens
  }

  /** A run's report and audit records (admin, auditor, or the token that ran it). */
  invocation(id: string, credential = this.#token ?? this.#key): Promise<InvocationAnswer> {
    return this.#json({ method: 'GET', path: `/v1/invocations/${seg(id)}`, auth: credential })
  }

  // ── secrets, data ───────────────────────────────────────────────────────────────────────

  /** Secrets (admin): values go in and never come out. */
  readonly secrets = {
    set: async (name: string, value: string): Promise<void> => {
      await this.#send({
        method: 'PUT',
        path: `/v1/secrets/${seg(name)}`,
        auth: this.#key,
        json: { value },
      })
    },
    list: async (): Promise<SecretInfo[]> =>
      (
        await this.#json<{ secrets: SecretInfo[] }>({
          method: 'GET',
          path: '/v1/secrets',
          auth: this.#key,
        })
      ).secrets,
    /** True when there was one. */
    delete: async (name: string): Promise<boolean> =>
      (
        await this.#json<{ deleted: boolean }>({
          method: 'DELETE',
          path: `/v1/secrets/${seg(name)}`,
          auth: this.#key,
        })
      ).deleted,
  }

  /** Data documents and collection schemas (admin). Keys may hold `/`. */
  readonly data = {
    put: async (collection: string, key: string, value: unknown): Promise<void> => {
      await this.#send({
        method: 'PUT',
        path: this.#dataPath(collection, key),
        auth: this.#key,
        json: { value },
      })
    },
    /** The document as stored (PII unmasked); `not_found` when there is none. */
    get: async (collection: string, key: string): Promise<unknown> =>
      (
        await this.#json<{ value: unknown }>({
          method: 'GET',
          path: this.#dataPath(collection, key),
          auth: this.#key,
        })
      ).value,
    /** True when there was one. */
    delete: async (collection: string, key: string): Promise<boolean> =>
      (
        await this.#json<{ deleted: boolean }>({
          method: 'DELETE',
          path: this.#dataPath(collection, key),
          auth: this.#key,
        })
      ).deleted,
    /** Set the collection's PII fields (an empty list clears them). */
    schema: async (collection: string, piiFields: readonly string[]): Promise<void> => {
      await this.#send({
        method: 'PUT',
        path: `/v1/data/${seg(collection)}/schema`,
        auth: this.#key,
        json: { piiFields },
      })
    },
  }

  // ── audit, keys ─────────────────────────────────────────────────────────────────────────

  /** The audit log (admin, auditor). */
  readonly audit = {
    /** Records from `cursor` (a seq), oldest first, filtered; `nextCursor` for the next page. */
    query: (filter: AuditFilter = {}): Promise<AuditPage> =>
      this.#json({ method: 'GET', path: '/v1/audit', auth: this.#key, query: { ...filter } }),
    verify: (): Promise<AuditVerifyAnswer> =>
      this.#json({ method: 'GET', path: '/v1/audit/verify', auth: this.#key }),
    head: (): Promise<AuditHead> =>
      this.#json({ method: 'GET', path: '/v1/audit/head', auth: this.#key }),
    /** The public key the log's checkpoints are signed with (SPKI PEM), and its id. */
    key: (): Promise<{ keyId: string; publicKey: string }> =>
      this.#json({ method: 'GET', path: '/v1/audit/key', auth: this.#key }),
  }

  /** API keys (admin). */
  readonly keys = {
    /** The key is in the answer once; only its hash is stored. */
    create: (role: ApiRole, label: string): Promise<NewApiKey> =>
      this.#json({ method: 'POST', path: '/v1/keys', auth: this.#key, json: { role, label } }),
    list: async (): Promise<ApiKeyInfo[]> =>
      (
        await this.#json<{ keys: ApiKeyInfo[] }>({
          method: 'GET',
          path: '/v1/keys',
          auth: this.#key,
        })
      ).keys,
    revoke: (id: string): Promise<ApiKeyInfo> =>
      this.#json({ method: 'DELETE', path: `/v1/keys/${seg(id)}`, auth: this.#key }),
  }

  // ── plumbing ────────────────────────────────────────────────────────────────────────────

  #appAction(app: string, action: 'disable' | 'enable'): Promise<App> {
    return this.#json({ method: 'POST', path: `/v1/apps/${seg(app)}/${action}`, auth: this.#key })
  }

  #dataPath(collection: string, key: string): string {
    return `/v1/data/${seg(collection)}/${seg(key)}`
  }

  async #json<T>(call: Call): Promise<T> {
    return (await this.#send(call)).body as T
  }

  /** Send one request; the parsed JSON body of a 2xx answer, or a {@link WardenApiError}. */
  async #send(call: Call): Promise<{ status: number; body: unknown }> {
    const url = new URL(`${this.server}${call.path}`)
    for (const [name, value] of Object.entries(call.query ?? {})) {
      if (value !== undefined) {
        url.searchParams.set(name, String(value))
      }
    }
    const headers: Record<string, string> = { accept: 'application/json' }
    if (call.auth !== undefined) {
      headers.authorization = `Bearer ${call.auth}`
    }
    let body: BodyInit | null = null
    if (call.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(call.json)
    } else if (call.body !== undefined) {
      headers['content-type'] = call.contentType ?? 'application/octet-stream'
      body = call.body as BodyInit
    }
    let response: Response
    let text: string
    try {
      // Never follow a redirect: the key or token would go along to wherever it points.
      response = await this.#fetch(url, { method: call.method, headers, body, redirect: 'error' })
      text = await response.text()
    } catch (error) {
      // NB: the message names the origin only; the cause may hold the request, never shown.
      throw new WardenApiError(
        'upstream_error',
        `cannot reach the Warden server at ${url.origin}`,
        0,
        { cause: error },
      )
    }
    let parsed: unknown
    if (text !== '') {
      try {
        parsed = JSON.parse(text)
      } catch (error) {
        throw new WardenApiError(
          'internal',
          `the server answered ${response.status} with a body that is not JSON`,
          response.status,
          { cause: error },
        )
      }
    }
    if (response.ok) {
      return { status: response.status, body: parsed }
    }
    throw errorOf(parsed, response.status)
  }
}

/** The {@link WardenApiError} of an error answer (its report, for a run). */
function errorOf(body: unknown, status: number): WardenApiError {
  const answer = (body ?? {}) as {
    error?: { code?: unknown; message?: unknown; stack?: unknown }
    logs?: RunResult['logs']
    report?: InvokeResult['report']
    guestError?: unknown
    invocationId?: unknown
  }
  const { code, message, stack } = answer.error ?? {}
  if (typeof code !== 'string' || typeof message !== 'string') {
    return new WardenApiError(
      'internal',
      `the server answered ${status} without an error code`,
      status,
    )
  }
  return new WardenApiError(code, message, status, {
    ...(answer.report ? { report: answer.report } : {}),
    ...('guestError' in answer ? { guestError: answer.guestError } : {}),
    ...(typeof answer.invocationId === 'string' ? { invocationId: answer.invocationId } : {}),
    ...(typeof stack === 'string' ? { scriptStack: stack } : {}),
    ...(Array.isArray(answer.logs) ? { logs: answer.logs } : {}),
  })
}
