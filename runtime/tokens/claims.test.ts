import { describe, expect, it } from 'vitest'
import {
  capabilityClaimsSchema,
  dataGrantEntrySchema,
  grantsSchema,
  httpGrantEntrySchema,
  secretGrantEntrySchema,
  tokenLimitsSchema,
} from './claims.js'
import { hostPatternKind } from '../../host-capabilities/http/host-pattern.js'

const DIGEST = `sha256:${'ab'.repeat(32)}`

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: 'warden',
    aud: 'warden',
    sub: 'app:hello',
    jti: '0b5e3c1e-0000-4000-8000-000000000001',
    iat: 100,
    nbf: 100,
    exp: 200,
    app: { id: 'hello', digest: DIGEST },
    grants: {},
    limits: {},
    chain: [],
    ...overrides,
  }
}

describe('host patterns', () => {
  it.each([
    ['api.github.com', 'exact'],
    ['localhost', 'exact'],
    ['xn--bcher-kva.de', 'exact'],
    ['*.github.com', 'wildcard'],
    ['*.a.b.c', 'wildcard'],
    ['127.0.0.1', 'ip'],
    ['[::1]', 'ip'],
    ['[2001:db8::1]', 'ip'],
  ])('accepts %s as %s', (host, kind) => {
    expect(hostPatternKind(host)).toBe(kind)
  })

  it.each([
    'API.github.com',
    'api.github.com.',
    'bücher.de',
    'api.github.com:443',
    'api.github.com/x',
    'user@api.github.com',
    '*.com',
    '*.localhost',
    '*',
    'a.*.com',
    '**.a.com',
    '*.127.0.0.1',
    '0x7f.0.0.1',
    '127.1',
    '1.2.3',
    '::1',
    '[0:0:0:0:0:0:0:1]',
    '-a.com',
    'a-.com',
    'a..com',
    'a_b.com',
    '',
    `${'a'.repeat(64)}.com`,
  ])('refuses %j', (host) => {
    expect(hostPatternKind(host)).toBeUndefined()
  })
})

describe('httpGrantEntrySchema', () => {
  it('fills the defaults: https, the scheme port, GET and HEAD, /', () => {
    expect(httpGrantEntrySchema.parse({ host: 'api.github.com' })).toEqual({
      scheme: 'https',
      host: 'api.github.com',
      port: 443,
      methods: ['GET', 'HEAD'],
      pathPrefix: '/',
    })
  })

  it('uses port 80 for http, only when http is written', () => {
    expect(httpGrantEntrySchema.parse({ scheme: 'http', host: '127.0.0.1' }).port).toBe(80)
  })

  it('keeps allowPrivate: true and drops false', () => {
    const yes = httpGrantEntrySchema.parse({ host: '127.0.0.1', allowPrivate: true })
    const no = httpGrantEntrySchema.parse({ host: '127.0.0.1', allowPrivate: false })
    expect(yes.allowPrivate).toBe(true)
    expect('allowPrivate' in no).toBe(false)
  })

  it('does not share the default methods array between entries', () => {
    const a = httpGrantEntrySchema.parse({ host: 'a.com' })
    const b = httpGrantEntrySchema.parse({ host: 'b.com' })
    a.methods.push('POST')
    expect(b.methods).toEqual(['GET', 'HEAD'])
  })

  it.each([
    { host: 'a.com', extra: 1 },
    { host: 'a.com', scheme: 'ftp' },
    { host: 'a.com', port: 0 },
    { host: 'a.com', port: 65536 },
    { host: 'a.com', port: 1.5 },
    { host: 'a.com', methods: [] },
    { host: 'a.com', methods: ['GET', 'GET'] },
    { host: 'a.com', methods: ['get'] },
    { host: 'a.com', methods: ['TRACE'] },
    { host: 'a.com', pathPrefix: 'repos/' },
    { host: 'a.com', pathPrefix: '' },
    { host: 'a.com', pathPrefix: '/a/../b' },
    { host: 'a.com', pathPrefix: '/a?b' },
    { host: 'a.com', pathPrefix: '/a b' },
    { host: 'https://a.com' },
    { host: 'a.com', pathPrefix: '/a/..;x/' },
    { host: 'a.com', pathPrefix: '/a/%2e%2e/' },
    { host: 'a.com', pathPrefix: '/a%2Fb' },
    { host: 'a.com', pathPrefix: '/a%5Cb' },
    { host: 'a.com', pathPrefix: '/a%25' },
    { host: 'a.com', pathPrefix: '/%61' },
    { host: 'a.com', pathPrefix: '/%c3%a9' },
    { host: 'a.com', pathPrefix: '/%C3' },
    { host: 'a.com', pathPrefix: '/a%2' },
    { host: 'a.com', pathPrefix: '/a%00' },
    {},
  ])('refuses %j', (entry) => {
    expect(httpGrantEntrySchema.safeParse(entry).success).toBe(false)
  })

  it.each(['/', '/repos/', '/repos', '/a;b/', '/caf%C3%A9/', '/a%20b', '/~user/'])(
    'accepts the path prefix %j',
    (pathPrefix) => {
      expect(httpGrantEntrySchema.safeParse({ host: 'a.com', pathPrefix }).success).toBe(true)
    },
  )
})

