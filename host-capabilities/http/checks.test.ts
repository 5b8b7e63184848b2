/**
 * The request checks on their own: no server, no resolver, no secret store. Each case is decided
 * before any I/O, so the outcome is the refusal (or the decision) `authoriseRequest` returns.
 */
import { describe, expect, it } from 'vitest'
import { compileSecretsGrant } from '../secrets/grant.js'
import type { SecretsGrantEntry } from '../secrets/grant.js'
import { HostCallError } from '../types.js'
import { authoriseRequest, parseHttpRequest } from './checks.js'
import type { HttpRequest } from './checks.js'
import { compileHttpGrant } from './grant.js'
import type { HttpGrantEntry } from './grant.js'

const SECRET = 's3cr3t-T0KEN-value'

type Outcome = { ok: true } | { ok: false; tag: string; message: string }

/** Parse and authorise `req` against `entries` (and `secrets`), as the broker does first. */
function decide(
  req: unknown,
  entries: HttpGrantEntry[],
  options: { secrets?: SecretsGrantEntry[]; maxRequestHeaderBytes?: number } = {},
): Outcome {
  const secrets = options.secrets && compileSecretsGrant(options.secrets)
  try {
    const grant = compileHttpGrant(entries)
    authoriseRequest(parseHttpRequest(req), grant, secrets, options.maxRequestHeaderBytes ?? 16_384)
    return { ok: true }
  } catch (error) {
    if (error instanceof HostCallError) {
      // No error a guest sees may ever carry a secret value.
      expect(JSON.stringify(error.payload)).not.toContain(SECRET)
      return { ok: false, tag: error.payload.tag, message: error.payload.val }
    }
    throw error
  }
}

function request(url: string, init: Partial<HttpRequest> = {}): HttpRequest {
  return { method: 'GET', url, headers: [], body: undefined, timeoutMs: undefined, ...init }
}

const tagOf = (outcome: Outcome) => (outcome.ok ? 'ok' : outcome.tag)
const messageOf = (outcome: Outcome) => (outcome.ok ? 'ok' : outcome.message)

describe('checks: secrets', () => {
  it('denies a byte range on a request carrying a secret', () => {
    const out = decide(
      request('https://api.test/', {
        headers: [
          { name: 'Authorization', value: 'Bearer {{secret:token}}' },
          { name: 'Range', value: 'bytes=0-3' },
        ],
      }),
      [{ host: 'api.test' }],
      { secrets: [{ name: 'token', hosts: ['api.test'] }] },
    )
    expect(tagOf(out)).toBe('denied')
  })

  it('calls a malformed placeholder invalid', () => {
    const secrets = [{ name: 'token', hosts: ['api.test'] }]
    // The secrets capability's own name rule: what could never name a secret is malformed.
    const notNames = ['{{secret:TOKEN}}', '{{secret:to.ken}}', '{{secret:1token}}']
    for (const value of ['{{secret:}}', '{{secret:a b}}', '{{secret:token', ...notNames]) {
      const req = request('https://api.test/', { headers: [{ name: 'X', value }] })
      expect(tagOf(decide(req, [{ host: 'api.test' }], { secrets }))).toBe('invalid')
    }
  })
})

describe('checks: denial messages (issue 7)', () => {
  // The text is the point here: it names the rule, for the guest author and the admin.
  it.each<[string, HttpGrantEntry[], string, Partial<HttpRequest>, string]>([
    ['plain http', [{ host: 'api.test' }], 'http://api.test/', {}, 'https only'],
    [
      'a port',
      [{ host: 'api.test' }],
      'https://api.test:8080/',
      {},
      'port 8080 not allowed for api.test',
    ],
    ['a host', [{ host: 'api.test' }], 'https://evil.test/', {}, 'host evil.test not allowed'],
    [
      'a method',
      [{ host: 'api.test' }],
      'https://api.test/',
      { method: 'POST' },
      'method POST not allowed',
    ],
    [
      'a path',
      [{ host: 'api.test', pathPrefix: '/repos/' }],
      'https://api.test/admin',
      {},
      'path not under /repos/',
    ],
    [
      'a path under none of two prefixes',
      [
        { host: 'api.test', pathPrefix: '/repos/' },
        { host: 'api.test', pathPrefix: '/users/' },
      ],
      'https://api.test/admin',
      {},
      'path not under /repos/ or /users/',
    ],
    [
      'an encoded separator',
      [{ host: 'api.test' }],
      'https://api.test/a%2fb',
      {},
      'path has a dot-segment or an encoded separator',
    ],
    [
      'a CR/LF in a header value',
      [{ host: 'api.test' }],
      'https://api.test/',
      { headers: [{ name: 'X-A', value: 'a\r\nb' }] },
      'control character in header value (X-A)',
    ],
    [
      'a host-owned header',
      [{ host: 'api.test' }],
      'https://api.test/',
      { headers: [{ name: 'Host', value: 'evil.test' }] },
      'header Host not allowed (set by the host)',
    ],
  ])('names the rule for %s', (_label, entries, url, init, message) => {
    expect(messageOf(decide(request(url, init), entries))).toBe(message)
  })

  it('names the secret rule, never the secret', () => {
    const entries: HttpGrantEntry[] = [{ host: 'api.test', methods: ['GET', 'POST'] }]
    const secrets = [{ name: 'token', hosts: ['api.test'] }]
    const withHeader = (name: string, value: string) =>
      request('https://api.test/', { headers: [{ name, value }] })
    const cases: [HttpRequest, string][] = [
      [
        withHeader('X-Key', '{{secret:token}}'),
        'secret token only allowed in header Authorization',
      ],
      [
        withHeader('Authorization', '{{secret:token}}'),
        'header Authorization must be exactly "Bearer {{secret:token}}"',
      ],
      [
        withHeader('Authorization', 'Bearer {{secret:other}}'),
        'secret other not granted for https://api.test:443',
      ],
      [
        request('https://api.test/?k={{secret:token}}'),
        'secret placeholder in the URL (only a header value may carry one)',
      ],
      [
        request('https://api.test/', {
          method: 'POST',
          body: new TextEncoder().encode('{{secret:token}}'),
        }),
        'secret placeholder in the body (only a header value may carry one)',
      ],
    ]
    for (const [req, message] of cases) {
      const out = decide(req, entries, { secrets })
      expect(messageOf(out)).toBe(message)
      expect(messageOf(out)).not.toContain(SECRET)
    }
  })
})

describe('checks: request validation', () => {
  const entries: HttpGrantEntry[] = [{ host: 'api.test', methods: ['GET', 'POST'] }]

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
  ])('calls a header with %s invalid', (_label, h) => {
    expect(tagOf(decide(request('https://api.test/', { headers: [h] }), entries))).toBe('invalid')
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
  ])('calls a request with %s invalid', (_label, req) => {
    expect(tagOf(decide(req, entries))).toBe('invalid')
  })

  it('refuses request headers past maxRequestHeaderBytes', () => {
    const req = request('https://api.test/', {
      headers: [{ name: 'X-Big', value: 'a'.repeat(200) }],
    })
    expect(tagOf(decide(req, entries, { maxRequestHeaderBytes: 100 }))).toBe('limit-exceeded')
  })
})
