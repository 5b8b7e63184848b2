/**
 * `fetch` end to end, against real servers on 127.0.0.1 (and 127.0.0.2), with a fake resolver
 * mapping test names to loopback. Nothing here leaves the machine. The checks alone are in
 * `checks.test.ts`, the address rules alone in `transport.test.ts`.
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { resolveLimits } from '../../runtime/limits/limits.js'
import { fakeRunContext } from '../../test/support/context.js'
import { HostCallError } from '../types.js'
import type { RunContext, SecretSource } from '../types.js'
import { compileSecretsGrant, SECRETS_INTERFACE } from '../secrets/index.js'
import type { SecretsGrantEntry } from '../secrets/index.js'
import { createHttpCapability, HTTP_INTERFACE } from './broker.js'
import type { HttpCapabilityDeps } from './broker.js'
import type { HttpRequest } from './checks.js'
import { compileHttpGrant } from './grant.js'
import type { HttpGrantEntry } from './grant.js'
import type { HttpResponse, ResolvedAddress } from './transport.js'

const SECRET = 's3cr3t-T0KEN-value'

interface TestServer {
  port: number
  requests: IncomingMessage[]
  bodies: string[]
  server: Server
}

const open: Server[] = []

afterEach(async () => {
  await Promise.all(
    open.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        }),
    ),
  )
})

function listen(server: Server, host: string, port = 0): Promise<number> {
  open.push(server)
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port))
  })
}

/** A server on `host` that records every request (and its body) before `handler` answers. */
async function serve(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
  host = '127.0.0.1',
  port = 0,
): Promise<TestServer> {
  const requests: IncomingMessage[] = []
  const bodies: string[] = []
  const listener: RequestListener = (req, res) => {
    requests.push(req)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      bodies.push(body)
      handler(req, res, body)
    })
  }
  const server = createServer(listener)
  return { port: await listen(server, host, port), requests, bodies, server }
}

const hello = () =>
  serve((_req, res) => {
    res.setHeader('x-test', 'yes')
    res.end('hello')
  })

/** Echoes the request's `authorization` header back in a header, a Location, and the body. */
const echo = () =>
  serve((req, res) => {
    const auth = req.headers.authorization ?? ''
    res.setHeader('x-echo-auth', auth)
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ headers: req.headers, auth }))
  })

function ctxFor(
  entries: HttpGrantEntry[] | undefined,
  options: {
    secrets?: SecretsGrantEntry[]
    egressBytes?: number
    spent?: number
    signal?: AbortSignal
  } = {},
): RunContext {
  const grants: Record<string, unknown> = {}
  if (entries) {
    grants[HTTP_INTERFACE] = compileHttpGrant(entries)
  }
  if (options.secrets) {
    grants[SECRETS_INTERFACE] = compileSecretsGrant(options.secrets)
  }
  return fakeRunContext({
    invocationId: 'inv-1',
    appId: 'app-1',
    digest: 'sha256:00',
    limits: resolveLimits(options.egressBytes ? { egressBytes: options.egressBytes } : {}),
    granted: new Set(Object.keys(grants)),
    grants,
    counters: { brokerCalls: 0, egressBytes: options.spent ?? 0 },
    ...(options.signal ? { signal: options.signal } : {}),
  })
}

function request(url: string, init: Partial<HttpRequest> = {}): HttpRequest {
  return { method: 'GET', url, headers: [], body: undefined, timeoutMs: undefined, ...init }
}

/** A resolver that maps `*.test` names to fixed answers and counts its calls. */
function fakeLookup(table: Record<string, string[] | string[][]>) {
  return vi.fn(async (host: string): Promise<ResolvedAddress[]> => {
    const answer = table[host]
    if (answer === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
    }
    // A list of lists answers differently on each call (the last one repeats).
    const calls = lookupCalls.get(host) ?? 0
    lookupCalls.set(host, calls + 1)
    const addresses = Array.isArray(answer[0])
      ? (answer as string[][])[Math.min(calls, answer.length - 1)]!
      : (answer as string[])
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
  })
}
const lookupCalls = new Map<string, number>()
afterEach(() => lookupCalls.clear())

const secretsStub = (values: Record<string, string> = { token: SECRET }) => {
  const read = vi.fn(async (name: string) => values[name])
  return { read } satisfies SecretSource
}

type Outcome = { ok: true; value: HttpResponse } | { ok: false; tag: string; message: string }

async function fetchWith(
  deps: HttpCapabilityDeps,
  req: unknown,
  ctx: RunContext,
): Promise<Outcome> {
  try {
    const value = (await createHttpCapability(deps).handle('fetch', [req], ctx)) as HttpResponse
    return { ok: true, value }
  } catch (error) {
    if (error instanceof HostCallError) {
      // No error a guest sees may ever carry a secret value.
      expect(JSON.stringify(error.payload)).not.toContain(SECRET)
      return { ok: false, tag: error.payload.tag, message: error.payload.val }
    }
    throw error
  }
}

