import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  addressRange,
  classifyAddress,
  IPV4_RANGES,
  isPublicAddress,
  parseIpBytes,
} from './address.js'
import type { AddressClass } from './address.js'

const TABLE: [string, AddressClass][] = [
  // IPv4
  ['8.8.8.8', 'public'],
  ['1.1.1.1', 'public'],
  ['93.184.216.34', 'public'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.0.0.1', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['172.15.255.255', 'public'],
  ['192.168.1.1', 'private'],
  ['169.254.0.1', 'link-local'],
  ['169.254.169.254', 'metadata'],
  ['100.100.100.200', 'metadata'],
  ['168.63.129.16', 'metadata'],
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['100.128.0.1', 'public'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['198.19.255.255', 'reserved'],
  ['198.51.100.7', 'reserved'],
  ['203.0.113.9', 'reserved'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  // IPv6
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['2606:4700:4700::1111', 'public'],
  ['2001:4860:4860::8888', 'public'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:a00:1', 'private'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:169.254.169.254', 'metadata'],
  ['::ffff:8.8.8.8', 'public'],
  ['::ffff:0:10.0.0.1', 'private'],
  ['::10.0.0.1', 'private'],
  ['::127.0.0.1', 'loopback'],
  ['::8.8.8.8', 'reserved'],
  ['64:ff9b::10.0.0.1', 'private'],
  ['64:ff9b::7f00:1', 'loopback'],
  ['64:ff9b::8.8.8.8', 'public'],
  ['64:ff9b:1::1', 'private'],
  ['2002:a00:1::', 'private'],
  ['2002:7f00:1::1', 'loopback'],
  ['2002:a9fe:a9fe::', 'metadata'],
  ['2002:808:808::1', 'public'],
  ['fc00::1', 'private'],
  ['fd12:3456::1', 'private'],
  ['fd00:ec2::254', 'metadata'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf::1', 'link-local'],
  ['fec0::1', 'private'],
  ['ff02::1', 'multicast'],
  ['2001:db8::1', 'reserved'],
  ['2001::1', 'reserved'],
  ['100::1', 'reserved'],
  ['3fff::1', 'reserved'],
  ['4000::1', 'reserved'],
  ['::2', 'unspecified'],
  ['::1:0:0:0', 'reserved'],
]

const v4 = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.')
const toInt = (dotted: string) =>
  dotted.split('.').reduce((n, b) => ((n << 8) | Number(b)) >>> 0, 0)

/** A random address inside `cidr`. */
function inside(cidr: string): fc.Arbitrary<string> {
  const [base = '', bitsText = ''] = cidr.split('/')
  const bits = Number(bitsText)
  const size = 2 ** (32 - bits)
  return fc.integer({ min: 0, max: size - 1 }).map((offset) => v4(toInt(base) + offset))
}

describe('classifyAddress', () => {
  it.each(TABLE)('classifies %s as %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls)
  })

  it.each(['', 'localhost', '1.2.3', '01.2.3.4', '1::2::3', '[::1]', '256.0.0.1'])(
    'throws TypeError on %j, and isPublicAddress says false',
    (ip) => {
      expect(() => classifyAddress(ip)).toThrow(TypeError)
      expect(isPublicAddress(ip)).toBe(false)
    },
  )

  it('parses every IPv6 spelling to the same bytes', () => {
    const expected = parseIpBytes('::ffff:7f00:1')
    for (const form of ['::ffff:127.0.0.1', '0:0:0:0:0:ffff:7f00:1', '::FFFF:7F00:0001']) {
      expect(parseIpBytes(form)).toEqual(expected)
    }
  })

  for (const range of IPV4_RANGES) {
    it(`property: any address in ${range.cidr} is non-public, also mapped, NAT64, 6to4`, () => {
      fc.assert(
        fc.property(inside(range.cidr), (ip) => {
          const [a = 0, b = 0, c = 0, d = 0] = ip.split('.').map(Number)
          const hex = (x: number, y: number) => ((x << 8) | y).toString(16)
          const forms = [
            ip,
            `::ffff:${ip}`,
            `::ffff:${hex(a, b)}:${hex(c, d)}`,
            `64:ff9b::${ip}`,
            `2002:${hex(a, b)}:${hex(c, d)}::1`,
          ]
          for (const form of forms) {
            expect(classifyAddress(form)).not.toBe('public')
            expect(isPublicAddress(form)).toBe(false)
          }
        }),
      )
    })
  }

  it.each(['fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8'])(
    'property: any address in %s is non-public',
    (cidr) => {
      const [base = '', bits = ''] = cidr.split('/')
      const prefix = parseIpBytes(base)!
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (random) => {
          const bytes = Uint8Array.from(random)
          for (let bit = 0; bit < Number(bits); bit++) {
            const mask = 0x80 >> (bit % 8)
            const i = Math.floor(bit / 8)
            bytes[i] = (bytes[i]! & ~mask) | (prefix[i]! & mask)
          }
          const words = []
          for (let i = 0; i < 16; i += 2) {
            words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
          }
          expect(isPublicAddress(words.join(':'))).toBe(false)
        }),
      )
    },
  )

  it('property: a public IPv4 address stays public when mapped, NAT64-embedded or 6to4', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (n) => {
        const ip = v4(n)
        fc.pre(classifyAddress(ip) === 'public')
        expect(classifyAddress(`::ffff:${ip}`)).toBe('public')
        expect(classifyAddress(`64:ff9b::${ip}`)).toBe('public')
      }),
    )
  })
})

describe('addressRange (issue 7)', () => {
  it.each<[string, string, string | undefined]>([
    ['10.1.2.3', 'private', '10.0.0.0/8'],
    ['127.0.0.1', 'loopback', '127.0.0.0/8'],
    ['169.254.169.254', 'metadata', '169.254.169.254/32'],
    ['::ffff:10.0.0.1', 'private', '10.0.0.0/8'],
    ['2002:7f00:1::', 'loopback', '127.0.0.0/8'],
    ['::1', 'loopback', '::1/128'],
    ['fe80::1', 'link-local', 'fe80::/10'],
    ['::0.0.0.2', 'unspecified', '0.0.0.0/8'],
    ['4000::1', 'reserved', 'outside 2000::/3'],
    ['8.8.8.8', 'public', undefined],
  ])('names the range of %s', (ip, cls, range) => {
    expect(addressRange(ip)).toEqual({ class: cls, range })
    expect(classifyAddress(ip)).toBe(cls)
  })
})
