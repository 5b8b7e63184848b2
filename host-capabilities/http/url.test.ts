import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { auditTarget, EgressUrlError, parseEgressUrl, parseOrigin } from './url.js'
import type { EgressUrlErrorReason } from './url.js'

function reasonOf(raw: unknown): EgressUrlErrorReason | 'ok' {
  try {
    parseEgressUrl(raw)
    return 'ok'
  } catch (error) {
    expect(error).toBeInstanceOf(EgressUrlError)
    expect(error).toBeInstanceOf(TypeError)
    return (error as EgressUrlError).reason
  }
}

describe('parseEgressUrl', () => {
  it('normalises case, one trailing dot, ports, dot-segments; drops the fragment', () => {
    expect(parseEgressUrl('HTTPS://Api.Example.COM.:443/a/../b/./c?q=1#frag')).toEqual({
      scheme: 'https',
      host: 'api.example.com',
      port: 443,
      path: '/b/c?q=1',
      pathname: '/b/c',
      isIp: false,
      origin: 'https://api.example.com',
    })
    expect(parseEgressUrl('http://example.com').port).toBe(80)
    expect(parseEgressUrl('http://example.com:8080/').origin).toBe('http://example.com:8080')
    expect(parseEgressUrl('https://example.com:443/').origin).toBe('https://example.com')
  })

  it('resolves /repos/../admin to /admin, also when the dots are percent-encoded', () => {
    expect(parseEgressUrl('https://x.test/repos/../admin').pathname).toBe('/admin')
    expect(parseEgressUrl('https://x.test/repos/%2e%2E/admin').pathname).toBe('/admin')
  })

  it('turns an IDN into punycode', () => {
    expect(parseEgressUrl('https://bücher.example/').host).toBe('xn--bcher-kva.example')
    expect(parseEgressUrl('https://BÜCHER.example./').host).toBe('xn--bcher-kva.example')
    // A full-width dot is a label separator after IDNA mapping.
    expect(parseEgressUrl('https://example\u3002com/').host).toBe('example.com')
  })

  it.each([
    ['ftp://example.com/', 'unsupported_scheme'],
    ['file:///etc/passwd', 'unsupported_scheme'],
    ['javascript:alert(1)', 'unsupported_scheme'],
    ['data:text/plain,hi', 'unsupported_scheme'],
    ['https://user:pass@example.com/', 'userinfo'],
    ['https://user@example.com/', 'userinfo'],
    ['https://:pass@example.com/', 'userinfo'],
    ['https://@example.com/', 'userinfo'],
    ['https:@example.com/', 'userinfo'],
    ['http://[fe80::1%25eth0]/', 'zone_id'],
    ['/relative', 'malformed'],
    ['https://', 'malformed'],
    ['http://999999999999/', 'malformed'],
    ['http://1.2.3.4.5/', 'malformed'],
    ['https://exa mple.com/', 'control_character'],
    [' https://example.com/', 'control_character'],
    ['ht\ttps://example.com/', 'control_character'],
    ['https://example.com/\r\nX: y', 'control_character'],
    ['https://x..test/', 'invalid_host'],
    ['https://.x.test/', 'invalid_host'],
    ['https://x.test../', 'invalid_host'],
    ['https://*.x.test/', 'invalid_host'],
    ['https://x!y.test/', 'invalid_host'],
    [`https://${'a'.repeat(64)}.test/`, 'invalid_host'],
    [`https://x.test/${'a'.repeat(9000)}`, 'too_long'],
    [42, 'not_a_string'],
  ] as const)('refuses %j (%s)', (raw, reason) => {
    expect(reasonOf(raw)).toBe(reason)
  })

  it.each([
    ['http://127.0.0.1/', '127.0.0.1'],
    ['http://2130706433/', '127.0.0.1'],
    ['http://0177.0.0.1/', '127.0.0.1'],
    ['http://0x7f.1/', '127.0.0.1'],
    ['http://0x7f000001/', '127.0.0.1'],
    ['http://127.1/', '127.0.0.1'],
    ['http://127.0.1/', '127.0.0.1'],
    ['http://0x7F.0.0.01/', '127.0.0.1'],
    ['http://%31%32%37.0.0.1/', '127.0.0.1'],
    ['http://127.0.0.1./', '127.0.0.1'],
    ['http://017700000001/', '127.0.0.1'],
    ['http://169.254.43518/', '169.254.169.254'],
    ['http://0/', '0.0.0.0'],
  ])('detects the IPv4 literal %s as %s', (raw, host) => {
    const url = parseEgressUrl(raw)
    expect(url).toMatchObject({ host, isIp: true, ipFamily: 4 })
  })

  it.each([
    ['http://[::1]/', '::1'],
    ['http://[0:0:0:0:0:0:0:1]/', '::1'],
    ['http://[::ffff:127.0.0.1]/', '::ffff:7f00:1'],
    ['http://[::FFFF:7F00:1]:8080/', '::ffff:7f00:1'],
    ['http://[64:ff9b::10.0.0.1]/', '64:ff9b::a00:1'],
  ])('detects the IPv6 literal %s as %s, without brackets', (raw, host) => {
    expect(parseEgressUrl(raw)).toMatchObject({ host, isIp: true, ipFamily: 6 })
  })

  it('reads a backslash as a path separator, as the connection will', () => {
    expect(parseEgressUrl('https://a.test\\@b.test/')).toMatchObject({
      host: 'a.test',
      path: '/@b.test/',
    })
  })

  it('brackets IPv6 in the origin', () => {
    expect(parseEgressUrl('http://[::1]:8080/x').origin).toBe('http://[::1]:8080')
  })

  it('property: every integer encoding of an IPv4 address parses to its dotted quad', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (n) => {
        const dotted = [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.')
        const bytes = dotted.split('.').map(Number)
        const forms = [
          String(n),
          `0x${n.toString(16)}`,
          `0${n.toString(8)}`,
          bytes.map((b) => `0x${b.toString(16)}`).join('.'),
          bytes.map((b) => `0${b.toString(8)}`).join('.'),
          `${bytes[0]}.${(bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!}`,
          `${bytes[0]}.${bytes[1]}.${(bytes[2]! << 8) | bytes[3]!}`,
        ]
        for (const form of forms) {
          expect(parseEgressUrl(`http://${form}/`)).toMatchObject({ host: dotted, isIp: true })
        }
      }),
    )
  })

  it('property: a parsed host is lowercase ASCII and never ends with a dot', () => {
    const label = fc
      .stringMatching(/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?$/)
      .filter((l) => !l.toLowerCase().startsWith('xn--'))
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 4 }), fc.boolean(), (labels, dot) => {
        const name = [...labels, 'test'].join('.') + (dot ? '.' : '')
        const url = parseEgressUrl(`https://${name}/`)
        expect(url.host).toBe([...labels, 'test'].join('.').toLowerCase())
        expect(url.isIp).toBe(false)
      }),
    )
  })
})

