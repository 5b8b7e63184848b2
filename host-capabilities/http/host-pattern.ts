/**
 * Host patterns of capability grants: an exact lowercase hostname (`api.github.com`), a
 * wildcard (`*.example.com`: any subdomain, at any depth, never the bare domain), or an IP
 * literal (`127.0.0.1`, `[::1]`). Every pattern is canonical: it is exactly what the WHATWG URL
 * parser prints for it, so two patterns name the same host only if they are the same string.
 */
import { isIPv4, isIPv6 } from 'node:net'

/** What a host pattern matches. */
export type HostPatternKind = 'exact' | 'wildcard' | 'ip'

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/
const MAX_HOSTNAME_LENGTH = 253

/**
 * The kind of a host pattern, or undefined when it is not a valid canonical pattern.
 *
 * Refused: uppercase, a trailing dot, Unicode (write the `xn--` form), a port or path, `*`
 * anywhere but as the whole first label, a wildcard over an IP or over a single label
 * (`*.com`), a non-canonical IP (`0x7f.1`, `[0:0::1]`), IPv6 without brackets.
 *
 * @example
 * hostPatternKind('api.github.com') // 'exact'
 * hostPatternKind('*.github.com')   // 'wildcard'
 * hostPatternKind('[::1]')          // 'ip'
 * hostPatternKind('*.com')          // undefined
 */
export function hostPatternKind(pattern: string): HostPatternKind | undefined {
  if (
    typeof pattern !== 'string' ||
    pattern.length === 0 ||
    pattern.length > MAX_HOSTNAME_LENGTH + 2
  ) {
    return undefined
  }
  if (pattern.startsWith('[')) {
    const inner = pattern.endsWith(']') ? pattern.slice(1, -1) : ''
    return isIPv6(inner) && canonicalHost(pattern) === pattern ? 'ip' : undefined
  }
  if (isIPv4(pattern)) {
    return canonicalHost(pattern) === pattern ? 'ip' : undefined
  }
  if (pattern.startsWith('*.')) {
    const base = pattern.slice(2)
    // A wildcard over one label (`*.com`, `*.localhost`) is refused: too wide to be meant.
    return isHostname(base) && base.includes('.') ? 'wildcard' : undefined
  }
  return isHostname(pattern) ? 'exact' : undefined
}

/**
 * True when every host `child` matches is also matched by `parent`.
 *
 * Rules: equal patterns; an exact host under a wildcard when it is a strict subdomain of the
 * wildcard's base (`a.b.c` ⊆ `*.b.c`, `b.c` ⊄ `*.b.c`); a wildcard under a wildcard with the
 * same or a shorter base (`*.x.b.c` ⊆ `*.b.c`). A wildcard is never within an exact host, and
 * an IP literal is only within itself. Invalid patterns are within nothing.
 *
 * @example
 * isHostSubset('api.github.com', '*.github.com') // true
 * isHostSubset('*.github.com', 'api.github.com') // false
 */
export function isHostSubset(child: string, parent: string): boolean {
  const childKind = hostPatternKind(child)
  const parentKind = hostPatternKind(parent)
  if (childKind === undefined || parentKind === undefined) {
    return false
  }
  if (child === parent) {
    return true
  }
  if (parentKind !== 'wildcard' || childKind === 'ip') {
    return false
  }
  const parentSuffix = parent.slice(1) // `.b.c`
  const childHost = childKind === 'wildcard' ? child.slice(2) : child
  // `b.c` does not end with `.b.c`: the bare domain is never under its own wildcard.
  return childHost.endsWith(parentSuffix)
}

function isHostname(host: string): boolean {
  if (host.length > MAX_HOSTNAME_LENGTH) {
    return false
  }
  const labels = host.split('.')
  if (!labels.every((label) => LABEL.test(label))) {
    return false
  }
  // An all-numeric last label would make the URL parser read the name as an IPv4 address.
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) {
    return false
  }
  return canonicalHost(host) === host
}

function canonicalHost(host: string): string | undefined {
  try {
    return new URL(`https://${host}/`).hostname
  } catch {
    return undefined
  }
}