const tagOf = (outcome: Outcome) => (outcome.ok ? 'ok' : outcome.tag)
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString()
const header = (res: HttpResponse, name: string) =>
  res.headers.find((h) => h.name.toLowerCase() === name)?.value

/** A port nobody listens on: bind one, then close it. */
async function closedPort(): Promise<number> {
  const server = createServer()
  const port = await listen(server, '127.0.0.1')
  open.splice(open.indexOf(server), 1)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('fetch: grant checks', () => {
  it('returns status, headers and body for a granted GET', async () => {
    const srv = await hello()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port, allowPrivate: true }])
    const out = await fetchWith({ lookup }, request(`http://api.test:${srv.port}/x?y=1`), ctx)
    expect(out.ok).toBe(true)
    const res = (out as { value: HttpResponse }).value
    expect(res.status).toBe(200)
    expect(header(res, 'x-test')).toBe('yes')
    expect(text(res.body)).toBe('hello')
    expect(res.body).toBeInstanceOf(Uint8Array)
    expect(srv.requests[0]!.url).toBe('/x?y=1')
    expect(srv.requests[0]!.headers.host).toBe(`api.test:${srv.port}`)
    expect(lookup).toHaveBeenCalledTimes(1)
  })

  it('counts request and response bytes against the egress budget', async () => {
    const srv = await hello()
    const ctx = ctxFor([{ scheme: 'http', host: '127.0.0.1', port: srv.port, allowPrivate: true }])
    const out = await fetchWith({}, request(`http://127.0.0.1:${srv.port}/`), ctx)
    expect(tagOf(out)).toBe('ok')
    // At least the method, the URL and the five body bytes; no more than a few hundred.
    expect(ctx.counters.egressBytes).toBeGreaterThan(`GEThttp://127.0.0.1:${srv.port}/`.length + 5)
    expect(ctx.counters.egressBytes).toBeLessThan(1000)
  })

  it('denies a method the entry does not grant; the server sees nothing', async () => {
    const srv = await hello()
    const ctx = ctxFor([{ scheme: 'http', host: '127.0.0.1', port: srv.port, allowPrivate: true }])
    const out = await fetchWith(
      {},
      request(`http://127.0.0.1:${srv.port}/`, { method: 'POST' }),
      ctx,
    )
    expect(tagOf(out)).toBe('denied')
    expect(srv.requests).toHaveLength(0)
  })

  it('denies a path outside the prefix, also through a dot-segment', async () => {
    const srv = await hello()
    const ctx = ctxFor([
      {
        scheme: 'http',
        host: '127.0.0.1',
        port: srv.port,
        pathPrefix: '/repos/',
        allowPrivate: true,
      },
    ])
    const base = `http://127.0.0.1:${srv.port}`
    expect(tagOf(await fetchWith({}, request(`${base}/admin`), ctx))).toBe('denied')
    expect(tagOf(await fetchWith({}, request(`${base}/repos/../admin`), ctx))).toBe('denied')
    expect(tagOf(await fetchWith({}, request(`${base}/repos/%2e%2e/admin`), ctx))).toBe('denied')
    expect(srv.requests).toHaveLength(0)
    expect(tagOf(await fetchWith({}, request(`${base}/repos/a`), ctx))).toBe('ok')
  })

  it('denies an origin not in the grant, and any call when http is not granted', async () => {
    const ctx = ctxFor([{ host: 'api.test' }])
    expect(tagOf(await fetchWith({}, request('https://other.test/'), ctx))).toBe('denied')
    expect(tagOf(await fetchWith({}, request('https://api.test:8443/'), ctx))).toBe('denied')
    expect(tagOf(await fetchWith({}, request('http://api.test/'), ctx))).toBe('denied')
    expect(tagOf(await fetchWith({}, request('https://api.test/'), ctxFor(undefined)))).toBe(
      'denied',
    )
  })

  it('throws TypeError (host misuse) when the grant was not compiled', async () => {
    const ctx = ctxFor(undefined)
    ;(ctx.grants as Record<string, unknown>)[HTTP_INTERFACE] = [{ host: 'api.test' }]
    await expect(
      createHttpCapability({}).handle('fetch', [request('https://api.test/')], ctx),
    ).rejects.toThrow(TypeError)
  })
})

