import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { WardenError } from '../runtime/index.js'
import {
  hasDotSegment,
  checkGuestResponse,
  CREDENTIAL_HEADERS,
  HOP_BY_HOP,
  HOST_RESPONSE_HEADERS,
  requestHeadersForGuest,
  splitAppPath,
} from './micro-app-http.js'

const CAPS = { maxBodyBytes: 1024 }
const ok = (headers: unknown[], extra: Record<string, unknown> = {}) => ({
  status: 200,
  headers,
  body: new Uint8Array(),
  ...extra,
})

function refusal(output: unknown): string {
  try {
    checkGuestResponse(output, CAPS)
  } catch (error) {
    expect(error).toBeInstanceOf(WardenError)
    return (error as WardenError).code
  }
  return 'accepted'
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const SPECIAL = [...HOP_BY_HOP, ...CREDENTIAL_HEADERS, ...HOST_RESPONSE_HEADERS, 'x-warden-run']
/** Header names: specials in any case, plain tokens, and arbitrary strings. */
const headerName = fc.oneof(
  fc
    .constantFrom(...SPECIAL)
    .chain((n) => fc.constantFrom(n, n.toUpperCase(), n[0]!.toUpperCase() + n.slice(1))),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/),
  fc.string({ maxLength: 12 }),
)
const headerValue = fc.oneof(
  fc.stringMatching(/^[\x21-\x7e]{0,16}$/),
  fc.string({ maxLength: 16 }),
  fc.string({ unit: 'binary', maxLength: 16 }),
)

describe('splitAppPath', () => {
  it('splits the name from the path under the mount', () => {
    expect(splitAppPath('/apps/hello')).toEqual({ name: 'hello', path: '/' })
    expect(splitAppPath('/apps/hello/')).toEqual({ name: 'hello', path: '/' })
    expect(splitAppPath('/apps/hello/a%2Fb/c')).toEqual({ name: 'hello', path: '/a%2Fb/c' })
  })

  it('refuses anything that is not an app name as written', () => {
    for (const path of [
      '/apps/',
      '/apps',
      '/v1/apps/x',
      '/apps/Hello/',
      '/apps/hel%6co/',
      '/apps/a%2F..%2Fb/',
      '/apps/app-0123456789abcdef/',
      '/apps/-a/',
      '/apps/a\n/',
      '/appsx/a/',
    ]) {
      expect(splitAppPath(path)).toBeUndefined()
    }
  })
})

describe('hasDotSegment (third outside attack)', () => {
  it('finds `.` and `..` segments, plain or percent-encoded in any case, in origin and absolute form', () => {
    for (const target of [
      '/apps/x/..',
      '/apps/x/../v1/keys',
      '/apps/x/%2e%2e/%2e%2e/v1/keys',
      '/apps/reflect/.%2E/.%2e/openapi.json',
      '/apps/x/%2E/',
      '/./v1/keys',
      'http://h:80/apps/x/%2e%2e/v1/keys?q=1',
    ]) {
      expect(hasDotSegment(target), target).toBe(true)
    }
  })

  it('leaves dots inside names, dots in the query, and other encodings alone', () => {
    for (const target of [
      '/apps/x/a.b',
      '/apps/x/..c/.d/e..',
      '/apps/x/?p=../..',
      '/apps/x/%2e%2e%2f',
      '/',
      '/v1/apps/app-1f2e/invoke',
    ]) {
      expect(hasDotSegment(target), target).toBe(false)
    }
  })

  it('agrees with the URL parser: a target without dot segments keeps its path when resolved', () => {
    const segment = fc.stringMatching(/^[a-zA-Z0-9._~%-]{0,6}$/)
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 6 }), (segments) => {
        const target = `/p/${segments.join('/')}`
        const resolved = new URL(target, 'http://h').pathname
        if (!hasDotSegment(target)) {
          // Nothing was resolved away: the parser may only re-encode, never drop segments.
          expect(resolved.split('/').length).toBe(target.split('/').length)
        }
      }),
    )
  })
})

