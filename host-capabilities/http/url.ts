/**
 * Parse and normalise the URL a guest asks to fetch. WHATWG `new URL` does the heavy lifting
 * (percent-encoding, dot-segment removal, IDNA to punycode, and the IPv4 number forms
 * `2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`, all canonicalised to a dotted quad); this file
 * refuses what an egress broker must never accept and says plainly whether the host is an IP.
 */
import { isIP } from 'node:net'

/** Longest URL a guest may send, in UTF-16 code units. */
export const MAX_URL_LENGTH = 8192

/** Why {@link parseEgressUrl} refused a URL. Stable: tests and callers switch on it. */
export type EgressUrlErrorReason =
  | 'not_a_string'
  | 'too_long'
  | 'control_character'
  | 'malformed'
  | 'unsupported_scheme'
  | 'userinfo'
  | 'zone_id'
  | 'invalid_host'

/** A URL the broker refuses to send to. Host misuse is a `TypeError`; so is a bad URL. */
export class EgressUrlError extends TypeError {
  readonly reason: EgressUrlErrorReason
  constructor(reason: EgressUrlErrorReason, message: string) {
    super(message)
    this.name = 'EgressUrlError'
    this.reason = reason
  }
}

/** A URL the broker may consider sending to. */
export interface EgressUrl {
  scheme: 'http' | 'https'
  /**
   * Lowercase ASCII hostname without its trailing dot (`xn--bcher-kva.example`), a dotted-quad
   * IPv4 (`127.0.0.1`), or a canonical IPv6 WITHOUT brackets (`::ffff:7f00:1`).
   */
  host: string
  /** The explicit port, or the scheme's default (443, 80). */
  port: number
  /** `pathname` + `search`, as sent on the request line. The fragment is dropped. */
  path: string
  /** The normalised pathname alone, without the query. */
  pathname: string
  /** True when `host` is an IP literal, in whatever encoding the guest wrote it. */
  isIp: boolean
  /** 4 or 6 when `isIp`. */
  ipFamily?: 4 | 6
  /** `scheme://host[:port]`, the port only when not the default; IPv6 in brackets. */
  origin: string
}

/** The default port of each scheme. */
export const DEFAULT_PORTS: Readonly<Record<EgressUrl['scheme'], number>> = Object.freeze({
  http: 80,
  https: 443,
})

// C0 controls, space and DEL. WHATWG strips leading/trailing ones and drops tab/CR/LF anywhere,
// which would let `ht\ttp://` or `\n` games change what we think we parsed: refuse them all.
const CONTROL = /[\u0000-\u0020\u007f]/

