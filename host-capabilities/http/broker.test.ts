/**
 * `fetch` against real servers on 127.0.0.1 (and 127.0.0.2), with a fake resolver mapping test
 * names to loopback. Nothing here leaves the machine.
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { resolveLimits } from '../../runtime/limits/limits.js'
import { HostCallError } from '../types.js'
import type { RunContext, SecretSource } from '../types.js'
import {
  createHttpCapability,
  HTTP_INTERFACE,
  redactSecretBytes,
  redactSecrets,
  SECRETS_INTERFACE,
} from './broker.js'
import type { HttpCapabilityDeps, HttpRequest, HttpResponse, ResolvedAddress } from './broker.js'
import { compileHttpGrant } from './grant.js'
import type { HttpGrantEntry } from './grant.js'

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
    secrets?: { name: string; hosts: string[]; reveal: boolean }[]
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
    grants[SECRETS_INTERFACE] = { entries: options.secrets }
  }
  return {
    invocationId: 'inv-1',
    appId: 'app-1',
    digest: 'sha256:00',
    limits: resolveLimits(options.egressBytes ? { egressBytes: options.egressBytes } : {}),
    granted: new Set(Object.keys(grants)),
    grants,
    counters: { brokerCalls: 0, egressBytes: options.spent ?? 0 },
    signal: options.signal ?? new AbortController().signal,
  }
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

  it('refuses metadata addresses behind a name even with allowPrivate', async () => {
    const lookup = fakeLookup({ 'meta.test': ['169.254.169.254'], 'zero.test': ['0.0.0.0'] })
    const entries: HttpGrantEntry[] = [
      { scheme: 'http', host: 'meta.test', allowPrivate: true },
      { scheme: 'http', host: 'zero.test', allowPrivate: true },
    ]
    expect(tagOf(await fetchWith({ lookup }, request('http://meta.test/'), ctxFor(entries)))).toBe(
      'denied',
    )
    expect(tagOf(await fetchWith({ lookup }, request('http://zero.test/'), ctxFor(entries)))).toBe(
      'denied',
    )
  })

  it('denies IPv4-mapped and other encodings of loopback without allowPrivate', async () => {
    const ctx = ctxFor([
      { scheme: 'http', host: '::ffff:127.0.0.1' },
      { scheme: 'http', host: '127.0.0.1' },
    ])
    for (const url of ['http://[::ffff:127.0.0.1]/', 'http://0x7f.1/', 'http://0177.0.0.1/']) {
      expect(tagOf(await fetchWith({}, request(url), ctx))).toBe('denied')
    }
  })

  it('answers upstream when the name does not resolve', async () => {
    const lookup = fakeLookup({})
    const ctx = ctxFor([{ host: 'nowhere.test' }])
    expect(tagOf(await fetchWith({ lookup }, request('https://nowhere.test/'), ctx))).toBe(
      'upstream',
    )
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
      secrets: [{ name: 'token', hosts: ['api.test'], reveal: false }],
    })
    const out = await fetchWith(
      { lookup, secrets: secretsStub() },
      request(`http://api.test:${srv.port}/`, {
        headers: [{ name: 'Authorization', value: '{{secret:token}}' }],
      }),
      ctx,
    )
    const res = (out as { value: HttpResponse }).value
    expect(res.status).toBe(302)
    expect(header(res, 'location')).toBe('https://evil.test/?t=[redacted:token]')
    expect(srv.requests[0]!.headers.authorization).toBe(SECRET)
  })
})

describe('fetch: secrets', () => {
  const bound = [{ name: 'token', hosts: ['api.test'], reveal: false }]

  it('substitutes a granted placeholder and redacts its echo in headers and body', async () => {
    const srv = await echo()
    const lookup = fakeLookup({ 'api.test': ['127.0.0.1'] })
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port, allowPrivate: true }], {
      secrets: bound,
    })
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
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port, allowPrivate: true }], {
      secrets: [{ name: 'token', hosts: ['other.test'], reveal: true }],
    })
    const out = await fetchWith(
      { lookup, secrets },
      request(`http://api.test:${srv.port}/`, {
        headers: [{ name: 'Authorization', value: '{{secret:token}}' }],
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
    const entries = [
      { scheme: 'http' as const, host: 'api.test', port: srv.port, allowPrivate: true },
    ]
    const req = request(`http://api.test:${srv.port}/`, {
      headers: [{ name: 'X-Key', value: '{{secret:token}}' }],
    })
    const shapes: unknown[] = [
      undefined,
      bound,
      { entries: [{ name: 'token', hosts: 'api.test' }] },
    ]
    for (const shape of shapes) {
      const ctx = ctxFor(entries)
      if (shape !== undefined) {
        ;(ctx.grants as Record<string, unknown>)[SECRETS_INTERFACE] = shape
      }
      expect(tagOf(await fetchWith({ lookup, secrets: secretsStub() }, req, ctx))).toBe('denied')
    }
    // Bound, but the store has no such secret: the same answer as not granted.
    const ctx = ctxFor(entries, { secrets: bound })
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
    const ctx = ctxFor(entries, { secrets: bound })
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
    const ctx = ctxFor([{ scheme: 'http', host: 'api.test', port: srv.port, allowPrivate: true }], {
      secrets: bound,
    })
    const out = await fetchWith(
      { lookup, secrets: secretsStub() },
      request(`http://api.test:${srv.port}/`, {
        headers: [{ name: 'Authorization', value: '{{secret:token}}' }],
      }),
      ctx,
    )
    expect(tagOf(out)).toBe('upstream')
  })

  it('denies a byte range on a request carrying a secret', async () => {
    const ctx = ctxFor([{ host: 'api.test' }], { secrets: bound })
    const out = await fetchWith(
      { secrets: secretsStub() },
      request('https://api.test/', {
        headers: [
          { name: 'Authorization', value: '{{secret:token}}' },
          { name: 'Range', value: 'bytes=0-3' },
        ],
      }),
      ctx,
    )
    expect(tagOf(out)).toBe('denied')
  })

  it('calls a malformed placeholder invalid', async () => {
    const ctx = ctxFor([{ host: 'api.test' }], { secrets: bound })
    for (const value of ['{{secret:}}', '{{secret:a b}}', '{{secret:token']) {
      const req = request('https://api.test/', { headers: [{ name: 'X', value }] })
      expect(tagOf(await fetchWith({ secrets: secretsStub() }, req, ctx))).toBe('invalid')
    }
  })
})

describe('fetch: request validation', () => {
  const ctx = () => ctxFor([{ host: 'api.test', methods: ['GET', 'POST'] }])

  it.each([
    ['CRLF in a value', { name: 'X-A', value: 'a\r\nX-Injected: 1' }],
    ['LF in a value', { name: 'X-A', value: 'a\nb' }],
    ['NUL in a value', { name: 'X-A', value: 'a\u0000b' }],
    ['a character Node cannot send', { name: 'X-A', value: 'snow\u2603' }],
    ['a name that is not a token', { name: 'X A', value: 'a' }],
    ['a name with a colon', { name: 'X:A', value: 'a' }],
    ['host', { name: 'Host', value: 'evil.test' }],
    ['content-length', { name: 'Content-Length', value: '0' }],
    ['transfer-encoding', { name: 'Transfer-Encoding', value: 'chunked' }],
    ['connection', { name: 'Connection', value: 'close' }],
    ['upgrade', { name: 'Upgrade', value: 'websocket' }],
    ['proxy-authorization', { name: 'Proxy-Authorization', value: 'x' }],
  ])('calls a header with %s invalid', async (_label, h) => {
    const out = await fetchWith({}, request('https://api.test/', { headers: [h] }), ctx())
    expect(tagOf(out)).toBe('invalid')
  })

  it.each([
    ['not a record', 'https://api.test/'],
    ['an unknown field', { ...request('https://api.test/'), extra: 1 }],
    ['a method that is not a token', request('https://api.test/', { method: 'GE T' })],
    ['CONNECT', request('https://api.test/', { method: 'CONNECT' })],
    ['a url that is not a string', { ...request(''), url: 42 }],
    ['headers that are not a list', { ...request('https://api.test/'), headers: {} }],
    ['a body that is not bytes', { ...request('https://api.test/'), body: 'text' }],
    ['a negative timeout', { ...request('https://api.test/'), timeoutMs: -1 }],
    ['a relative url', request('/x')],
    ['a file url', request('file:///etc/passwd')],
    ['userinfo', request('https://user:pw@api.test/')],
  ])('calls a request with %s invalid', async (_label, req) => {
    expect(tagOf(await fetchWith({}, req, ctx()))).toBe('invalid')
  })

  it('calls a wrong arity or function invalid', async () => {
    const cap = createHttpCapability({})
    await expect(cap.handle('fetch', [], ctx())).rejects.toMatchObject({
      payload: { tag: 'invalid' },
    })
    await expect(cap.handle('send', [request('https://api.test/')], ctx())).rejects.toMatchObject({
      payload: { tag: 'invalid' },
    })
  })

  it('refuses request headers past maxRequestHeaderBytes', async () => {
    const req = request('https://api.test/', {
      headers: [{ name: 'X-Big', value: 'a'.repeat(200) }],
    })
    const out = await fetchWith({ maxRequestHeaderBytes: 100 }, req, ctx())
    expect(tagOf(out)).toBe('limit-exceeded')
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
})

describe('redactSecrets', () => {
  const secrets = [
    { name: 'short', value: 'abc' },
    { name: 'long', value: 'xxabcxx' },
    { name: 'quoted', value: 'a"b' },
    { name: 'empty', value: '' },
  ]

  it('replaces every occurrence, the longest secret first, and ignores empty values', () => {
    expect(redactSecrets('abc-xxabcxx-abc', secrets)).toBe(
      '[redacted:short]-[redacted:long]-[redacted:short]',
    )
    expect(redactSecrets('nothing here', secrets)).toBe('nothing here')
  })

  it('also finds JSON-escaped and percent-encoded echoes', () => {
    expect(redactSecrets(JSON.stringify({ v: 'a"b' }), secrets)).toBe('{"v":"[redacted:quoted]"}')
    expect(redactSecrets('q=a%22b', secrets)).toBe('q=[redacted:quoted]')
  })

  it('redacts bytes, in UTF-8 and in Latin-1', () => {
    const utf8 = new TextEncoder().encode('pre-abc-post')
    expect(text(redactSecretBytes(utf8, secrets))).toBe('pre-[redacted:short]-post')
    const latin = [{ name: 'l', value: 'caf\u00e9' }]
    expect(text(redactSecretBytes(Buffer.from('x café', 'utf8'), latin))).toBe('x [redacted:l]')
    expect(text(redactSecretBytes(Buffer.from('x café', 'latin1'), latin))).toBe('x [redacted:l]')
  })
})