describe('parseOrigin and auditTarget (issue 7)', () => {
  it.each<[string, string]>([
    ['api.example.com', 'https://api.example.com:443'],
    ['API.Example.com.', 'https://api.example.com:443'],
    ['https://api.example.com', 'https://api.example.com:443'],
    ['HTTPS://api.example.com:443/', 'https://api.example.com:443'],
    ['http://api.example.com', 'http://api.example.com:80'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['http://0x7f.1:8080', 'http://127.0.0.1:8080'],
    ['[::1]', 'https://[::1]:443'],
    ['http://[0:0::1]:8080', 'http://[::1]:8080'],
    ['Bücher.example', 'https://xn--bcher-kva.example:443'],
  ])('reads %s as %s', (raw, origin) => {
    expect(parseOrigin(raw).origin).toBe(origin)
  })

  it.each([
    'api.example.com:8443',
    '::1',
    '[::1]:8080',
    '*.example.com',
    'https://*.example.com',
    'api.example.com/x',
    'https://api.example.com/x',
    'https://api.example.com?x',
    'https://u@api.example.com',
    'ftp://api.example.com',
    '',
  ])('refuses %s', (raw) => {
    expect(() => parseOrigin(raw)).toThrow(EgressUrlError)
  })

  it('writes the audit target with its port, its normalised path and no query', () => {
    expect(auditTarget(parseEgressUrl('https://API.example.com/a/./b/../c?q=1#f'))).toBe(
      'https://api.example.com:443/a/c',
    )
    expect(auditTarget(parseEgressUrl('http://[::1]:8080'))).toBe('http://[::1]:8080/')
  })
})