// `scheme:` then any slashes or backslashes (special schemes treat `\` as `/`), then the
// authority up to the first delimiter. Used only to spot an `@` that WHATWG silently drops
// when the userinfo is empty (`https://@evil.example`).
const AUTHORITY = /^[a-z][a-z0-9+.-]*:[/\\]*([^/\\?#]*)/i

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/

/**
 * Normalise a DNS hostname as it came out of WHATWG URL (lowercase ASCII, punycode): strip ONE
 * trailing dot, then refuse empty or over-long labels and names WHATWG would have parsed as an
 * IPv4 number had they been well-formed.
 */
export function normaliseHostname(hostname: string): string | undefined {
  const host = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname
  if (host.length === 0 || host.length > 253) {
    return undefined
  }
  const labels = host.split('.')
  if (!labels.every((label) => LABEL.test(label))) {
    return undefined
  }
  // WHATWG: a host whose last label is a number is an IPv4 address or a failure. URL already
  // refused the failures; this is belt and braces against a future parser change.
  const last = labels[labels.length - 1]!
  if (/^(?:0x[0-9a-f]*|[0-9]+)$/.test(last)) {
    return undefined
  }
  return host
}

/** `scheme://host[:port]`, IPv6 bracketed, port shown only when not the scheme default. */
export function formatOrigin(scheme: EgressUrl['scheme'], host: string, port: number): string {
  const shownHost = isIP(host) === 6 ? `[${host}]` : host
  return port === DEFAULT_PORTS[scheme]
    ? `${scheme}://${shownHost}`
    : `${scheme}://${shownHost}:${port}`
}

/**
 * Parse a guest's URL for egress. Throws {@link EgressUrlError} on anything but an absolute
 * `http:`/`https:` URL without userinfo whose host is a valid DNS name or IP literal.
 *
 * @example
 * parseEgressUrl('https://Bücher.Example./a/../b?q#frag')
 * // { scheme: 'https', host: 'xn--bcher-kva.example', port: 443, path: '/b?q', isIp: false, ... }
 * parseEgressUrl('http://0x7f.1/').host // '127.0.0.1', isIp: true, ipFamily: 4
 */
export function parseEgressUrl(raw: unknown): EgressUrl {
  if (typeof raw !== 'string') {
    throw new EgressUrlError('not_a_string', 'url is not a string')
  }
  if (raw.length > MAX_URL_LENGTH) {
    throw new EgressUrlError('too_long', `url is longer than ${MAX_URL_LENGTH} characters`)
  }
  if (CONTROL.test(raw)) {
    throw new EgressUrlError('control_character', 'url contains a control character or space')
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    // A zone id (`[fe80::1%25eth0]`) is one way to fail here; name it, it is a common question.
    if (/\[[^\]]*%/.test(raw)) {
      throw new EgressUrlError('zone_id', 'IPv6 zone identifiers are not allowed')
    }
    throw new EgressUrlError('malformed', 'url is not an absolute URL')
  }
  const scheme = url.protocol.slice(0, -1)
  if (scheme !== 'http' && scheme !== 'https') {
    throw new EgressUrlError('unsupported_scheme', 'only http and https URLs are allowed')
  }
  const authority = AUTHORITY.exec(raw)?.[1] ?? ''
  if (url.username !== '' || url.password !== '' || authority.includes('@')) {
    throw new EgressUrlError('userinfo', 'credentials in the URL are not allowed')
  }
  let host: string
  let ipFamily: 4 | 6 | undefined
  if (url.hostname.startsWith('[')) {
    host = url.hostname.slice(1, -1)
    if (host.includes('%')) {
      throw new EgressUrlError('zone_id', 'IPv6 zone identifiers are not allowed')
    }
    if (isIP(host) !== 6) {
      throw new EgressUrlError('invalid_host', 'url host is not a valid IPv6 address')
    }
    ipFamily = 6
  } else if (isIP(url.hostname) === 4) {
    host = url.hostname
    ipFamily = 4
  } else {
    const name = normaliseHostname(url.hostname)
    if (name === undefined) {
      throw new EgressUrlError('invalid_host', 'url host is not a valid hostname')
    }
    host = name
  }
  const port = url.port === '' ? DEFAULT_PORTS[scheme] : Number(url.port)
  const parsed: EgressUrl = {
    scheme,
    host,
    port,
    path: url.pathname + url.search,
    pathname: url.pathname,
    isIp: ipFamily !== undefined,
    origin: formatOrigin(scheme, host, port),
  }
  if (ipFamily !== undefined) {
    parsed.ipFamily = ipFamily
  }
  return parsed
}

/**
 * `scheme://host:port` with the port always written out and IPv6 bracketed: the one spelling of
 * an origin, for secret bindings and audit records.
 *
 * @example
 * explicitOrigin('https', 'api.example.com', 443) // 'https://api.example.com:443'
 */
export function explicitOrigin(scheme: EgressUrl['scheme'], host: string, port: number): string {
  return `${scheme}://${isIP(host) === 6 ? `[${host}]` : host}:${port}`
}

/**
 * What an egress audit record names (issue 7): the explicit origin and the normalised path, with
 * the query and fragment left out (they carry data, and a denial never depends on them).
 *
 * @example
 * auditTarget(parseEgressUrl('https://API.example.com/a/./b?q=1'))
 * // 'https://api.example.com:443/a/b'
 */
export function auditTarget(url: EgressUrl): string {
  return `${explicitOrigin(url.scheme, url.host, url.port)}${url.pathname}`
}

/** An origin a secret may be sent to, normalised as a request URL is. */
export interface EgressOrigin {
  scheme: EgressUrl['scheme']
  /** As {@link EgressUrl.host}: lowercase A-labels, canonical IP, IPv6 without brackets. */
  host: string
  port: number
  /** {@link explicitOrigin} of the three. */
  origin: string
}

const ORIGIN = /^(https?):\/\/([^/?#\\]*)\/?$/i
// Anything that makes a bare host more than a host: a path, a query, userinfo, a port.
const NOT_BARE = /[/?#@\\\s%:]/

/**
 * Parse an origin a secret may be sent to: `https://host[:port]` or `http://host[:port]`, or a
 * bare host meaning `https://host:443`. Hosts follow the request URL rules (case, trailing dot,
 * IDNA, IP literals in any encoding). A bare `host:port` is refused, so `::1`, `[::1]:8080` and
 * `api.example.com:8443` never have to be guessed at: write the origin. No wildcards, paths,
 * queries or userinfo. Throws {@link EgressUrlError}.
 *
 * @example
 * parseOrigin('API.example.com').origin // 'https://api.example.com:443'
 * parseOrigin('http://[::1]:8080').origin // 'http://[::1]:8080'
 * parseOrigin('api.example.com:8443') // throws: write https://api.example.com:8443
 */
export function parseOrigin(raw: unknown): EgressOrigin {
  if (typeof raw !== 'string') {
    throw new EgressUrlError('not_a_string', 'origin is not a string')
  }
  let url: EgressUrl
  const bracketed = /^\[[^\]]*\]$/.test(raw)
  if (ORIGIN.test(raw)) {
    url = parseEgressUrl(raw)
  } else if (raw.includes('://')) {
    throw new EgressUrlError('malformed', 'an origin is http(s)://host[:port], nothing after it')
  } else if (raw === '' || (!bracketed && NOT_BARE.test(raw))) {
    throw new EgressUrlError(
      'malformed',
      'a bare host has no port, path or IPv6 without brackets: write the origin, https://host:port',
    )
  } else {
    url = parseEgressUrl(`https://${raw}/`)
  }
  return {
    scheme: url.scheme,
    host: url.host,
    port: url.port,
    origin: explicitOrigin(url.scheme, url.host, url.port),
  }
}