describe('fetch: addresses', () => {
  it('denies a name resolving to loopback without allowPrivate; nothing is sent', async () => {
    const srv = await hello()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port }])
    const out = await fetchWith({ lookup }, request(`http://api.test:${srv.port}/`), ctx)
    expect(tagOf(out)).toBe('denied')
    expect(srv.requests).toHaveLength(0)
  })

  it('allows a loopback IP literal only when its entry says allowPrivate', async () => {
    const srv = await hello()
    const url = `http://127.0.0.1:${srv.port}/`
    const without = ctxFor([{ scheme: 'http', host: '127.0.0.1', port: srv.port }])
    expect(tagOf(await fetchWith({}, request(url), without))).toBe('denied')
    expect(srv.requests).toHaveLength(0)
    const withPrivate = ctxFor([
      { scheme: 'http', host: '127.0.0.1', port: srv.port, allowPrivate: true },
    ])
    expect(tagOf(await fetchWith({}, request(url), withPrivate))).toBe('ok')
    // Another spelling of the same address is the same literal.
    expect(tagOf(await fetchWith({}, request(`http://2130706433:${srv.port}/`), withPrivate))).toBe(
      'ok',
    )
  })

  it('DNS rebinding: refuses an answer mixing a public and a loopback address', async () => {
    const srv = await hello()
    const lookup = fakeLookup({ 'api.test': ['93.184.216.34', '127.0.0.1'] })
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port }])
    const out = await fetchWith({ lookup }, request(`http://api.test:${srv.port}/`), ctx)
    expect(tagOf(out)).toBe('denied')
    expect(lookup).toHaveBeenCalledTimes(1)
    expect(srv.requests).toHaveLength(0)
  })

  it('DNS rebinding: connects to the checked address, never asks again', async () => {
    // The first answer is server A; any later answer would be server B on the same port.
    const a = await serve((_req, res) => res.end('A'))
    const b = await serve((_req, res) => res.end('B'), '127.0.0.2', a.port)
    const lookup = fakeLookup({ 'api.test': [['127.0.0.1'], ['127.0.0.2']] })
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: a.port, allowPrivate: true }])
    const out = await fetchWith({ lookup }, request(`http://api.test:${a.port}/`), ctx)
    expect(tagOf(out)).toBe('ok')
    expect(text((out as { value: HttpResponse }).value.body)).toBe('A')
    expect(lookup).toHaveBeenCalledTimes(1)
    expect(b.requests).toHaveLength(0)
  })

  it('falls back through the checked addresses only, in order', async () => {
    const srv = await hello()
    // 127.0.0.3 refuses; 127.0.0.1 answers. Both were in the one answer, both were checked.
    const lookup = fakeLookup({ 'api.test': ['127.0.0.3', '127.0.0.1'] })
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port, allowPrivate: true }])
    const out = await fetchWith({ lookup }, request(`http://api.test:${srv.port}/`), ctx)
    expect(tagOf(out)).toBe('ok')
    expect(lookup).toHaveBeenCalledTimes(1)
  })

  it('uses the system resolver by default: localhost is loopback', async () => {
    const srv = await hello()
    const url = `http://localhost:${srv.port}/`
    const entry = { scheme: 'http' as const, host: 'localhost', port: srv.port }
    expect(tagOf(await fetchWith({}, request(url), ctxFor([entry])))).toBe('denied')
    expect(srv.requests).toHaveLength(0)
    const allowed = await fetchWith({}, request(url), ctxFor([{ ...entry, allowPrivate: true }]))
    expect(tagOf(allowed)).toBe('ok')
  })
})

describe('fetch: redirects', () => {
  it('returns a 302 to the guest and never follows it', async () => {
    const target = await hello()
    const srv = await serve((_req, res) => {
      res.statusCode = 302
      res.setHeader('location', `http://127.0.0.1:${target.port}/next`)
      res.end()
    })
    const ctx = ctxFor([
      { scheme: 'http', host: '127.0.0.1', port: srv.port, allowPrivate: true },
      { scheme: 'http', host: '127.0.0.1', port: target.port, allowPrivate: true },
    ])
    const out = await fetchWith({}, request(`http://127.0.0.1:${srv.port}/`), ctx)
    expect(tagOf(out)).toBe('ok')
    const res = (out as { value: HttpResponse }).value
    expect(res.status).toBe(302)
    expect(header(res, 'location')).toBe(`http://127.0.0.1:${target.port}/next`)
    expect(target.requests).toHaveLength(0)
  })

  it('redacts a substituted secret echoed into a redirect Location', async () => {
    const srv = await serve((req, res) => {
      res.statusCode = 302
      res.setHeader('location', `https://evil.test/?t=${req.headers.authorization}`)
      res.end()
    })
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port, allowPrivate: true }], {
      secrets: [{ name: 'token', hosts: [`http://api.test:${srv.port}`] }],
    })
    const out = await fetchWith(
      { lookup, secrets: secretsStub() },
      request(`http://api.test:${srv.port}/`, {
        headers: [{ name: 'Authorization', value: 'Bearer {{secret:token}}' }],
      }),
      ctx,
    )
    const res = (out as { value: HttpResponse }).value
    expect(res.status).toBe(302)
    expect(header(res, 'location')).toBe('https://evil.test/?t=Bearer [redacted:token]')
    expect(srv.requests[0]!.headers.authorization).toBe(`Bearer ${SECRET}`)
  })
})

