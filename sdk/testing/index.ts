/**
 * `warden/testing`: test helpers for authors' own (vitest) tests. {@link openTestApp} builds the
 * app (cached by input hash, as `warden build`) and runs it in Warden's real sandbox under a
 * token minted from the manifest, with in-memory secrets and data, and, with its `http` option,
 * scripted http answers without a network: the guest's calls go through Warden's real checks
 * (the grant, secrets bindings and injection, redaction of the answer), and only what passes
 * reaches the script. {@link startUpstream} is a scripted loopback HTTP server instead, for a
 * test that wants real sockets. Every run answers its output and the host calls it made,
 * allowed or denied.
 *
 * @example
 * const app = await openTestApp('examples/issue-triage', {
 *   secrets: { github_token: 'test-token' },
 *   http: { 'GET https://api.github.com/repos/o/r/labels': { json: [{ name: 'bug' }] } },
 * })
 * const run = await app.run({ repo: 'o/r', issue: { title: 'crash' } })
 * expect(app.httpRequests[0].headers.authorization).toBe('Bearer test-token')
 */
import { createServer } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../author/build.js'
import type { BuildResult } from '../author/build.js'
import { openDevHost } from '../author/dev-host.js'
import type { DataFixtures, DevHost } from '../author/dev-host.js'
import { createScriptedTransport } from '../../runtime/index.js'
import type {
  GrantsInput,
  HttpResponse,
  HttpScriptFunction,
  Invocation,
  LimitsRequest,
} from '../../runtime/index.js'

/** Options of {@link openTestApp}. */
export interface TestAppOptions {
  /** Secrets by name (default: none; the dev secrets file is not read in tests). */
  secrets?: Readonly<Record<string, string>>
  /** Documents by collection and key (default: none). */
  data?: DataFixtures
  /** PII fields by collection. */
  pii?: Readonly<Record<string, readonly string[]>>
  /**
   * Answer the app's http calls from this script instead of the network (see {@link HttpScript}).
   * Warden's checks still run first: a call outside the grant is denied and never reaches it.
   * Default: none (calls go to the network, as in production).
   */
  http?: HttpScript
  /** Origins of the manifest's grants to move, e.g. to an {@link Upstream}'s origin. */
  origins?: Readonly<Record<string, string>>
  /** Grants instead of the manifest's (to test a narrower token). */
  grants?: GrantsInput
  limits?: LimitsRequest
  /** Where built components are cached. Default `<app>/.warden/cache`. */
  cacheDir?: string
  /** Reuse this build instead of building (several hosts over one build). */
  build?: BuildResult
}

/** One host call, as the audit log records it. */
export interface HostCall {
  /** `http`, `secrets`, `data`, `log`, or a WASI interface. */
  capability: string
  fn: string
  decision: 'allow' | 'deny'
  reason?: string
  target?: string
}

/** One action run. */
export interface TestRun {
  ok: boolean
  /** The output, parsed from JSON. */
  output?: unknown
  /** The app's own failure (it threw): its message. */
  guestError?: string
  /** Warden's failure: a stable code (`fuel_exhausted`, `capability_denied`, …). */
  error?: { code: string; message: string }
  logs: { level: string; message: string }[]
  calls: HostCall[]
  invocation: Invocation
}

/** One micro-app response. */
export interface TestResponse {
  status: number
  headers: Record<string, string>
  body: Uint8Array
  text(): string
  json<T = unknown>(): T
  logs: { level: string; message: string }[]
  calls: HostCall[]
  invocation: Invocation
}

/** A built app in a Warden host. */
export interface TestApp {
  build: BuildResult
  host: DevHost
  /**
   * Every request that reached the `http` script, in order, as Warden sent it: secrets
   * injected (the guest never saw them). Empty without a script.
   */
  httpRequests: ScriptedHttpRequest[]
  /** Run an action once with `input` (serialised as JSON). */
  run(input: unknown): Promise<TestRun>
  /** Send one request to a micro-app: `target` is its path and query (`/hello?name=Ada`). */
  request(
    method: string,
    target: string,
    init?: { headers?: Record<string, string>; body?: string | Uint8Array },
  ): Promise<TestResponse>
  close(): Promise<void>
}

/**
 * Build the app in `dir` and open it in a Warden host for tests.
 *
 * @example
 * const app = await openTestApp(new URL('..', import.meta.url))
 * expect((await app.run({ name: 'Ada' })).output).toEqual({ greeting: 'Hello, Ada!' })
 */