describe('secretGrantEntrySchema', () => {
  it('defaults to no hosts and no reveal', () => {
    expect(secretGrantEntrySchema.parse({ name: 'gh' })).toEqual({
      name: 'gh',
      hosts: [],
      reveal: false,
    })
  })

  it.each([
    { name: 'gh', extra: true },
    { name: 'gh', hosts: ['API.github.com'] },
    { name: 'gh', hosts: ['a.com', 'a.com'] },
    { name: '' },
    { name: 'a/b' },
    { name: 'GitHub' },
    { name: 'gh', hosts: ['*.github.com'] },
    { name: 'gh', hosts: ['api.github.com:0'] },
    { name: 'gh', hosts: ['api.github.com:65536'] },
    { name: 'gh', hosts: ['api.github.com/x'] },
  ])('refuses %j', (entry) => {
    expect(secretGrantEntrySchema.safeParse(entry).success).toBe(false)
  })
})

describe('secret hosts', () => {
  it('accepts origins and bare exact hosts and IPs', () => {
    const hosts = [
      'api.github.com',
      'https://api.github.com:8443',
      'http://127.0.0.1:8080',
      'http://[::1]:9000',
      '[::1]',
    ]
    expect(secretGrantEntrySchema.safeParse({ name: 'gh', hosts }).success).toBe(true)
  })

  it('refuses a bare host:port, which reads two ways for IPv6 (issue 7)', () => {
    for (const host of [
      'api.github.com:8443',
      '127.0.0.1:8080',
      '::1',
      '*.github.com',
      'https://a.b/x',
    ]) {
      expect({
        host,
        ok: secretGrantEntrySchema.safeParse({ name: 'gh', hosts: [host] }).success,
      }).toEqual({ host, ok: false })
    }
  })

  it('binds one header, never one the host sets', () => {
    const entry = { name: 'gh', hosts: ['api.github.com'] }
    expect(
      secretGrantEntrySchema.safeParse({ ...entry, header: 'X-Api-Key', prefix: '' }).success,
    ).toBe(true)
    expect(secretGrantEntrySchema.safeParse({ ...entry, header: 'Host' }).success).toBe(false)
    expect(secretGrantEntrySchema.safeParse({ ...entry, prefix: '{{' }).success).toBe(false)
  })
})

describe('data prefixes at mint', () => {
  it('refuses a * anywhere: prefixes are whole segments, not patterns (issue 7)', () => {
    for (const prefix of ['*', 'tenants/*', 'tenants/*/reports', 'a*b']) {
      expect({
        prefix,
        ok: dataGrantEntrySchema.safeParse({ collection: 'crm', prefix }).success,
      }).toEqual({ prefix, ok: false })
    }
  })
})