describe('fetch: secrets', () => {
  const bound = (port: number): SecretsGrantEntry[] => [
    { name: 'token', hosts: [`http://api.test:${port}`] },
  ]
  const apiEntry = (port: number): HttpGrantEntry[] => [
    { scheme: 'http', host: 'api.test', port, allowPrivate: true },
  ]

  it('substitutes a granted placeholder and redacts its echo in headers and body', async () => {
    const srv = await echo()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor(apiEntry(srv.port), { secrets: bound(srv.port) })
    const out = await fetchWith(
      { lookup, secrets: secretsStub() },
      request(`http://api.test:${srv.port}/`, {
        headers: [
          { name: 'Authorization', value: 'Bearer {{secret:token}}' },
          { name: 'Accept-Encoding', value: 'gzip' },
        ],
      }),
      ctx,
    )
    expect(tagOf(out)).toBe('ok')
    const res = (out as { value: HttpResponse }).value
    expect(srv.requests[0]!.headers.authorization).toBe(`Bearer ${SECRET}`)
    // Redaction needs plain bytes, so the guest's Accept-Encoding is replaced.
    expect(srv.requests[0]!.headers['accept-encoding']).toBe('identity')
    expect(header(res, 'x-echo-auth')).toBe('Bearer [redacted:token]')
    expect(text(res.body)).not.toContain(SECRET)
    expect(JSON.parse(text(res.body)).auth).toBe('Bearer [redacted:token]')
  })

  it('denies a placeholder bound to another host; nothing is sent or read', async () => {
    const srv = await echo()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const secrets = secretsStub()
    const ctx = ctxFor(apiEntry(srv.port), {
      secrets: [{ name: 'token', hosts: [`http://other.test:${srv.port}`], reveal: true }],
    })
    const out = await fetchWith(
      { lookup, secrets },
      request(`http://api.test:${srv.port}/`, {
        headers: [{ name: 'Authorization', value: 'Bearer {{secret:token}}' }],
      }),
      ctx,
    )
    expect(tagOf(out)).toBe('denied')
    expect(srv.requests).toHaveLength(0)
    expect(secrets.read).not.toHaveBeenCalled()
    expect(lookup).not.toHaveBeenCalled()
  })

  it('denies a placeholder with no or a malformed secrets grant, or no such secret', async () => {
    const srv = await echo()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const req = request(`http://api.test:${srv.port}/`, {
      headers: [{ name: 'Authorization', value: 'Bearer {{secret:token}}' }],
    })
    const shapes: unknown[] = [
      undefined,
      bound(srv.port),
      { entries: [{ name: 'token', hosts: 'api.test' }] },
      // The shape before issue 7: a plain object, never compiled, binds nothing.
      { entries: [{ name: 'token', hosts: [`api.test:${srv.port}`], reveal: false }] },
    ]
    for (const shape of shapes) {
      const ctx = ctxFor(apiEntry(srv.port))
      if (shape !== undefined) {
        ;(ctx.grants as Record<string, unknown>)[SECRETS_INTERFACE] = shape
      }
      expect(tagOf(await fetchWith({ lookup, secrets: secretsStub() }, req, ctx))).toBe('denied')
    }
    // Bound, but the store has no such secret: the same answer as not granted.
    const ctx = ctxFor(apiEntry(srv.port), { secrets: bound(srv.port) })
    expect(tagOf(await fetchWith({ lookup, secrets: secretsStub({}) }, req, ctx))).toBe('denied')
    expect(tagOf(await fetchWith({ lookup }, req, ctx))).toBe('denied')
    expect(srv.requests).toHaveLength(0)
  })

  it('denies a placeholder in the URL or the body', async () => {
    const srv = await echo()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const entries: HttpGrantEntry[] = [
      { scheme: 'http', host: 'api.test', port: srv.port, allowPrivate: true, methods: ['POST'] },
    ]
    const ctx = ctxFor(entries, { secrets: bound(srv.port) })
    const deps = { lookup, secrets: secretsStub() }
    const base = `http://api.test:${srv.port}`
    for (const url of [`${base}/?k={{secret:token}}`, `${base}/%7B%7Bsecret:token%7D%7D`]) {
      expect(tagOf(await fetchWith(deps, request(url, { method: 'POST' }), ctx))).toBe('denied')
    }
    const body = new TextEncoder().encode('{"k":"{{secret:token}}"}')
    expect(tagOf(await fetchWith(deps, request(`${base}/`, { method: 'POST', body }), ctx))).toBe(
      'denied',
    )
    expect(srv.requests).toHaveLength(0)
  })

  it('refuses a compressed answer to a request that carried a secret', async () => {
    const srv = await serve((req, res) => {
      res.setHeader('content-encoding', 'gzip')
      res.end(gzipSync(String(req.headers.authorization)))
    })
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor(apiEntry(srv.port), { secrets: bound(srv.port) })
    const out = await fetchWith(
      { lookup, secrets: secretsStub() },
      request(`http://api.test:${srv.port}/`, {
        headers: [{ name: 'Authorization', value: 'Bearer {{secret:token}}' }],
      }),
      ctx,
    )
    expect(tagOf(out)).toBe('upstream')
  })
})

