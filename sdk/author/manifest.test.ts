import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { WardenError } from '../../runtime/index.js'
import { grantCommand, routeCommand } from './deploy.js'
import { manifestGrants, parseManifest, remapGrants } from './manifest.js'

const base = { name: 'hello', kind: 'action', owner: 'me', purpose: 'greets' }

const codeOf = (fn: () => unknown) => {
  try {
    fn()
  } catch (error) {
    return error instanceof WardenError ? error.code : `not a WardenError: ${String(error)}`
  }
  return 'no error'
}

describe('the manifest', () => {
  it('fills in the defaults', () => {
    const m = parseManifest(base)
    expect(m).toMatchObject({
      entry: 'src/index.ts',
      capabilities: [],
      grants: { http: [], secrets: [], data: [] },
      dev: { secretsFile: 'warden.secrets.json', fixtures: 'fixtures', port: 8787 },
    })
    expect(manifestGrants(m)).toEqual({})
  })

  it.each([
    ['an unknown field', { ...base, extra: 1 }],
    ['a name that is not a DNS label', { ...base, name: 'Hello_World' }],
    ['an app id as a name', { ...base, name: 'app-0123456789abcdef' }],
    ['an unknown kind', { ...base, kind: 'service' }],
    ['an unknown capability', { ...base, capabilities: ['filesystem'] }],
    ['a capability twice', { ...base, capabilities: ['log', 'log'] }],
    ['an owner with a control character', { ...base, owner: 'me\u001b[2J' }],
    ['a bidi override in the purpose', { ...base, purpose: 'greets\u202e' }],
    ['an entry outside the app', { ...base, entry: '../elsewhere.ts' }],
    ['an absolute entry', { ...base, entry: '/etc/passwd' }],
    ['a secrets file outside the app', { ...base, dev: { secretsFile: 'a/../../s.json' } }],
    ['an http grant without the capability', { ...base, grants: { http: ['https://a.example/'] } }],
    ['a secret grant without the capability', { ...base, grants: { secrets: ['k'] } }],
    ['a data grant without the capability', { ...base, grants: { data: ['crm:contacts'] } }],
  ])('refuses %s', (_what, value) => {
    expect(codeOf(() => parseManifest(value))).toBe('invalid_request')
  })

  it.each([
    ['a URL that is not one', 'not a url'],
    ['credentials in the URL', 'https://user:pw@api.example/'],
    ['a query', 'https://api.example/x?y=1'],
    ['a file URL', 'file:///etc/passwd'],
  ])('refuses an http grant with %s', (_what, url) => {
    const m = { ...base, capabilities: ['http'], grants: { http: [url] } }
    expect(codeOf(() => parseManifest(m))).toBe('invalid_request')
  })

  it('refuses grants the token schema refuses (a wildcard data prefix)', () => {
    const m = { ...base, capabilities: ['data'], grants: { data: ['crm:contacts/*'] } }
    expect(codeOf(() => parseManifest(m))).toBe('invalid_request')
  })

  it('turns readable grants into token grants', () => {
    const m = parseManifest({
      ...base,
      capabilities: ['http', 'secrets', 'data', 'log'],
      grants: {
        http: [{ url: 'https://api.github.com/repos/', methods: ['get'] }, 'http://10.0.0.5:8080/'],
        secrets: ['github_token@api.github.com', 'webhook_key'],
        data: ['crm:contacts', { collection: 'crm', prefix: 'vip', pii: true }],
      },
    })
    expect(manifestGrants(m)).toEqual({
      log: true,
      http: [
        { scheme: 'https', host: 'api.github.com', pathPrefix: '/repos/', methods: ['GET'] },
        { scheme: 'http', host: '10.0.0.5', port: 8080, pathPrefix: '/' },
      ],
      secrets: [{ name: 'github_token', hosts: ['api.github.com'] }, { name: 'webhook_key' }],
      data: [
        { collection: 'crm', prefix: 'contacts' },
        { collection: 'crm', prefix: 'vip', pii: true },
      ],
    })
  })

  it('never throws anything but invalid_request on hostile JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const code = codeOf(() => parseManifest(value))
        return code === 'invalid_request' || code === 'no error'
      }),
      { numRuns: 300 },
    )
  })
})

describe('remapGrants', () => {
  it('moves http entries and secret hosts of a mapped origin, and only those', () => {
    const grants = {
      http: [
        { scheme: 'https' as const, host: 'api.github.com', pathPrefix: '/repos/' },
        { host: 'other.example' },
      ],
      secrets: [{ name: 't', hosts: ['api.github.com', 'other.example'] }],
    }
    expect(remapGrants(grants, { 'https://api.github.com': 'http://127.0.0.1:4123' })).toEqual({
      http: [
        {
          scheme: 'http',
          host: '127.0.0.1',
          port: 4123,
          pathPrefix: '/repos/',
          allowPrivate: true,
        },
        { host: 'other.example' },
      ],
      secrets: [{ name: 't', hosts: ['http://127.0.0.1:4123', 'other.example'] }],
    })
  })
})

describe('the token command deploy prints', () => {
  it('uses the readable flags when they can say it', () => {
    expect(
      grantCommand('issue-triage', {
        log: true,
        http: [
          { scheme: 'https', host: 'api.github.com', pathPrefix: '/repos/', methods: ['GET'] },
        ],
        secrets: [{ name: 'github_token', hosts: ['api.github.com'] }],
        data: [{ collection: 'crm', prefix: 'contacts' }],
      }),
    ).toBe(
      'warden token grant issue-triage --log --http https://api.github.com/repos/ --method GET' +
        ' --secret github_token@api.github.com --data crm:contacts --ttl 1h',
    )
  })

  it('says an empty grant out loud, which the token commands require', () => {
    expect(grantCommand('report-builder', {})).toBe(
      "warden token grant report-builder --grants '{}' --ttl 1h",
    )
  })

  it('is `apps route` for a micro-app, a day long', () => {
    expect(
      routeCommand('crm-lookup', { log: true, data: [{ collection: 'crm', prefix: 'contacts/' }] }),
    ).toBe('warden apps route crm-lookup --log --data crm:contacts/ --ttl 1d')
  })

  it('falls back to --grants JSON, quoted for the shell', () => {
    expect(grantCommand('w', { secrets: [{ name: "it's" }] })).toBe(
      `warden token grant w --grants '{"secrets":[{"name":"it'\\''s"}]}' --ttl 1h`,
    )
  })
})