describe('dataGrantEntrySchema', () => {
  it('requires a prefix', () => {
    expect(dataGrantEntrySchema.safeParse({ collection: 'crm' }).success).toBe(false)
  })

  it('refuses the empty prefix unless wholeCollection: true is spelled out', () => {
    expect(dataGrantEntrySchema.safeParse({ collection: 'crm', prefix: '' }).success).toBe(false)
    expect(
      dataGrantEntrySchema.safeParse({ collection: 'crm', prefix: '', wholeCollection: false })
        .success,
    ).toBe(false)
    expect(
      dataGrantEntrySchema.parse({ collection: 'crm', prefix: '', wholeCollection: true }),
    ).toEqual({
      collection: 'crm',
      prefix: '',
      pii: false,
      wholeCollection: true,
    })
  })

  it('refuses wholeCollection: true with a non-empty prefix', () => {
    const entry = { collection: 'crm', prefix: 'a/', wholeCollection: true }
    expect(dataGrantEntrySchema.safeParse(entry).success).toBe(false)
  })

  it.each(['/contacts', 'a//b', 'a/../b', './a', 'a\u0000', 'e\u0301', 'x'.repeat(513)])(
    'refuses the prefix %j',
    (prefix) => {
      expect(dataGrantEntrySchema.safeParse({ collection: 'crm', prefix }).success).toBe(false)
    },
  )

  it.each(['contacts/', 'contacts', 'contacts/eu/a', 'é'])('accepts the prefix %j', (prefix) => {
    expect(dataGrantEntrySchema.safeParse({ collection: 'crm', prefix }).success).toBe(true)
  })

  it('refuses unknown fields and control characters', () => {
    expect(dataGrantEntrySchema.safeParse({ collection: 'crm', prefix: 'a', x: 1 }).success).toBe(
      false,
    )
    expect(dataGrantEntrySchema.safeParse({ collection: 'crm', prefix: 'a\n' }).success).toBe(false)
  })
})

describe('grantsSchema', () => {
  it('grants nothing by default', () => {
    expect(grantsSchema.parse({})).toEqual({ http: [], secrets: [], data: [], log: false })
  })

  it('refuses unknown kinds of grant', () => {
    expect(grantsSchema.safeParse({ shell: true }).success).toBe(false)
  })

  it('is idempotent: parsing its own output gives the same value', () => {
    const once = grantsSchema.parse({
      http: [{ host: '*.github.com', allowPrivate: false }],
      secrets: [{ name: 'gh' }],
      data: [{ collection: 'crm', prefix: '', wholeCollection: true }],
    })
    expect(grantsSchema.parse(once)).toEqual(once)
  })
})

describe('tokenLimitsSchema', () => {
  it.each([0, -1, 1.5, 2 ** 53, Number.NaN, '5'])('refuses %j', (value) => {
    expect(tokenLimitsSchema.safeParse({ fuel: value }).success).toBe(false)
  })

  it('refuses unknown limits', () => {
    expect(tokenLimitsSchema.safeParse({ cpus: 1 }).success).toBe(false)
  })
})

describe('capabilityClaimsSchema', () => {
  it('accepts a root token', () => {
    expect(capabilityClaimsSchema.safeParse(claims()).success).toBe(true)
  })

  it('refuses an unknown claim at the top level and inside a grant entry', () => {
    expect(capabilityClaimsSchema.safeParse(claims({ admin: true })).success).toBe(false)
    const grants = { http: [{ host: 'a.com', followRedirects: true }] }
    expect(capabilityClaimsSchema.safeParse(claims({ grants })).success).toBe(false)
  })

  it('refuses a sub that is not app:<app.id>', () => {
    expect(capabilityClaimsSchema.safeParse(claims({ sub: 'app:other' })).success).toBe(false)
  })

  it('refuses a bad digest', () => {
    const app = { id: 'hello', digest: `sha256:${'AB'.repeat(32)}` }
    expect(capabilityClaimsSchema.safeParse(claims({ app })).success).toBe(false)
  })

  it('refuses exp before nbf', () => {
    expect(capabilityClaimsSchema.safeParse(claims({ nbf: 300 })).success).toBe(false)
  })

  it('needs the chain to end with the parent', () => {
    const parent = '0b5e3c1e-0000-4000-8000-000000000002'
    const root = '0b5e3c1e-0000-4000-8000-000000000003'
    const ok = capabilityClaimsSchema.safeParse(claims({ parent, chain: [root, parent] }))
    expect(ok.success).toBe(true)
    for (const bad of [
      { parent },
      { parent, chain: [parent, root] },
      { chain: [root] },
      { parent, chain: [parent, parent] },
      { parent: claims().jti, chain: [claims().jti] },
    ]) {
      expect(capabilityClaimsSchema.safeParse(claims(bad)).success).toBe(false)
    }
  })
})
