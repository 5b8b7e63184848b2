import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compileHttpGrant, decodePathSafe, isCompiledHttpGrant, matchRequest } from './grant.js'
import type { HttpGrantEntry } from './grant.js'
import { parseEgressUrl } from './url.js'

function allows(entries: HttpGrantEntry[], url: string, method = 'GET'): boolean {
  return matchRequest(compileHttpGrant(entries), parseEgressUrl(url), method) !== undefined
}

describe('compileHttpGrant', () => {
  it('fills defaults: https, the scheme port, GET and HEAD, path /', () => {
    const [entry] = compileHttpGrant([{ host: 'API.Example.com.' }]).entries
    expect(entry).toMatchObject({
      scheme: 'https',
      host: 'api.example.com',
      wildcard: false,
      isIp: false,
      port: 443,
      pathPrefix: '/',
      allowPrivate: false,
      pattern: 'https://api.example.com/',
    })
    expect([...entry!.methods]).toEqual(['GET', 'HEAD'])
    expect(compileHttpGrant([{ scheme: 'http', host: 'x.test' }]).entries[0]!.port).toBe(80)
  })

  it('normalises IDN, wildcard and IP hosts', () => {
    const { entries } = compileHttpGrant([
      { host: 'bücher.example' },
      { host: '*.Example.COM' },
      { host: '0x7f.1', allowPrivate: true },
      { host: '[::FFFF:127.0.0.1]' },
      { host: '::1' },
    ])
    expect(entries.map((e) => [e.host, e.wildcard, e.isIp])).toEqual([
      ['xn--bcher-kva.example', false, false],
      ['example.com', true, false],
      ['127.0.0.1', false, true],
      ['::ffff:7f00:1', false, true],
      ['::1', false, true],
    ])
  })

  it.each([
    ['not an object', 'x.test'],
    ['unknown field', { host: 'x.test', hosts: [] }],
    ['bad scheme', { host: 'x.test', scheme: 'ftp' }],
    ['host not a string', { host: 1 }],
    ['empty host', { host: '' }],
    ['host with port', { host: 'x.test:8443' }],
    ['host with path', { host: 'x.test/a' }],
    ['host with scheme', { host: 'https://x.test' }],
    ['host with userinfo', { host: 'u@x.test' }],
    ['bare wildcard', { host: '*' }],
    ['wildcard over a TLD', { host: '*.com' }],
    ['inner wildcard', { host: 'a.*.x.test' }],
    ['wildcard over an IP', { host: '*.127.0.0.1' }],
    ['wildcard over IPv6', { host: '*.[::1]' }],
    ['zone id', { host: 'fe80::1%eth0' }],
    ['double dot', { host: 'x..test' }],
    ['port 0', { host: 'x.test', port: 0 }],
    ['port 65536', { host: 'x.test', port: 65_536 }],
    ['port not integer', { host: 'x.test', port: 443.5 }],
    ['no methods', { host: 'x.test', methods: [] }],
    ['method not a token', { host: 'x.test', methods: ['GET POST'] }],
    ['relative prefix', { host: 'x.test', pathPrefix: 'repos/' }],
    ['prefix with query', { host: 'x.test', pathPrefix: '/a?b' }],
    ['prefix with dot-segment', { host: 'x.test', pathPrefix: '/a/../b/' }],
    ['prefix with encoded dots', { host: 'x.test', pathPrefix: '/a/%2e%2e/b/' }],
    ['prefix with encoded slash', { host: 'x.test', pathPrefix: '/a%2fb/' }],
    ['allowPrivate not boolean', { host: 'x.test', allowPrivate: 'yes' }],
  ])('throws TypeError on a malformed entry: %s', (_label, entry) => {
    expect(() => compileHttpGrant([entry as HttpGrantEntry])).toThrow(TypeError)
  })

  it('throws TypeError when the grant is not a list', () => {
    expect(() => compileHttpGrant({} as never)).toThrow(TypeError)
  })

  it('brands its output; a look-alike object is not a compiled grant', () => {
    expect(isCompiledHttpGrant(compileHttpGrant([]))).toBe(true)
    expect(isCompiledHttpGrant({ entries: [] })).toBe(false)
    expect(() =>
      matchRequest({ entries: [] } as never, parseEgressUrl('https://x.test/'), 'GET'),
    ).toThrow(TypeError)
  })
})

