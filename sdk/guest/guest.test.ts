/**
 * The guest library in Node, over fake raw imports: what it sends to the host, how a WIT `err`
 * becomes a `HostError`, and how the adapters turn an author's throws and answers into the
 * world's exports. (The examples' tests run the same code inside real components.)
 */
import { describe, expect, it } from 'vitest'
import { createData, createHttp, createLog, createSecrets } from './capabilities.js'
import { HostError, html, json } from './core.js'
import { wrapAction, wrapHandler } from './entry.js'

/** What the bindings throw for a WIT `err`. */
const witErr = (tag: string, val: string) =>
  Object.assign(new Error(val), { payload: { tag, val } })

describe('http', () => {
  it('sends a fetch-like request as the WIT record', () => {
    const sent: unknown[] = []
    const http = createHttp({
      fetch(req) {
        sent.push(req)
        return {
          status: 201,
          headers: [{ name: 'Content-Type', value: 'application/json' }],
          body: new TextEncoder().encode('{"ok":true}'),
        }
      },
    })
    const res = http.fetch('https://api.example/x', {
      method: 'post',
      headers: { authorization: 'Bearer {{secret:k}}' },
      body: 'hi',
    })
    expect(sent).toEqual([
      {
        method: 'POST',
        url: 'https://api.example/x',
        headers: [{ name: 'authorization', value: 'Bearer {{secret:k}}' }],
        body: new TextEncoder().encode('hi'),
        timeoutMs: undefined,
      },
    ])
    expect(res.ok).toBe(true)
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.json()).toEqual({ ok: true })
  })

  it.each(['denied', 'limit-exceeded', 'invalid', 'upstream'])(
    'turns the WIT err %s into a HostError',
    (tag) => {
      const http = createHttp({
        fetch() {
          throw witErr(tag, 'why')
        },
      })
      try {
        http.fetch('https://x.example/')
        expect.unreachable()
      } catch (error) {
        expect(error).toBeInstanceOf(HostError)
        expect(error).toMatchObject({ kind: tag, reason: 'why' })
      }
    },
  )

  it('rethrows what is not a WIT err as it is', () => {
    const boom = new RangeError('engine')
    const http = createHttp({
      fetch() {
        throw boom
      },
    })
    expect(() => http.fetch('https://x.example/')).toThrow(boom)
    const odd = createHttp({
      fetch() {
        throw witErr('made-up', 'x')
      },
    })
    expect(() => odd.fetch('https://x.example/')).not.toThrow(HostError)
  })
})

describe('secrets, data, log', () => {
  it('signs, hexes and writes placeholders', () => {
    const secrets = createSecrets({
      hmacSha256: (_name, data) => new Uint8Array([data.length, 255]),
      reveal: () => {
        throw witErr('denied', 'reveal not granted')
      },
    })
    expect(secrets.hmacSha256Hex('k', 'abc')).toBe('03ff')
    expect(secrets.placeholder('github_token')).toBe('{{secret:github_token}}')
    expect(() => secrets.reveal('k')).toThrow(HostError)
  })

  it('parses documents and pages', () => {
    const data = createData({
      get: (_c, key) => (key === 'a' ? '{"n":1}' : undefined),
      listKeys: () => ({ entries: [{ key: 'p/a', value: '{"n":2}' }], nextCursor: 'c1' }),
    })
    expect(data.get('c', 'a')).toEqual({ n: 1 })
    expect(data.get('c', 'b')).toBeUndefined()
    expect(data.list('c', 'p')).toEqual({
      entries: [{ key: 'p/a', value: { n: 2 } }],
      nextCursor: 'c1',
    })
  })

  it('logs at each level', () => {
    const lines: string[] = []
    const log = createLog({ write: (level, message) => void lines.push(`${level}:${message}`) })
    log.debug('a')
    log.error('b')
    expect(lines).toEqual(['debug:a', 'error:b'])
  })
})

describe('the action adapter', () => {
  const errOf = (fn: () => unknown) => {
    try {
      fn()
    } catch (error) {
      return (error as { payload?: unknown }).payload
    }
    return 'no error'
  }

  it('parses the input and serialises the output (undefined is null)', () => {
    expect(wrapAction((input) => ({ got: input }))('{"a":1}')).toBe('{"got":{"a":1}}')
    expect(wrapAction(() => undefined)('{}')).toBe('null')
  })

  it("makes a throw the guest's err, with its message", () => {
    expect(
      errOf(() =>
        wrapAction(() => {
          throw new Error('bad dataset')
        })('{}'),
      ),
    ).toBe('bad dataset')
    expect(errOf(() => wrapAction(() => 1)('not json'))).toBe('the input is not JSON')
    expect(errOf(() => wrapAction(() => Promise.resolve(1))('{}'))).toMatch(/not a promise/)
  })
})

describe('the micro-app adapter', () => {
  const request = (query: string) => ({
    method: 'GET',
    path: '/p',
    query,
    headers: [{ name: 'Accept', value: 'text/html' }],
    body: new Uint8Array(),
  })

  it('hands the author a friendly request and the world a WIT response', () => {
    const handler = wrapHandler((req) =>
      json({ name: req.params.name, bad: req.params.bad, accept: req.headers.get('accept') }),
    )
    const res = handler.handle(request('name=Ada+L%C3%B6&name=second&bad=%E0%A4%A'))
    expect(res.status).toBe(200)
    expect(res.headers).toEqual([{ name: 'content-type', value: 'application/json' }])
    expect(JSON.parse(new TextDecoder().decode(res.body))).toEqual({
      name: 'Ada Lö',
      bad: '%E0%A4%A',
      accept: 'text/html',
    })
  })

  it('answers 500 with a generic body when the author throws or answers nothing', () => {
    const thrown = wrapHandler(() => {
      throw new Error('secret internals')
    }).handle(request(''))
    expect(thrown.status).toBe(500)
    expect(new TextDecoder().decode(thrown.body)).toBe('internal error')
    const empty = wrapHandler(() => undefined as never).handle(request(''))
    expect(empty.status).toBe(500)
  })

  it('keeps a content type the author set', () => {
    const res = wrapHandler(() =>
      html('<p>x</p>', { status: 201, headers: { 'content-type': 'text/x' } }),
    ).handle(request(''))
    expect(res.status).toBe(201)
    expect(res.headers).toEqual([{ name: 'content-type', value: 'text/x' }])
  })
})
