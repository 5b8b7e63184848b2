/**
 * The client a failed-credential budget counts (sixth outside attack: twenty loopback or IPv6
 * addresses of one client each had a budget of their own): IPv4-mapped IPv6 is its IPv4
 * address, and an IPv6 address counts as its /64.
 */
import { BlockList, isIPv6 } from 'node:net'
import fc from 'fast-check'
import { expect, it } from 'vitest'
import { clientKey } from './refusals.js'

/** Whether `b` is in `a`'s /64, by Node's own subnet matching. */
function sameSlash64(a: string, b: string): boolean {
  const list = new BlockList()
  list.addSubnet(a, 64, 'ipv6')
  return list.check(b, 'ipv6')
}

it('keeps IPv4 addresses, and maps IPv4-mapped IPv6 to them', () => {
  expect(clientKey('203.0.113.7')).toBe('203.0.113.7')
  expect(clientKey('::ffff:203.0.113.7')).toBe('203.0.113.7')
  expect(clientKey('::FFFF:127.0.0.1')).toBe('127.0.0.1')
  expect(clientKey('unknown')).toBe('unknown')
})

it('counts an IPv6 address as its /64, whatever its spelling', () => {
  expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64')
  expect(clientKey('2001:0DB8:0:0:ffff::2')).toBe('2001:db8:0:0::/64')
  expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
  fc.assert(
    fc.property(fc.ipV6(), fc.ipV6(), (a, b) => {
      // IPv4-mapped addresses count as their IPv4 address (above), not as a /64.
      const mapped = (x: string) => /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(x)
      fc.pre(isIPv6(a) && isIPv6(b) && !mapped(a) && !mapped(b))
      const sameNetwork = sameSlash64(a, b)
      expect(clientKey(a) === clientKey(b)).toBe(sameNetwork)
      expect(clientKey(a)).toMatch(/^[0-9a-f]{1,4}(:[0-9a-f]{1,4}){3}::\/64$|^\d+\.\d+\.\d+\.\d+$/)
    }),
    { numRuns: 500 },
  )
})

it('gives one key to every address of a /64, however it is spelled', () => {
  const group = fc.integer({ min: 0, max: 0xffff })
  fc.assert(
    fc.property(
      fc.array(group, { minLength: 8, maxLength: 8 }),
      fc.array(group, { minLength: 4, maxLength: 4 }),
      (a, tail) => {
        // Not in ::/64, where IPv4-mapped addresses live (they count as IPv4).
        fc.pre(!a.slice(0, 4).every((g) => g === 0))
        const full = a.map((g) => g.toString(16)).join(':')
        const other = [...a.slice(0, 4), ...tail].map((g) => g.toString(16)).join(':')
        // Node's URL parser writes the compressed form (`::`, no leading zeros).
        const compressed = new URL(`http://[${other}]/`).hostname.slice(1, -1)
        expect(clientKey(compressed)).toBe(clientKey(full))
        expect(sameSlash64(full, compressed)).toBe(true)
      },
    ),
    { numRuns: 500 },
  )
})