/** A server that answers with the raw header lines it received, as JSON pairs. */
const rawEcho = () =>
  serve((req, res) => {
    const pairs: [string, string][] = []
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      pairs.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!])
    }
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(pairs))
  })

describe('fetch: secret bindings (issue 7)', () => {
  const apiEntry = (port: number): HttpGrantEntry[] => [
    { scheme: 'http', host: 'api.test', port, allowPrivate: true },
  ]

  /** Send each header on its own request: the outcome tags, and the tested headers received. */
  async function send(
    secrets: SecretsGrantEntry[],
    headers: { name: string; value: string }[],
  ): Promise<{ tags: string[]; received: string[][][] }> {
    const srv = await rawEcho()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor(apiEntry(srv.port), {
      secrets: secrets.map((s) => ({
        ...s,
        hosts: s.hosts?.map((h) => h.replace('PORT', String(srv.port))),
      })),
    })
    const tags: string[] = []
    for (const h of headers) {
      const out = await fetchWith(
        { lookup, secrets: secretsStub() },
        request(`http://api.test:${srv.port}/`, { headers: [h] }),
        ctx,
      )
      tags.push(tagOf(out))
    }
    const tested = new Set(headers.map((h) => h.name.toLowerCase()))
    const received = srv.requests.map((req) => {
      const pairs: string[][] = []
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
        if (tested.has(req.rawHeaders[i]!.toLowerCase())) {
          pairs.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!])
        }
      }
      return pairs
    })
    return { tags, received }
  }

  it('substitutes only into the header its binding names, with nothing around it', async () => {
    const binding = [{ name: 'token', hosts: ['http://api.test:PORT'], header: 'X-Api-Key' }]
    const { tags, received } = await send(binding, [
      { name: 'X-Api-Key', value: '{{secret:token}}' },
      { name: 'x-api-key', value: '{{secret:token}}' },
      { name: 'Authorization', value: 'Bearer {{secret:token}}' },
      { name: 'X-Other', value: '{{secret:token}}' },
      { name: 'X-Api-Key', value: 'pre-{{secret:token}}' },
      { name: 'X-Api-Key', value: '{{secret:token}}{{secret:token}}' },
      { name: 'X-Api-Key', value: '{{secret:token}} ' },
    ])
    expect(tags).toEqual(['ok', 'ok', 'denied', 'denied', 'denied', 'denied', 'denied'])
    // Only the two allowed requests reached the server, with the value in the named header.
    expect(received).toEqual([[['X-Api-Key', SECRET]], [['x-api-key', SECRET]]])
  })

  it('binds to `Authorization: Bearer …` by default', async () => {
    const { tags, received } = await send(
      [{ name: 'token', hosts: ['http://api.test:PORT'] }],
      [
        { name: 'Authorization', value: 'Bearer {{secret:token}}' },
        { name: 'Authorization', value: '{{secret:token}}' },
        { name: 'Authorization', value: 'token {{secret:token}}' },
        { name: 'X-Api-Key', value: '{{secret:token}}' },
        { name: 'Cookie', value: 'session={{secret:token}}' },
      ],
    )
    expect(tags).toEqual(['ok', 'denied', 'denied', 'denied', 'denied'])
    expect(received).toEqual([[['Authorization', `Bearer ${SECRET}`]]])
  })

  it('takes the prefix the binding names, the empty one included', async () => {
    const { tags } = await send(
      [
        { name: 'token', hosts: ['http://api.test:PORT'], prefix: 'token ' },
        { name: 'token', hosts: ['http://api.test:PORT'], header: 'X-Key', prefix: '' },
      ],
      [
        { name: 'Authorization', value: 'token {{secret:token}}' },
        { name: 'Authorization', value: 'Bearer {{secret:token}}' },
        { name: 'X-Key', value: '{{secret:token}}' },
      ],
    )
    expect(tags).toEqual(['ok', 'denied', 'ok'])
  })

  it('binds to an exact origin: scheme, host and port', async () => {
    const other = await hello()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const srv = await rawEcho()
    const entries: HttpGrantEntry[] = [...apiEntry(srv.port), ...apiEntry(other.port)]
    const headers = [{ name: 'Authorization', value: 'Bearer {{secret:token}}' }]
    const deps = { lookup, secrets: secretsStub() }
    const at = (port: number) => request(`http://api.test:${port}/`, { headers })
    // The origin with its port: that port only.
    const ctx = ctxFor(entries, {
      secrets: [{ name: 'token', hosts: [`http://api.test:${srv.port}`] }],
    })
    expect(tagOf(await fetchWith(deps, at(srv.port), ctx))).toBe('ok')
    expect(tagOf(await fetchWith(deps, at(other.port), ctx))).toBe('denied')
    // A bare host is `https://host:443`: never plain http, never another port.
    const bare = ctxFor(entries, { secrets: [{ name: 'token', hosts: ['api.test'] }] })
    expect(tagOf(await fetchWith(deps, at(srv.port), bare))).toBe('denied')
    expect(other.requests).toHaveLength(0)
    expect(srv.requests).toHaveLength(1)
  })
})