export async function openTestApp(
  dir: string | URL,
  options: TestAppOptions = {},
): Promise<TestApp> {
  const path = typeof dir === 'string' ? dir : fileURLToPath(dir)
  const build =
    options.build ??
    (await buildApp({ dir: path, ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}) }))
  const httpRequests: ScriptedHttpRequest[] = []
  const host = await openDevHost({
    dir: path,
    manifest: build.manifest,
    ...(options.http
      ? { http: { transport: createScriptedTransport(scriptAnswers(options.http, httpRequests)) } }
      : {}),
    secrets: options.secrets ?? {},
    data: options.data ?? {},
    pii: options.pii ?? {},
    ...(options.origins ? { origins: options.origins } : {}),
    ...(options.grants ? { grants: options.grants } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
  })
  try {
    await host.load(build.bytes)
  } catch (error) {
    await host.close()
    throw error
  }
  return {
    build,
    host,
    httpRequests,
    async run(input) {
      const invocation = await host.run(JSON.stringify(input))
      return {
        ok: invocation.ok,
        ...(invocation.ok ? { output: JSON.parse(String(invocation.output)) } : {}),
        ...(invocation.guestError === undefined
          ? {}
          : { guestError: String(invocation.guestError) }),
        ...(invocation.error ? { error: invocation.error } : {}),
        logs: invocation.logs,
        calls: hostCalls(invocation),
        invocation,
      }
    },
    async request(method, target, init = {}) {
      const url = new URL(target, 'http://app.invalid')
      const invocation = await host.handle({
        method: method.toUpperCase(),
        path: url.pathname,
        query: url.search.slice(1),
        headers: Object.entries(init.headers ?? {}).map(([name, value]) => ({ name, value })),
        body:
          init.body === undefined
            ? new Uint8Array()
            : typeof init.body === 'string'
              ? new TextEncoder().encode(init.body)
              : init.body,
      })
      if (!invocation.ok) {
        const why = invocation.error
          ? `${invocation.error.code}: ${invocation.error.message}`
          : String(invocation.guestError)
        throw new Error(`the request failed: ${why}`)
      }
      const raw = invocation.output as {
        status: number
        headers: { name: string; value: string }[]
        body: Uint8Array
      }
      const body = new Uint8Array(raw.body)
      return {
        status: raw.status,
        headers: Object.fromEntries(raw.headers.map((h) => [h.name.toLowerCase(), h.value])),
        body,
        text: () => new TextDecoder().decode(body),
        json: <T>() => JSON.parse(new TextDecoder().decode(body)) as T,
        logs: invocation.logs,
        calls: hostCalls(invocation),
        invocation,
      }
    },
    close: () => host.close(),
  }
}

