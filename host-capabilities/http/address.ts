/**
 * Classify an IP address for egress: only `public` addresses are reachable without an explicit
 * `allowPrivate` grant. IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`,
 * translated `::ffff:0:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
 * `2002::/16`) are classified by the IPv4 address inside, so `::ffff:10.0.0.1` is as private
 * as `10.0.0.1`.
 *
 * Sources: IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and updates).
 */
import { isIP } from 'node:net'

/** What an address is, for egress policy. Everything but `public` needs `allowPrivate`. */
export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'cgnat'
  | 'multicast'
  | 'metadata'
  | 'unspecified'
  | 'reserved'

/** Every {@link AddressClass}, for tests and exhaustive tables. */
export const ADDRESS_CLASSES: readonly AddressClass[] = [
  'public',
  'loopback',
  'private',
  'link-local',
  'cgnat',
  'multicast',
  'metadata',
  'unspecified',
  'reserved',
]

/** One CIDR range of the tables below, as written in the registries. */
export interface AddressRange {
  cidr: string
  class: Exclude<AddressClass, 'public'>
}

/**
 * Special IPv4 ranges, most specific first: the first range containing an address decides.
 * `255.255.255.255` (limited broadcast) falls in `240.0.0.0/4`.
 */
export const IPV4_RANGES: readonly AddressRange[] = [
  // Cloud instance metadata: AWS, GCP, Azure, OpenStack…; Azure's wire server; Alibaba Cloud.
  { cidr: '169.254.169.254/32', class: 'metadata' },
  { cidr: '168.63.129.16/32', class: 'metadata' },
  { cidr: '100.100.100.200/32', class: 'metadata' },
  { cidr: '0.0.0.0/8', class: 'unspecified' },
  { cidr: '127.0.0.0/8', class: 'loopback' },
  { cidr: '10.0.0.0/8', class: 'private' },
  { cidr: '172.16.0.0/12', class: 'private' },
  { cidr: '192.168.0.0/16', class: 'private' },
  { cidr: '169.254.0.0/16', class: 'link-local' },
  { cidr: '100.64.0.0/10', class: 'cgnat' },
  { cidr: '224.0.0.0/4', class: 'multicast' },
  { cidr: '192.0.0.0/24', class: 'reserved' },
  { cidr: '192.0.2.0/24', class: 'reserved' },
  { cidr: '192.88.99.0/24', class: 'reserved' },
  { cidr: '198.18.0.0/15', class: 'reserved' },
  { cidr: '198.51.100.0/24', class: 'reserved' },
  { cidr: '203.0.113.0/24', class: 'reserved' },
  { cidr: '240.0.0.0/4', class: 'reserved' },
]

/**
 * Special IPv6 ranges, most specific first, AFTER the IPv4-embedding forms are unwrapped
 * (see {@link classifyAddress}). Anything outside `2000::/3` that no row names is `reserved`.
 */
export const IPV6_RANGES: readonly AddressRange[] = [
  { cidr: '::/128', class: 'unspecified' },
  { cidr: '::1/128', class: 'loopback' },
  // AWS's IPv6 instance metadata endpoint, inside unique-local space.
  { cidr: 'fd00:ec2::254/128', class: 'metadata' },
  { cidr: '64:ff9b:1::/48', class: 'private' },
  { cidr: 'fc00::/7', class: 'private' },
  { cidr: 'fe80::/10', class: 'link-local' },
  // Site-local: deprecated by RFC 3879, still routed inside some networks.
  { cidr: 'fec0::/10', class: 'private' },
  { cidr: 'ff00::/8', class: 'multicast' },
  { cidr: '100::/64', class: 'reserved' },
  // IETF protocol assignments, including Teredo 2001::/32 and ORCHID.
  { cidr: '2001::/23', class: 'reserved' },
  { cidr: '2001:db8::/32', class: 'reserved' },
  { cidr: '3fff::/20', class: 'reserved' },
  { cidr: '5f00::/16', class: 'reserved' },
]

type Bytes = Uint8Array

/** The address as 4 or 16 bytes, or undefined when it is not an IP address. */
export function parseIpBytes(ip: string): Bytes | undefined {
  // A zone id (`fe80::1%eth0`) does not change the class; DNS answers may carry one.
  const bare = ip.includes('%') ? ip.slice(0, ip.indexOf('%')) : ip
  const family = isIP(bare)
  if (family === 4) {
    return Uint8Array.from(bare.split('.').map(Number))
  }
  if (family !== 6) {
    return undefined
  }
  const out = new Uint8Array(16)
  let text = bare
  let tail: number[] = []
  const lastColon = text.lastIndexOf(':')
  if (text.indexOf('.', lastColon) !== -1) {
    tail = text
      .slice(lastColon + 1)
      .split('.')
      .map(Number)
    text = `${text.slice(0, lastColon + 1)}0:0`
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined]
  const words = (part: string) => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)))
  const front = words(head)
  const back = rest === undefined ? [] : words(rest)
  const all = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back]
  all.forEach((word, i) => {
    out[i * 2] = word >> 8
    out[i * 2 + 1] = word & 0xff
  })
  if (tail.length === 4) {
    out.set(tail, 12)
  }
  return out
}