describe('fetch: redaction of encoded echoes (issue 7)', () => {
  const apiEntry = (port: number): HttpGrantEntry[] => [
    { scheme: 'http', host: 'api.test', port, allowPrivate: true, methods: ['GET', 'POST'] },
  ]
  const b = Buffer.from(SECRET)

  it('redacts base64, base64url, hex and percent forms in headers and body', async () => {
    const srv = await serve((_req, res) => {
      res.setHeader('x-b64', b.toString('base64'))
      res.setHeader('x-hex', b.toString('hex').toUpperCase())
      res.setHeader('x-basic', Buffer.from(`user:${SECRET}`).toString('base64'))
      res.end(
        [
          b.toString('base64url'),
          b.toString('hex'),
          [...b].map((x) => `%${x.toString(16).toUpperCase()}`).join(''),
          [...b].map((x) => `%${x.toString(16)}`).join(''),
        ].join('\n'),
      )
    })
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor(apiEntry(srv.port), {
      secrets: [{ name: 'token', hosts: [`http://api.test:${srv.port}`] }],
    })
    const out = await fetchWith(
      { lookup, secrets: secretsStub() },
      request(`http://api.test:${srv.port}/`, {
        headers: [{ name: 'Authorization', value: 'Bearer {{secret:token}}' }],
      }),
      ctx,
    )
    const res = (out as { value: HttpResponse }).value
    expect(header(res, 'x-b64')).toBe('[redacted:token]')
    expect(header(res, 'x-hex')).toBe('[redacted:token]')
    expect(header(res, 'x-basic')).toContain('[redacted:token]')
    expect(text(res.body).split('\n')).toEqual(new Array(4).fill('[redacted:token]'))
  })

  it('redacts a secret the upstream kept and handed back to a call that carried none', async () => {
    let kept = ''
    const srv = await serve((req, res) => {
      if (req.url === '/keep') {
        kept = String(req.headers.authorization)
        res.end('kept')
      } else {
        res.setHeader('x-kept', Buffer.from(kept).toString('base64'))
        res.end(kept)
      }
    })
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor(apiEntry(srv.port), {
      secrets: [{ name: 'token', hosts: [`http://api.test:${srv.port}`] }],
    })
    const deps = { lookup, secrets: secretsStub() }
    const base = `http://api.test:${srv.port}`
    const keep = await fetchWith(
      deps,
      request(`${base}/keep`, {
        headers: [{ name: 'Authorization', value: 'Bearer {{secret:token}}' }],
      }),
      ctx,
    )
    expect(tagOf(keep)).toBe('ok')
    const back = await fetchWith(deps, request(`${base}/back`), ctx)
    const res = (back as { value: HttpResponse }).value
    expect(text(res.body)).toBe('Bearer [redacted:token]')
    expect(header(res, 'x-kept')).toContain('[redacted:token]')
  })
})