describe('matchRequest', () => {
  const github: HttpGrantEntry = { host: 'api.github.com', methods: ['GET'], pathPrefix: '/repos/' }

  it('allows a request inside the entry', () => {
    expect(allows([github], 'https://api.github.com/repos/a/b?x=1')).toBe(true)
    expect(allows([github], 'https://API.GITHUB.COM./repos/a')).toBe(true)
    expect(allows([github], 'https://api.github.com/repos/a', 'get')).toBe(true)
  })

  it('refuses another method, scheme, port or path', () => {
    expect(allows([github], 'https://api.github.com/repos/a', 'POST')).toBe(false)
    expect(allows([github], 'http://api.github.com/repos/a')).toBe(false)
    expect(allows([github], 'https://api.github.com:8443/repos/a')).toBe(false)
    expect(allows([github], 'https://api.github.com/user')).toBe(false)
    expect(allows([github], 'https://api.github.com/repos')).toBe(false)
  })

  it('compares the path after dot-segments are resolved: /repos/../admin is /admin', () => {
    expect(allows([github], 'https://api.github.com/repos/../admin')).toBe(false)
    expect(allows([github], 'https://api.github.com/repos/%2e%2e/admin')).toBe(false)
    expect(allows([github], 'https://api.github.com/repos/x/..%2f..%2fadmin')).toBe(false)
    expect(allows([github], 'https://api.github.com/repos/..;/admin')).toBe(false)
    expect(allows([github], 'https://api.github.com/repos/%252e%252e/admin')).toBe(false)
    expect(allows([github], 'https://api.github.com/repos/a%5c..%5cadmin')).toBe(false)
    // Percent-encoding the prefix itself does not change the match: the server decodes it too.
    expect(allows([github], 'https://api.github.com/%72epos/a')).toBe(true)
  })

  it('a wildcard matches subdomains at any depth, never the bare domain', () => {
    const entries = [{ host: '*.example.com' }]
    expect(allows(entries, 'https://a.example.com/')).toBe(true)
    expect(allows(entries, 'https://a.b.example.com/')).toBe(true)
    expect(allows(entries, 'https://example.com/')).toBe(false)
    expect(allows(entries, 'https://badexample.com/')).toBe(false)
    expect(allows(entries, 'https://example.com.evil.test/')).toBe(false)
  })

  it('an IP literal matches only an entry naming that address, in any spelling', () => {
    const entries: HttpGrantEntry[] = [{ scheme: 'http', host: '127.0.0.1', port: 8080 }]
    expect(allows(entries, 'http://127.0.0.1:8080/')).toBe(true)
    expect(allows(entries, 'http://2130706433:8080/')).toBe(true)
    expect(allows(entries, 'http://127.0.0.2:8080/')).toBe(false)
    expect(allows(entries, 'http://[::ffff:127.0.0.1]:8080/')).toBe(false)
    expect(allows([{ host: '*.0.1.test' }], 'https://127.0.0.1/')).toBe(false)
    expect(allows([{ host: '[::1]' }], 'https://[0::1]/')).toBe(true)
  })

  it('returns the first matching entry in grant order', () => {
    const grant = compileHttpGrant([
      { host: '*.x.test', pathPrefix: '/a/' },
      { host: 'api.x.test', allowPrivate: true },
    ])
    expect(matchRequest(grant, parseEgressUrl('https://api.x.test/a/1'), 'GET')).toBe(
      grant.entries[0],
    )
    expect(matchRequest(grant, parseEgressUrl('https://api.x.test/b'), 'GET')).toBe(
      grant.entries[1],
    )
  })
})

describe('decodePathSafe', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/a%20b/', '/a b/'],
    ['/%72epos/', '/repos/'],
    ['/b%C3%BCcher', '/bücher'],
  ])('decodes %s to %s', (raw, decoded) => {
    expect(decodePathSafe(raw)).toBe(decoded)
  })

  it.each([
    'a/b',
    '/a/../b',
    '/a/./b',
    '/%2e%2e/',
    '/a%2fb',
    '/a%5cb',
    '/a%00',
    '/%zz',
    '/..;x/',
    '/%252e/',
  ])('refuses %s', (raw) => {
    expect(decodePathSafe(raw)).toBeUndefined()
  })
})

// Properties over random grants and requests.
// `xn--` labels must be valid punycode: leave them to the IDN tests.
const label = fc
  .stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/)
  .filter((l) => !l.startsWith('xn--'))
const hostname = fc.array(label, { minLength: 2, maxLength: 4 }).map((l) => l.join('.'))
const segment = fc.stringMatching(/^[a-z0-9_-]{1,8}$/)
const path = fc.array(segment, { maxLength: 4 }).map((s) => `/${s.join('/')}`)
const scheme = fc.constantFrom('http' as const, 'https' as const)
const port = fc.integer({ min: 1, max: 65_535 })

describe('matchRequest properties', () => {
  it('an exact entry never matches another host', () => {
    fc.assert(
      fc.property(hostname, hostname, path, (granted, asked, p) => {
        fc.pre(granted !== asked)
        expect(allows([{ host: granted }], `https://${asked}${p}`)).toBe(false)
        expect(allows([{ host: granted }], `https://${granted}${p}`)).toBe(true)
      }),
    )
  })

  it('a wildcard never matches the bare domain, and matches every strict subdomain', () => {
    fc.assert(
      fc.property(hostname, label, (domain, sub) => {
        const entries = [{ host: `*.${domain}` }]
        expect(allows(entries, `https://${domain}/`)).toBe(false)
        expect(allows(entries, `https://${sub}.${domain}/`)).toBe(true)
        expect(allows(entries, `https://${sub}${domain}/`)).toBe(false)
      }),
    )
  })

  it('schemes and ports must both match', () => {
    fc.assert(
      fc.property(hostname, scheme, port, scheme, port, (host, s1, p1, s2, p2) => {
        const expected = s1 === s2 && p1 === p2
        expect(allows([{ scheme: s1, host, port: p1 }], `${s2}://${host}:${p2}/`)).toBe(expected)
      }),
    )
  })

  it('a path outside the prefix never matches', () => {
    fc.assert(
      fc.property(hostname, path, path, (host, prefix, asked) => {
        const pathPrefix = `${prefix === '/' ? '' : prefix}/`
        const inside = asked.startsWith(pathPrefix)
        expect(allows([{ host, pathPrefix }], `https://${host}${asked}`)).toBe(inside)
        // A dot-segment detour that starts inside the prefix is judged where it lands.
        const up = '../'.repeat(pathPrefix.split('/').length - 2)
        const detour = `${pathPrefix}${up}${asked.slice(1)}`
        expect(allows([{ host, pathPrefix }], `https://${host}${detour}`)).toBe(inside)
      }),
    )
  })

  it('a method not in the entry never matches', () => {
    const method = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS')
    fc.assert(
      fc.property(
        hostname,
        fc.uniqueArray(method, { minLength: 1 }),
        method,
        (host, methods, m) => {
          expect(allows([{ host, methods }], `https://${host}/`, m)).toBe(methods.includes(m))
        },
      ),
    )
  })
})