interface CompiledRange {
  bytes: Bytes
  bits: number
  class: Exclude<AddressClass, 'public'>
  cidr: string
}

function compileRanges(ranges: readonly AddressRange[], size: number): readonly CompiledRange[] {
  return ranges.map(({ cidr, class: cls }) => {
    const [ip = '', bits = ''] = cidr.split('/')
    const bytes = parseIpBytes(ip)
    if (bytes?.length !== size) {
      throw new TypeError(`bad range ${cidr}`)
    }
    return { bytes, bits: Number(bits), class: cls, cidr }
  })
}

const V4 = compileRanges(IPV4_RANGES, 4)
const V6 = compileRanges(IPV6_RANGES, 16)

/** True when the first `bits` bits of `a` and `b` are equal. */
function samePrefix(a: Bytes, b: Bytes, bits: number): boolean {
  let i = 0
  for (; bits >= 8; bits -= 8, i++) {
    if (a[i] !== b[i]) {
      return false
    }
  }
  if (bits === 0) {
    return true
  }
  const mask = (0xff << (8 - bits)) & 0xff
  return ((a[i]! ^ b[i]!) & mask) === 0
}

function startsWith(bytes: Bytes, prefix: readonly number[]): boolean {
  return prefix.every((b, i) => bytes[i] === b)
}

const ZEROS_80 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
const MAPPED = [...ZEROS_80, 0xff, 0xff] // ::ffff:0:0/96
const TRANSLATED = [...ZEROS_80.slice(0, 8), 0xff, 0xff, 0, 0] // ::ffff:0:0:0/96
const COMPATIBLE = [...ZEROS_80, 0, 0] // ::/96
const NAT64 = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] // 64:ff9b::/96
const SIX_TO_FOUR = [0x20, 0x02] // 2002::/16

/** What an address is, and the registry range that says so (none for a public address). */
export interface AddressRangeMatch {
  class: AddressClass
  /** The CIDR of the deciding range, as the tables write it (`10.0.0.0/8`), or undefined. */
  range: string | undefined
}

const PUBLIC: AddressRangeMatch = Object.freeze({ class: 'public', range: undefined })

function rangeV4(bytes: Bytes): AddressRangeMatch {
  const range = V4.find((r) => samePrefix(bytes, r.bytes, r.bits))
  return range ? { class: range.class, range: range.cidr } : PUBLIC
}

function rangeV6(bytes: Bytes): AddressRangeMatch {
  if (startsWith(bytes, MAPPED) || startsWith(bytes, TRANSLATED) || startsWith(bytes, NAT64)) {
    return rangeV4(bytes.subarray(12))
  }
  if (startsWith(bytes, COMPATIBLE) && bytes.subarray(12).some((b) => b !== 0)) {
    // `::1` is loopback, not 0.0.0.1; the rest of ::/96 is deprecated (RFC 4291 §2.5.5.1).
    if (bytes[12] === 0 && bytes[13] === 0 && bytes[14] === 0 && bytes[15] === 1) {
      return { class: 'loopback', range: '::1/128' }
    }
    const inner = rangeV4(bytes.subarray(12))
    return inner.class === 'public' ? { class: 'reserved', range: '::/96' } : inner
  }
  if (startsWith(bytes, SIX_TO_FOUR)) {
    return rangeV4(bytes.subarray(2, 6))
  }
  const range = V6.find((r) => samePrefix(bytes, r.bytes, r.bits))
  if (range) {
    return { class: range.class, range: range.cidr }
  }
  // Only 2000::/3 is allocated as global unicast.
  return (bytes[0]! & 0xe0) === 0x20 ? PUBLIC : { class: 'reserved', range: 'outside 2000::/3' }
}

/**
 * The egress class of an address and the range that decided it, for messages that name the
 * rule (`10.0.0.0/8`). IPv4 inside IPv6 (mapped, NAT64, 6to4…) names the IPv4 range. Throws
 * TypeError when `ip` is not an IP address.
 *
 * @example
 * addressRange('10.1.2.3') // { class: 'private', range: '10.0.0.0/8' }
 * addressRange('::ffff:127.0.0.1') // { class: 'loopback', range: '127.0.0.0/8' }
 * addressRange('8.8.8.8') // { class: 'public', range: undefined }
 */
export function addressRange(ip: string): AddressRangeMatch {
  const bytes = typeof ip === 'string' ? parseIpBytes(ip) : undefined
  if (bytes === undefined) {
    throw new TypeError('not an IP address')
  }
  return bytes.length === 4 ? rangeV4(bytes) : rangeV6(bytes)
}

/**
 * The egress class of an IPv4 or IPv6 address, as DNS returns it or a URL spells it (IPv6
 * without brackets; a `%zone` suffix is ignored). Throws TypeError when `ip` is not an IP
 * address: callers treat that as "not public".
 *
 * @example
 * classifyAddress('8.8.8.8') // 'public'
 * classifyAddress('::ffff:10.0.0.1') // 'private'
 * classifyAddress('169.254.169.254') // 'metadata'
 */
export function classifyAddress(ip: string): AddressClass {
  return addressRange(ip).class
}

/** True only for `public` addresses; false for anything else, including non-addresses. */
export function isPublicAddress(ip: string): boolean {
  try {
    return classifyAddress(ip) === 'public'
  } catch {
    return false
  }
}