describe('fetch: header names (issue 7)', () => {
  it('sends constructor, toString and __proto__ as written, and nothing more', async () => {
    const srv = await rawEcho()
    const ctx = ctxFor([{ scheme: 'http', host: '127.0.0.1', port: srv.port, allowPrivate: true }])
    const sent = [
      { name: 'constructor', value: 'x' },
      { name: 'toString', value: 'y' },
      { name: '__proto__', value: 'z' },
      { name: 'hasOwnProperty', value: 'w' },
      { name: 'length', value: 'v' },
    ]
    const out = await fetchWith(
      {},
      request(`http://127.0.0.1:${srv.port}/`, { headers: sent }),
      ctx,
    )
    expect(tagOf(out)).toBe('ok')
    const pairs = JSON.parse(text((out as { value: HttpResponse }).value.body)) as string[][]
    const names = new Set(sent.map((h) => h.name.toLowerCase()))
    expect(pairs.filter(([name]) => names.has(name!.toLowerCase()))).toEqual(
      sent.map((h) => [h.name, h.value]),
    )
    expect(JSON.stringify(pairs)).not.toMatch(/native code|\[object /)
  })
})

describe('fetch: audit target (issue 7)', () => {
  async function targetOf(
    url: string,
    ctx: RunContext,
    deps: HttpCapabilityDeps = {},
  ): Promise<string | undefined> {
    const cap = createHttpCapability(deps)
    const args = [request(url)]
    await Promise.resolve(cap.handle('fetch', args, ctx)).catch(() => undefined)
    return cap.target!('fetch', args)
  }

  it('records the canonical target and the address actually connected to', async () => {
    const srv = await hello()
    // 127.0.0.3 refuses the connection; 127.0.0.1 answers it.
    const lookup = fakeLookup({ 'api.test': ['127.0.0.3', '127.0.0.1'] })
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port, allowPrivate: true }])
    const url = `http://API.Test.:${srv.port}/a/./b/../c?token=abc#frag`
    expect(await targetOf(url, ctx, { lookup })).toBe(
      `GET http://api.test:${srv.port}/a/c → 127.0.0.1`,
    )
  })

  it('writes the port, the A-label host and no query; no address when refused', async () => {
    const ctx = ctxFor([{ host: 'api.test' }])
    expect(await targetOf('https://Bücher.example/x?q={{secret:token}}', ctx)).toBe(
      'GET https://xn--bcher-kva.example:443/x',
    )
    expect(await targetOf('http://[::1]:8080/', ctx)).toBe('GET http://[::1]:8080/')
    expect(await targetOf('http://0x7f.1/', ctx)).toBe('GET http://127.0.0.1:80/')
  })

  it('records nothing for a URL that does not parse, never the raw string', async () => {
    const ctx = ctxFor([{ host: 'api.test' }])
    expect(await targetOf('https://user:pw@api.test/', ctx)).toBeUndefined()
    expect(await targetOf('not a url', ctx)).toBeUndefined()
  })
})

describe('fetch: request validation', () => {
  const ctx = () => ctxFor([{ host: 'api.test', methods: ['GET', 'POST'] }])

  it('calls a wrong arity or function invalid', async () => {
    const cap = createHttpCapability({})
    await expect(cap.handle('fetch', [], ctx())).rejects.toMatchObject({
      payload: { tag: 'invalid' },
    })
    await expect(cap.handle('send', [request('https://api.test/')], ctx())).rejects.toMatchObject({
      payload: { tag: 'invalid' },
    })
  })
})