describe('requestHeadersForGuest', () => {
  it('never passes a credential, a hop-by-hop header or one Connection names (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(headerName, fc.stringMatching(/^[\x21-\x7e]{0,8}$/)), { maxLength: 20 }),
        fc.array(headerName, { maxLength: 3 }),
        (pairs, connection) => {
          const headers = new Headers()
          for (const [name, value] of pairs) {
            if (TOKEN.test(name)) {
              headers.append(name, value)
            }
          }
          const listed = connection.filter((n) => TOKEN.test(n))
          if (listed.length > 0) {
            headers.set('connection', listed.join(', '))
          }
          const seen = requestHeadersForGuest(headers)
          for (const { name } of seen) {
            expect(HOP_BY_HOP.has(name) || CREDENTIAL_HEADERS.has(name)).toBe(false)
            expect(listed.map((n) => n.toLowerCase())).not.toContain(name)
          }
          // Everything else is passed.
          for (const [name] of headers) {
            const dropped =
              HOP_BY_HOP.has(name) ||
              CREDENTIAL_HEADERS.has(name) ||
              listed.some((n) => n.toLowerCase() === name)
            expect(seen.some((h) => h.name === name)).toBe(!dropped)
          }
        },
      ),
    )
  })
})

describe('checkGuestResponse', () => {
  it('keeps valid headers, drops the host-owned ones, and refuses anything else (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ name: headerName, value: headerValue }), { maxLength: 12 }),
        (headers) => {
          const valid = headers.every(
            (h) =>
              TOKEN.test(h.name) &&
              h.name.length <= 256 &&
              /^(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?$/.test(h.value),
          )
          let answer: ReturnType<typeof checkGuestResponse>
          try {
            answer = checkGuestResponse(ok(headers), CAPS)
          } catch (error) {
            expect((error as WardenError).code).toBe('invalid_response')
            expect(valid).toBe(false)
            return
          }
          expect(valid).toBe(true)
          for (const [name, values] of Object.entries(answer.headers)) {
            expect(name).toBe(name.toLowerCase())
            expect(SPECIAL.includes(name) && !CREDENTIAL_HEADERS.has(name)).toBe(false)
            expect(name.startsWith('x-warden-')).toBe(false)
            for (const value of values) {
              expect(value).not.toMatch(/[\r\n\0]/)
            }
          }
          for (const h of headers) {
            const lower = h.name.toLowerCase()
            const dropped =
              HOP_BY_HOP.has(lower) ||
              HOST_RESPONSE_HEADERS.has(lower) ||
              lower.startsWith('x-warden-')
            expect(answer.headers[lower]?.includes(h.value) ?? false).toBe(!dropped)
          }
        },
      ),
    )
  })

  it('refuses statuses outside 200–599 and bodies on 204, 205 and 304', () => {
    for (const status of [0, 100, 101, 199, 600, 1000, 200.5, Number.NaN, '200', undefined]) {
      expect(refusal({ status, headers: [], body: new Uint8Array() })).toBe('invalid_response')
    }
    for (const status of [204, 205, 304]) {
      expect(refusal({ status, headers: [], body: new Uint8Array([1]) })).toBe('invalid_response')
      expect(refusal({ status, headers: [], body: new Uint8Array() })).toBe('accepted')
    }
  })

  it('refuses a body over the cap, and one that is not bytes', () => {
    expect(refusal(ok([], { body: new Uint8Array(1024) }))).toBe('accepted')
    expect(refusal(ok([], { body: new Uint8Array(1025) }))).toBe('invalid_response')
    expect(refusal(ok([], { body: 'text' }))).toBe('invalid_response')
    expect(refusal(ok([], { body: [1, 2] }))).toBe('invalid_response')
  })

  it('refuses a malformed answer from the worker', () => {
    for (const output of [
      undefined,
      null,
      'x',
      ok({} as never),
      ok([null]),
      ok([{ name: 1, value: 'a' }]),
      ok([{ name: 'a', value: 1 }]),
    ]) {
      expect(refusal(output)).toBe('invalid_response')
    }
  })

  it('caps the header count and their bytes, whatever the count', () => {
    const many = (n: number, value = 'v') =>
      Array.from({ length: n }, (_, i) => ({ name: `x-${i}`, value }))
    expect(refusal(ok(many(100)))).toBe('accepted')
    expect(refusal(ok(many(101)))).toBe('invalid_response')
    expect(refusal(ok(many(1_000_000)))).toBe('invalid_response')
    expect(refusal(ok(many(20, 'v'.repeat(4000))))).toBe('invalid_response')
    expect(refusal(ok(many(1, 'v'.repeat(8193))))).toBe('invalid_response')
  })

  it('keeps prototype-looking names as plain headers', () => {
    const answer = checkGuestResponse(ok([{ name: '__proto__', value: 'x' }]), CAPS)
    expect(Object.getOwnPropertyDescriptor(answer.headers, '__proto__')?.value).toEqual(['x'])
    expect(Object.getPrototypeOf(answer.headers)).toBeNull()
  })
})