/** The host calls of a run, platform capabilities by their short names. */
export function hostCalls(invocation: Invocation): HostCall[] {
  return invocation.decisions.map((d) => ({
    capability: d.capability.replace(/^warden:platform\//, ''),
    fn: d.fn,
    decision: d.decision,
    ...(d.reason === undefined ? {} : { reason: d.reason }),
    ...(d.target === undefined ? {} : { target: d.target }),
  }))
}

/** A request that reached an `http` script: as Warden sent it, secrets injected. */
export interface ScriptedHttpRequest {
  method: string
  /** `https://api.example.com/path?query`, normalised (no default port, lowercase host). */
  url: string
  /** Header names in lowercase; a repeated header's values joined with `, `. */
  headers: Record<string, string>
  body: string
}

/**
 * Scripted http answers, by function or by table:
 * - a function of the request, answering `undefined` for a request it does not know;
 * - a table keyed `'METHOD URL'` or `'URL'` (any method), each an answer or a function of the
 *   request. A URL key without a query also matches the URL with any query.
 *
 * A request the script does not know, or a function that throws, is answered with an
 * `upstream` error the guest sees: `the test's script has no answer for GET https://…`.
 *
 * @example
 * const labels = { json: [{ name: 'bug' }] }
 * await openTestApp(dir, { http: { 'GET https://api.github.com/repos/o/r/labels': labels } })
 * await openTestApp(dir, { http: (req) => (req.url.endsWith('/labels') ? labels : undefined) })
 */
export type HttpScript =
  | ((
      request: ScriptedHttpRequest,
    ) => UpstreamResponse | undefined | Promise<UpstreamResponse | undefined>)
  | Readonly<
      Record<
        string,
        | UpstreamResponse
        | ((request: ScriptedHttpRequest) => UpstreamResponse | Promise<UpstreamResponse>)
      >
    >

/** The script as the scripted transport calls it, recording each request into `requests`. */
function scriptAnswers(script: HttpScript, requests: ScriptedHttpRequest[]): HttpScriptFunction {
  const lookup = typeof script === 'function' ? script : scriptTable(script)
  return async (sent) => {
    const headers: Record<string, string> = {}
    for (const { name, value } of sent.headers) {
      const key = name.toLowerCase()
      headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`
    }
    const request: ScriptedHttpRequest = {
      method: sent.method,
      url: sent.url,
      headers,
      body: sent.body ? new TextDecoder().decode(sent.body) : '',
    }
    requests.push(request)
    const answer = await lookup(request)
    return answer === undefined ? undefined : toHttpResponse(answer)
  }
}

/** A table of answers as a function: `'METHOD URL'`, then `'URL'`, then both without the query. */
function scriptTable(
  table: Exclude<HttpScript, (...args: never[]) => unknown>,
): (request: ScriptedHttpRequest) => UpstreamResponse | Promise<UpstreamResponse> | undefined {
  const entries = new Map<string, (typeof table)[string]>()
  for (const [key, answer] of Object.entries(table)) {
    const space = key.indexOf(' ')
    const method = space === -1 ? '' : key.slice(0, space).toUpperCase()
    const raw = space === -1 ? key : key.slice(space + 1)
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      throw new TypeError(`http script: ${JSON.stringify(key)} is not "[METHOD ]URL"`)
    }
    url.hash = ''
    entries.set(`${method} ${url.href}`, answer)
  }
  return (request) => {
    const bare = request.url.split('?')[0] ?? request.url
    const found =
      entries.get(`${request.method} ${request.url}`) ??
      entries.get(` ${request.url}`) ??
      entries.get(`${request.method} ${bare}`) ??
      entries.get(` ${bare}`)
    return typeof found === 'function' ? found(request) : found
  }
}

/** A scripted answer written out: `json` serialised with its content type, status 200. */
function answerParts(answer: UpstreamResponse): {
  status: number
  headers: Record<string, string>
  body: string
} {
  return {
    status: answer.status ?? 200,
    headers: {
      ...(answer.json === undefined ? {} : { 'content-type': 'application/json' }),
      ...answer.headers,
    },
    body: answer.json === undefined ? (answer.body ?? '') : JSON.stringify(answer.json),
  }
}

/** A scripted answer as the http capability returns it. */
function toHttpResponse(answer: UpstreamResponse): HttpResponse {
  const { status, headers, body } = answerParts(answer)
  return {
    status,
    headers: Object.entries(headers).map(([name, value]) => ({ name, value })),
    body: new TextEncoder().encode(body),
  }
}

/** A request that reached an {@link Upstream}. */
export interface UpstreamRequest {
  method: string
  /** Path and query. */
  url: string
  headers: IncomingHttpHeaders
  body: string
}

/** What a scripted upstream answers: `json` (serialised, with its content type) or `body`. */
export interface UpstreamResponse {
  status?: number
  headers?: Record<string, string>
  json?: unknown
  body?: string
}

/** A scripted loopback HTTP server. */
export interface Upstream {
  /** `http://127.0.0.1:<port>` */
  origin: string
  /** Every request, in order. */
  requests: UpstreamRequest[]
  close(): Promise<void>
}

/**
 * Start a loopback upstream answering each request with `script(request)`.
 *
 * @example
 * const api = await startUpstream((req) =>
 *   req.url.startsWith('/repos/') ? { json: [{ name: 'bug' }] } : { status: 404 })
 */
export async function startUpstream(
  script: (request: UpstreamRequest) => UpstreamResponse | Promise<UpstreamResponse>,
): Promise<Upstream> {
  const requests: UpstreamRequest[] = []
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) {
      chunks.push(chunk as Buffer)
    }
    const request: UpstreamRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    }
    requests.push(request)
    try {
      const answer = answerParts(await script(request))
      res.writeHead(answer.status, answer.headers)
      res.end(answer.body)
    } catch {
      res.writeHead(500).end('script failed')
    }
  })
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready))
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections()
        server.close(() => done())
      }),
  }
}