describe('fetch: budgets and upstream failures', () => {
  const privateEntry = (port: number): HttpGrantEntry[] => [
    { scheme: 'http', host: '127.0.0.1', port, allowPrivate: true },
  ]

  it('stops at maxResponseBytes with limit-exceeded', async () => {
    const srv = await serve((_req, res) => res.end(Buffer.alloc(4096, 0x61)))
    const out = await fetchWith(
      { maxResponseBytes: 1024 },
      request(`http://127.0.0.1:${srv.port}/`),
      ctxFor(privateEntry(srv.port)),
    )
    expect(tagOf(out)).toBe('limit-exceeded')
  })

  it('refuses before sending when the egress budget is already spent', async () => {
    const srv = await hello()
    const ctx = ctxFor(privateEntry(srv.port), { egressBytes: 1000, spent: 990 })
    const out = await fetchWith({}, request(`http://127.0.0.1:${srv.port}/`), ctx)
    expect(tagOf(out)).toBe('limit-exceeded')
    expect(srv.requests).toHaveLength(0)
    expect(ctx.counters.egressBytes).toBe(990)
  })

  it('stops reading when the response spends the egress budget', async () => {
    const srv = await serve((_req, res) => res.end(Buffer.alloc(64 * 1024, 0x61)))
    const ctx = ctxFor(privateEntry(srv.port), { egressBytes: 4096 })
    const out = await fetchWith({}, request(`http://127.0.0.1:${srv.port}/`), ctx)
    expect(tagOf(out)).toBe('limit-exceeded')
  })

  it('refuses response headers past maxResponseHeaderBytes', async () => {
    const srv = await serve((_req, res) => {
      res.setHeader('x-big', 'a'.repeat(4096))
      res.end('ok')
    })
    const out = await fetchWith(
      { maxResponseHeaderBytes: 1024 },
      request(`http://127.0.0.1:${srv.port}/`),
      ctxFor(privateEntry(srv.port)),
    )
    expect(tagOf(out)).toBe('limit-exceeded')
  })

  it('answers upstream when the connection is refused', async () => {
    const port = await closedPort()
    const out = await fetchWith(
      {},
      request(`http://127.0.0.1:${port}/`),
      ctxFor(privateEntry(port)),
    )
    expect(tagOf(out)).toBe('upstream')
  })

  it('answers upstream when the server is slower than the timeout', async () => {
    const srv = await serve(() => {
      // Never answers.
    })
    const url = `http://127.0.0.1:${srv.port}/`
    const ctx = ctxFor(privateEntry(srv.port))
    expect(tagOf(await fetchWith({ defaultTimeoutMs: 200 }, request(url), ctx))).toBe('upstream')
    // The guest may only shorten the timeout, never lengthen it.
    const req = request(url, { timeoutMs: 0xffff_ffff })
    expect(tagOf(await fetchWith({ defaultTimeoutMs: 200 }, req, ctx))).toBe('upstream')
    expect(tagOf(await fetchWith({}, request(url, { timeoutMs: 100 }), ctx))).toBe('upstream')
  })

  it('answers upstream when the run ends mid-request', async () => {
    const srv = await serve(() => {
      // Never answers.
    })
    const run = new AbortController()
    const ctx = ctxFor(privateEntry(srv.port), { signal: run.signal })
    const pending = fetchWith({}, request(`http://127.0.0.1:${srv.port}/`), ctx)
    await vi.waitFor(() => expect(srv.requests).toHaveLength(1))
    run.abort()
    expect(tagOf(await pending)).toBe('upstream')
  })

  it('sends a POST body and counts it', async () => {
    const srv = await serve((_req, res, body) => res.end(body.toUpperCase()))
    const ctx = ctxFor([
      { scheme: 'http', host: '127.0.0.1', port: srv.port, allowPrivate: true, methods: ['POST'] },
    ])
    const body = new TextEncoder().encode('payload')
    const out = await fetchWith(
      {},
      request(`http://127.0.0.1:${srv.port}/`, { method: 'post', body }),
      ctx,
    )
    expect(text((out as { value: HttpResponse }).value.body)).toBe('PAYLOAD')
    expect(srv.requests[0]!.method).toBe('POST')
    expect(srv.bodies[0]).toBe('payload')
  })
})

describe('fetch: TLS', () => {
  const fixture = (name: string) =>
    readFileSync(new URL(`./testdata/${name}`, import.meta.url), 'utf8')

  async function tlsServer() {
    const servernames: (string | false | null)[] = []
    const server = createTlsServer(
      { cert: fixture('api.test.cert.pem'), key: fixture('api.test.key.pem') },
      (_req, res) => res.end('secure'),
    )
    server.on('secureConnection', (socket) => servernames.push(socket.servername))
    const port = await listen(server, '127.0.0.1')
    return { port, servernames }
  }

  it('verifies the certificate against the hostname and sends it as SNI', async () => {
    const { port, servernames } = await tlsServer()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] })
    const entries: HttpGrantEntry[] = [
      { host: 'api.test', port, allowPrivate: true },
      { host: 'other.test', port, allowPrivate: true },
    ]
    const ca = fixture('ca.pem')
    const ok = await fetchWith(
      { lookup, ca },
      request(`https://api.test:${port}/`),
      ctxFor(entries),
    )
    expect(text((ok as { value: HttpResponse }).value.body)).toBe('secure')
    expect(servernames).toEqual(['api.test'])
    // The same server under another name: the certificate does not match.
    const wrongName = await fetchWith(
      { lookup, ca },
      request(`https://other.test:${port}/`),
      ctxFor(entries),
    )
    expect(tagOf(wrongName)).toBe('upstream')
    // Without the test CA, the chain is not trusted.
    const untrusted = await fetchWith(
      { lookup },
      request(`https://api.test:${port}/`),
      ctxFor(entries),
    )
    expect(tagOf(untrusted)).toBe('upstream')
  })

  it('records the address a TLS connection reached in the audit target (issue 7)', async () => {
    const { port } = await tlsServer()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const cap = createHttpCapability({ lookup, ca: fixture('ca.pem') })
    const args = [request(`https://api.test:${port}/x?y=1`)]
    await cap.handle('fetch', args, ctxFor([{ host: 'api.test', port, allowPrivate: true }]))
    expect(cap.target!('fetch', args)).toBe(`GET https://api.test:${port}/x → 127.0.0.1`)
  })
})
