import { describe, expect, it } from 'vitest'
import { parseEgressUrl } from '../http/url.js'
import {
  canReveal,
  canUse,
  compileSecretsGrant,
  findSecretBinding,
  isCompiledSecretsGrant,
} from './grant.js'
import type { SecretsGrantEntry } from './grant.js'

const authorization = { header: 'authorization', prefix: 'Bearer ' }

describe('compileSecretsGrant', () => {
  it('compiles hosts to origins bound to Authorization: Bearer by default', () => {
    const grant = compileSecretsGrant([
      { name: 'github_token', hosts: ['API.GitHub.com.', 'http://127.0.0.1:8080'] },
      { name: 'signing_key', hosts: [], reveal: true },
    ])
    expect(grant.entries).toEqual([
      {
        name: 'github_token',
        reveal: false,
        bindings: [
          { origin: 'https://api.github.com:443', ...authorization },
          { origin: 'http://127.0.0.1:8080', ...authorization },
        ],
      },
      { name: 'signing_key', reveal: true, bindings: [] },
    ])
    expect(Object.isFrozen(grant.entries)).toBe(true)
    expect(Object.isFrozen(grant.entries[0])).toBe(true)
    expect(Object.isFrozen(grant.entries[0]!.bindings[0])).toBe(true)
    expect(isCompiledSecretsGrant(grant)).toBe(true)
  })

  it('takes the header and prefix an entry names; another header has no prefix', () => {
    const grant = compileSecretsGrant([
      { name: 'a', hosts: ['api.example'], header: 'X-Api-Key' },
      { name: 'b', hosts: ['api.example'], header: 'Authorization', prefix: 'token ' },
      { name: 'c', hosts: ['api.example'], prefix: '' },
    ])
    expect(grant.entries.map((e) => e.bindings[0])).toEqual([
      { origin: 'https://api.example:443', header: 'x-api-key', prefix: '' },
      { origin: 'https://api.example:443', header: 'authorization', prefix: 'token ' },
      { origin: 'https://api.example:443', header: 'authorization', prefix: '' },
    ])
  })

  it('writes every spelling of an origin the same way', () => {
    const origins = [
      'api.example',
      'api.example.',
      'https://API.example',
      'https://api.example:443',
      'https://api.example:443/',
    ].map((host) => compileSecretsGrant([{ name: 'k', hosts: [host] }]).entries[0]!.bindings[0]!)
    expect(new Set(origins.map((b) => b.origin))).toEqual(new Set(['https://api.example:443']))
    const idn = compileSecretsGrant([{ name: 'k', hosts: ['https://Bücher.example'] }])
    expect(idn.entries[0]!.bindings[0]!.origin).toBe('https://xn--bcher-kva.example:443')
    const v6 = compileSecretsGrant([{ name: 'k', hosts: ['[::1]', 'http://[0::1]:8080'] }])
    expect(v6.entries[0]!.bindings.map((b) => b.origin)).toEqual([
      'https://[::1]:443',
      'http://[::1]:8080',
    ])
  })

  it('merges entries for one name: bindings united, reveal if any says so', () => {
    const grant = compileSecretsGrant([
      { name: 'token', hosts: ['a.example'] },
      { name: 'token', hosts: ['b.example', 'a.example'], reveal: true },
      { name: 'token', hosts: ['a.example'], header: 'X-Key' },
    ])
    expect(grant.entries).toEqual([
      {
        name: 'token',
        reveal: true,
        bindings: [
          { origin: 'https://a.example:443', ...authorization },
          { origin: 'https://b.example:443', ...authorization },
          { origin: 'https://a.example:443', header: 'x-key', prefix: '' },
        ],
      },
    ])
  })

  it('finds the binding for a request origin and header, case-insensitively', () => {
    const grant = compileSecretsGrant([
      { name: 'token', hosts: ['api.example', 'http://api.example:8080'], header: 'X-Key' },
    ])
    const find = (url: string, header: string) =>
      findSecretBinding(grant, 'token', parseEgressUrl(url), header)
    expect(find('https://API.example/x', 'x-KEY')).toMatchObject({ header: 'x-key' })
    expect(find('http://api.example:8080/', 'X-Key')).toBeDefined()
    expect(find('http://api.example/', 'X-Key')).toBeUndefined()
    expect(find('https://api.example:8443/', 'X-Key')).toBeUndefined()
    expect(find('https://api.example/', 'Authorization')).toBeUndefined()
    expect(
      findSecretBinding(grant, 'other', parseEgressUrl('https://api.example/'), 'X-Key'),
    ).toBeUndefined()
  })

  it('answers canUse and canReveal', () => {
    const grant = compileSecretsGrant([
      { name: 'hidden', hosts: ['x.example'], reveal: false },
      { name: 'shown', hosts: [], reveal: true },
    ])
    expect(canUse(grant, 'hidden')).toBe(true)
    expect(canReveal(grant, 'hidden')).toBe(false)
    expect(canUse(grant, 'shown')).toBe(true)
    expect(canReveal(grant, 'shown')).toBe(true)
    expect(canUse(grant, 'other')).toBe(false)
    expect(canReveal(grant, 'other')).toBe(false)
    expect(canUse(undefined, 'hidden')).toBe(false)
    expect(canUse(compileSecretsGrant([]), 'hidden')).toBe(false)
  })

  it('is not fooled by a plain object of the same shape', () => {
    const grant = compileSecretsGrant([{ name: 'k', hosts: ['a.example'] }])
    expect(isCompiledSecretsGrant(JSON.parse(JSON.stringify(grant)))).toBe(false)
    expect(isCompiledSecretsGrant({ entries: [] })).toBe(false)
  })

  it.each<[string, unknown]>([
    ['not a list', { name: 'x', hosts: [] }],
    ['an entry that is not an object', ['x']],
    ['a bad name', [{ name: 'Bad-Name', hosts: [] }]],
    ['a missing name', [{ hosts: [] }]],
    ['hosts that are not a list', [{ name: 'x', hosts: 'a.example' }]],
    ['a host with a path', [{ name: 'x', hosts: ['a.example/path'] }]],
    ['an origin with a path', [{ name: 'x', hosts: ['https://a.example/path'] }]],
    ['an origin with a query', [{ name: 'x', hosts: ['https://a.example?x'] }]],
    ['an empty host', [{ name: 'x', hosts: [''] }]],
    // A bare `host:port` reads as a port or as IPv6: write the origin.
    ['a bare host:port', [{ name: 'x', hosts: ['a.example:8443'] }]],
    ['a bare IPv6 literal', [{ name: 'x', hosts: ['::1'] }]],
    ['a bracketed IPv6 with a port but no scheme', [{ name: 'x', hosts: ['[::1]:8080'] }]],
    ['a wildcard', [{ name: 'x', hosts: ['*.a.example'] }]],
    ['another scheme', [{ name: 'x', hosts: ['ftp://a.example'] }]],
    ['userinfo', [{ name: 'x', hosts: ['https://u@a.example'] }]],
    ['a header that is not a token', [{ name: 'x', hosts: [], header: 'X Key' }]],
    ['a header the host owns', [{ name: 'x', hosts: [], header: 'Host' }]],
    ['a prefix with a brace', [{ name: 'x', hosts: [], prefix: '{{' }]],
    ['a prefix with a control character', [{ name: 'x', hosts: [], prefix: 'a\r\n' }]],
    ['a prefix that is not a string', [{ name: 'x', hosts: [], prefix: 1 }]],
    ['a non-boolean reveal', [{ name: 'x', hosts: [], reveal: 'yes' }]],
    ['an unknown field', [{ name: 'x', hosts: [], reveals: true }]],
  ])('refuses %s with a TypeError', (_, entries) => {
    expect(() => compileSecretsGrant(entries as SecretsGrantEntry[])).toThrow(TypeError)
  })
})
