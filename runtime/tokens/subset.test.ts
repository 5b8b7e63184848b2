import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { allows, compileDataGrant } from '../../host-capabilities/data/grant.js'
import { HTTP_METHODS } from './claims.js'
import type { DataGrantEntry, Grants, HttpGrantEntry, HttpMethod } from './claims.js'
import { hostPatternKind, isHostSubset } from '../../host-capabilities/http/host-pattern.js'
import {
  findGrantWidening,
  isDataEntrySubset,
  isGrantSubset,
  isHttpEntrySubset,
  isSecretEntrySubset,
} from './subset.js'
import type { SecretGrantEntry as SecretBindingEntry } from './claims.js'

// Small alphabets, so that generated entries overlap often and the implications get tested.
const label = fc.constantFrom('a', 'b', 'c', 'x')
const domain = fc.array(label, { minLength: 2, maxLength: 4 }).map((labels) => labels.join('.'))
const exactHost = fc.oneof(domain, label)
const wildcardHost = domain.map((d) => `*.${d}`)
const ipHost = fc.constantFrom('127.0.0.1', '10.0.0.1', '[::1]')
const hostPattern = fc.oneof(exactHost, wildcardHost, ipHost)
const methods = fc.subarray([...HTTP_METHODS], { minLength: 1 })
const segment = fc.constantFrom('a', 'b', 'a/', 'b/', 'ab')
const pathPrefix = fc.array(segment, { maxLength: 3 }).map((parts) => `/${parts.join('')}`)

const httpEntry: fc.Arbitrary<HttpGrantEntry> = fc
  .record({
    scheme: fc.constantFrom('https' as const, 'http' as const),
    host: hostPattern,
    port: fc.constantFrom(443, 80, 8443),
    methods,
    pathPrefix,
    allowPrivate: fc.boolean(),
  })
  .map(({ allowPrivate, ...entry }) =>
    allowPrivate ? { ...entry, allowPrivate: true as const } : entry,
  )

/** A secrets entry with the binding fields of issue 7 (see `isSecretEntrySubset`). */
type SecretEntry = SecretBindingEntry

// Origins a secret binds to, several spellings of each: a bare host is `https://host:443`.
const secretOrigin = fc.oneof(
  exactHost,
  exactHost.map((h) => `https://${h}`),
  exactHost.map((h) => `https://${h}:443`),
  exactHost.map((h) => `http://${h}:8080`),
)
const secretEntry: fc.Arbitrary<SecretEntry> = fc
  .record({
    name: fc.constantFrom('gh', 'stripe'),
    hosts: fc.uniqueArray(secretOrigin, { maxLength: 3 }),
    reveal: fc.boolean(),
    header: fc.constantFrom(undefined, 'Authorization', 'authorization', 'X-Key'),
    prefix: fc.constantFrom(undefined, '', 'Bearer ', 'token '),
  })
  .map(({ header, prefix, ...entry }) => ({
    ...entry,
    ...(header === undefined ? {} : { header }),
    ...(prefix === undefined ? {} : { prefix }),
  }))

const dataEntry: fc.Arbitrary<DataGrantEntry> = fc
  .record({
    collection: fc.constantFrom('crm', 'hr'),
    prefix: fc.array(segment, { maxLength: 3 }).map((parts) => parts.join('')),
    pii: fc.boolean(),
  })
  .map((entry) => (entry.prefix === '' ? { ...entry, wholeCollection: true as const } : entry))

const grants: fc.Arbitrary<Grants> = fc.record({
  http: fc.array(httpEntry, { maxLength: 3 }),
  secrets: fc.array(secretEntry, { maxLength: 3 }),
  data: fc.array(dataEntry, { maxLength: 3 }),
  log: fc.boolean(),
})

// Narrowing generators: each yields an entry within its input, by construction.
function narrowerHost(host: string): fc.Arbitrary<string> {
  if (!host.startsWith('*.')) {
    return fc.constant(host)
  }
  const base = host.slice(2)
  return fc.oneof(
    fc.constant(host),
    label.map((l) => `${l}.${base}`),
    label.map((l) => `*.${l}.${base}`),
  )
}

function narrowerHttp(entry: HttpGrantEntry): fc.Arbitrary<HttpGrantEntry> {
  return fc
    .record({
      host: narrowerHost(entry.host),
      methods: fc.subarray(entry.methods, { minLength: 1 }),
      suffix: fc.array(segment, { maxLength: 2 }).map((parts) => parts.join('')),
      keepPrivate: fc.boolean(),
    })
    .map(({ host, methods: m, suffix, keepPrivate }) => {
      const out: HttpGrantEntry = {
        scheme: entry.scheme,
        host,
        port: entry.port,
        methods: m,
        pathPrefix: entry.pathPrefix + suffix,
      }
      if (entry.allowPrivate && keepPrivate) {
        out.allowPrivate = true
      }
      return out
    })
}

function narrowerSecret(entry: SecretEntry): fc.Arbitrary<SecretEntry> {
  return fc
    .record({ hosts: fc.subarray(entry.hosts), reveal: fc.boolean() })
    .map(({ hosts, reveal }) => ({ ...entry, hosts, reveal: entry.reveal && reveal }))
}

function narrowerData(entry: DataGrantEntry): fc.Arbitrary<DataGrantEntry> {
  return fc
    .record({
      // Whole segments only: `a` + `b` is `a/b`, never `ab` (a sibling of `a`).
      deeper: fc.array(fc.constantFrom('a', 'b', 'ab'), { maxLength: 2 }),
      slash: fc.boolean(),
      pii: fc.boolean(),
    })
    .map(({ deeper, slash, pii }) => {
      const base = entry.prefix.endsWith('/') ? entry.prefix.slice(0, -1) : entry.prefix
      const joined = [base, ...deeper].filter((s) => s !== '').join('/')
      const prefix = joined !== '' && slash ? `${joined}/` : joined
      const out: DataGrantEntry = { collection: entry.collection, prefix, pii: entry.pii && pii }
      if (prefix === '') {
        out.wholeCollection = true
      }
      return out
    })
}

describe('isHostSubset', () => {
  it.each([
    ['api.github.com', 'api.github.com', true],
    ['api.github.com', '*.github.com', true],
    ['a.api.github.com', '*.github.com', true],
    ['*.api.github.com', '*.github.com', true],
    ['*.github.com', '*.github.com', true],
    ['github.com', '*.github.com', false],
    ['*.github.com', 'api.github.com', false],
    ['*.github.com', 'github.com', false],
    ['*.github.com', '*.api.github.com', false],
    ['evilgithub.com', '*.github.com', false],
    ['api.github.com', 'github.com', false],
    ['127.0.0.1', '127.0.0.1', true],
    ['API.github.com', '*.github.com', false],
  ])('%s within %s: %s', (child, parent, expected) => {
    expect(isHostSubset(child, parent)).toBe(expected)
  })

  it('never puts a wildcard within an exact host or an IP', () => {
    fc.assert(
      fc.property(wildcardHost, fc.oneof(exactHost, ipHost), (child, parent) => {
        expect(isHostSubset(child, parent)).toBe(false)
      }),
    )
  })

  it('never puts a domain within its own wildcard, nor a wildcard within a longer one', () => {
    fc.assert(
      fc.property(domain, label, (base, l) => {
        expect(isHostSubset(base, `*.${base}`)).toBe(false)
        expect(isHostSubset(`*.${base}`, `*.${l}.${base}`)).toBe(false)
        expect(isHostSubset(`${l}.${base}`, `*.${base}`)).toBe(true)
      }),
    )
  })

  it('is reflexive and transitive on generated patterns', () => {
    fc.assert(
      fc.property(hostPattern, hostPattern, hostPattern, (a, b, c) => {
        expect(hostPatternKind(a)).toBeDefined()
        expect(isHostSubset(a, a)).toBe(true)
        if (isHostSubset(a, b) && isHostSubset(b, c)) {
          expect(isHostSubset(a, c)).toBe(true)
        }
      }),
      { numRuns: 2000 },
    )
  })
})

describe('isHttpEntrySubset', () => {
  const parent: HttpGrantEntry = {
    scheme: 'https',
    host: '*.github.com',
    port: 443,
    methods: ['GET', 'HEAD'],
    pathPrefix: '/repos/',
  }

  it('accepts a narrower entry', () => {
    const child = {
      ...parent,
      host: 'api.github.com',
      methods: ['GET' as const],
      pathPrefix: '/repos/acme/',
    }
    expect(isHttpEntrySubset(child, parent)).toBe(true)
  })

  it.each<[string, Partial<HttpGrantEntry>]>([
    ['another scheme', { scheme: 'http' }],
    ['another port', { port: 8443 }],
    ['an extra method', { methods: ['GET', 'POST'] }],
    ['a shorter path prefix', { pathPrefix: '/' }],
    ['a sibling path prefix', { pathPrefix: '/users/' }],
    ['another host', { host: 'api.gitlab.com' }],
    ['the bare domain', { host: 'github.com' }],
    ['allowPrivate', { allowPrivate: true }],
  ])('refuses %s', (_, change) => {
    expect(isHttpEntrySubset({ ...parent, ...change }, parent)).toBe(false)
  })
})

describe('isSecretEntrySubset (issue 7 bindings)', () => {
  const parent: SecretEntry = { name: 'gh', hosts: ['api.github.com'], reveal: false }

  it('compares origins, not spellings: a bare host is https on 443', () => {
    const spellings = ['api.github.com', 'https://API.github.com', 'https://api.github.com:443/']
    for (const host of spellings) {
      expect(isSecretEntrySubset({ ...parent, hosts: [host] }, parent)).toBe(true)
    }
    const child = (hosts: string[]) => isSecretEntrySubset({ ...parent, hosts }, parent)
    expect(child(['http://api.github.com'])).toBe(false)
    expect(child(['https://api.github.com:8443'])).toBe(false)
    expect(child(['uploads.github.com'])).toBe(false)
    expect(child(['api.github.com:443'])).toBe(false)
  })

  it('keeps the header and the prefix: Authorization with Bearer unless the entry says', () => {
    const child = (more: Partial<SecretEntry>) =>
      isSecretEntrySubset({ ...parent, ...more }, parent)
    expect(child({ header: 'Authorization' })).toBe(true)
    expect(child({ header: 'authorization', prefix: 'Bearer ' })).toBe(true)
    expect(child({ header: 'X-Key' })).toBe(false)
    expect(child({ prefix: '' })).toBe(false)
    expect(child({ prefix: 'token ' })).toBe(false)
    const custom: SecretEntry = { ...parent, header: 'X-Key', prefix: 'k=' }
    expect(isSecretEntrySubset({ ...custom, header: 'x-key' }, custom)).toBe(true)
    expect(isSecretEntrySubset({ ...custom, prefix: '' }, custom)).toBe(false)
  })

  it('lets an entry that binds no host name any header', () => {
    expect(isSecretEntrySubset({ ...parent, hosts: [], header: 'X-Other' }, parent)).toBe(true)
  })

  it('refuses a child host the binding rules refuse', () => {
    for (const host of ['*.github.com', 'api.github.com/x', '', 'ftp://api.github.com']) {
      const wide: SecretEntry = { ...parent, hosts: [host] }
      expect(isSecretEntrySubset(wide, wide)).toBe(false)
    }
  })
})

describe('subset properties', () => {
  it('is reflexive on entries and grants', () => {
    fc.assert(
      fc.property(httpEntry, secretEntry, dataEntry, grants, (h, s, d, g) => {
        expect(isHttpEntrySubset(h, h)).toBe(true)
        expect(isSecretEntrySubset(s, s)).toBe(true)
        expect(isDataEntrySubset(d, d)).toBe(true)
        expect(isGrantSubset(g, g)).toBe(true)
      }),
    )
  })

  it('is transitive on generated entries (random triples)', () => {
    fc.assert(
      fc.property(fc.tuple(httpEntry, httpEntry, httpEntry), ([a, b, c]) => {
        if (isHttpEntrySubset(a, b) && isHttpEntrySubset(b, c)) {
          expect(isHttpEntrySubset(a, c)).toBe(true)
        }
      }),
      { numRuns: 3000 },
    )
    fc.assert(
      fc.property(fc.tuple(secretEntry, secretEntry, secretEntry), ([a, b, c]) => {
        if (isSecretEntrySubset(a, b) && isSecretEntrySubset(b, c)) {
          expect(isSecretEntrySubset(a, c)).toBe(true)
        }
      }),
      { numRuns: 3000 },
    )
    fc.assert(
      fc.property(fc.tuple(dataEntry, dataEntry, dataEntry), ([a, b, c]) => {
        if (isDataEntrySubset(a, b) && isDataEntrySubset(b, c)) {
          expect(isDataEntrySubset(a, c)).toBe(true)
        }
      }),
      { numRuns: 3000 },
    )
    fc.assert(
      fc.property(fc.tuple(grants, grants, grants), ([a, b, c]) => {
        if (isGrantSubset(a, b) && isGrantSubset(b, c)) {
          expect(isGrantSubset(a, c)).toBe(true)
        }
      }),
      { numRuns: 1000 },
    )
  })

  it('is transitive along generated narrowing chains', () => {
    const httpChain = httpEntry.chain((c) =>
      narrowerHttp(c).chain((b) => narrowerHttp(b).map((a) => [a, b, c] as const)),
    )
    fc.assert(
      fc.property(httpChain, ([a, b, c]) => {
        expect(isHttpEntrySubset(a, b)).toBe(true)
        expect(isHttpEntrySubset(b, c)).toBe(true)
        expect(isHttpEntrySubset(a, c)).toBe(true)
      }),
    )
    const secretChain = secretEntry.chain((c) =>
      narrowerSecret(c).chain((b) => narrowerSecret(b).map((a) => [a, b, c] as const)),
    )
    fc.assert(
      fc.property(secretChain, ([a, b, c]) => {
        expect(isSecretEntrySubset(a, b) && isSecretEntrySubset(b, c)).toBe(true)
        expect(isSecretEntrySubset(a, c)).toBe(true)
      }),
    )
    const dataChain = dataEntry.chain((c) =>
      narrowerData(c).chain((b) => narrowerData(b).map((a) => [a, b, c] as const)),
    )
    fc.assert(
      fc.property(dataChain, ([a, b, c]) => {
        expect(isDataEntrySubset(a, b) && isDataEntrySubset(b, c)).toBe(true)
        expect(isDataEntrySubset(a, c)).toBe(true)
      }),
    )
  })

  it('never accepts a widened http entry', () => {
    const widened = httpEntry.chain((parent) => {
      const options: fc.Arbitrary<HttpGrantEntry>[] = [
        fc.constant({
          ...parent,
          scheme: parent.scheme === 'https' ? ('http' as const) : ('https' as const),
        }),
        fc.constant({ ...parent, port: parent.port + 1 }),
      ]
      if (!parent.allowPrivate) {
        options.push(fc.constant({ ...parent, allowPrivate: true as const }))
      }
      const missing = HTTP_METHODS.filter((m) => !parent.methods.includes(m))
      if (missing.length > 0) {
        options.push(
          fc
            .constantFrom(...missing)
            .map((m: HttpMethod) => ({ ...parent, methods: [...parent.methods, m] })),
        )
      }
      if (hostPatternKind(parent.host) !== 'wildcard') {
        // A wildcard child is never within an exact or IP parent.
        options.push(wildcardHost.map((host) => ({ ...parent, host })))
      } else {
        // The parent's wildcard base, or a wildcard one label up.
        const base = parent.host.slice(2)
        options.push(fc.constant({ ...parent, host: base }))
        const up = base.slice(base.indexOf('.') + 1)
        if (up.includes('.')) {
          options.push(fc.constant({ ...parent, host: `*.${up}` }))
        }
      }
      return fc.oneof(...options).map((child) => [child, parent] as const)
    })
    // A child whose path prefix the parent's (longer) prefix does not start.
    const longerParent = httpEntry.chain((child) =>
      segment.map((s) => [child, { ...child, pathPrefix: child.pathPrefix + s }] as const),
    )
    fc.assert(
      fc.property(fc.oneof(widened, longerParent), ([child, parent]) => {
        expect(isHttpEntrySubset(child, parent)).toBe(false)
        const g = (http: HttpGrantEntry[]): Grants => ({ http, secrets: [], data: [], log: false })
        expect(findGrantWidening(g([child]), g([parent]))).toBe('grants.http[0]')
      }),
      { numRuns: 2000 },
    )
  })

  it('never accepts a widened secret or data entry', () => {
    const widenedSecret = secretEntry.chain((parent) => {
      const bare = new Set(parent.hosts.map((h) => h.replace(/^https:\/\/|:443$/g, '')))
      const options: fc.Arbitrary<SecretEntry>[] = [
        exactHost
          .filter((h) => !bare.has(h))
          .map((h) => ({ ...parent, hosts: [...parent.hosts, h] })),
        fc.constant({ ...parent, name: parent.name === 'gh' ? 'stripe' : 'gh' }),
      ]
      if (!parent.reveal) {
        options.push(fc.constant({ ...parent, reveal: true }))
      }
      return fc.oneof(...options).map((child) => [child, parent] as const)
    })
    fc.assert(
      fc.property(widenedSecret, ([child, parent]) => {
        expect(isSecretEntrySubset(child, parent)).toBe(false)
      }),
    )
    const widenedData = dataEntry.chain((parent) => {
      const options: fc.Arbitrary<DataGrantEntry>[] = [
        fc.constant({ ...parent, collection: parent.collection === 'crm' ? 'hr' : 'crm' }),
      ]
      const canonical = parent.prefix.replace(/\/$/, '')
      if (canonical.length > 1) {
        // Shorter by one character: never the parent's prefix, nor below it.
        options.push(fc.constant({ ...parent, prefix: canonical.slice(0, -1) }))
      }
      if (parent.prefix !== '') {
        // A sibling that shares the parent's spelling.
        options.push(fc.constant({ ...parent, prefix: `${canonical}-old` }))
        options.push(
          fc.constant({
            collection: parent.collection,
            prefix: '',
            pii: parent.pii,
            wholeCollection: true as const,
          }),
        )
      }
      if (!parent.pii) {
        options.push(fc.constant({ ...parent, pii: true }))
      }
      return fc.oneof(...options).map((child) => [child, parent] as const)
    })
    fc.assert(
      fc.property(widenedData, ([child, parent]) => {
        expect(isDataEntrySubset(child, parent)).toBe(false)
      }),
    )
  })
})

describe('isGrantSubset', () => {
  const none: Grants = { http: [], secrets: [], data: [], log: false }

  it('needs one parent entry to cover each child entry on its own', () => {
    const parent: Grants = {
      ...none,
      http: [
        { scheme: 'https', host: 'a.com', port: 443, methods: ['GET'], pathPrefix: '/' },
        { scheme: 'https', host: 'a.com', port: 443, methods: ['POST'], pathPrefix: '/' },
      ],
    }
    const child: Grants = {
      ...none,
      http: [
        { scheme: 'https', host: 'a.com', port: 443, methods: ['GET', 'POST'], pathPrefix: '/' },
      ],
    }
    expect(isGrantSubset(child, parent)).toBe(false)
  })

  it('names the first wider grant', () => {
    expect(findGrantWidening({ ...none, log: true }, none)).toBe('grants.log')
    const secrets = [{ name: 'gh', hosts: [], reveal: false }]
    expect(findGrantWidening({ ...none, secrets }, none)).toBe('grants.secrets[0]')
    const data = [{ collection: 'crm', prefix: 'a', pii: false }]
    expect(findGrantWidening({ ...none, data }, { ...none, data: [] })).toBe('grants.data[0]')
    expect(findGrantWidening(none, { ...none, log: true })).toBeUndefined()
  })

  it('lets wholeCollection through only from a wholeCollection parent', () => {
    const whole: DataGrantEntry = {
      collection: 'crm',
      prefix: '',
      pii: false,
      wholeCollection: true,
    }
    const part: DataGrantEntry = { collection: 'crm', prefix: 'contacts/', pii: false }
    expect(isDataEntrySubset(part, whole)).toBe(true)
    expect(isDataEntrySubset(whole, part)).toBe(false)
  })
})

describe('data prefixes within a parent: whole segments (issue 7)', () => {
  const entry = (prefix: string): DataGrantEntry =>
    prefix === ''
      ? { collection: 'crm', prefix, pii: false, wholeCollection: true }
      : { collection: 'crm', prefix, pii: false }

  it.each<[string, string, boolean]>([
    ['tenants/acme/reports', 'tenants/acme/reports', true],
    ['tenants/acme/reports/q1', 'tenants/acme/reports', true],
    ['tenants/acme/reports/q1/', 'tenants/acme/reports/', true],
    ['tenants/acme/reports/', 'tenants/acme/reports', true],
    ['tenants/acme/reports', 'tenants/acme/reports/', true],
    ['tenants/acme/reports', '', true],
    ['tenants/acme/reports-archive', 'tenants/acme/reports', false],
    ['tenants/acme/reports-archive/q1', 'tenants/acme/reports/', false],
    ['tenants/acme/reportsx', 'tenants/acme/reports', false],
    ['tenants/acme', 'tenants/acme/reports', false],
    ['tenants/acme/', 'tenants/acme/reports', false],
    ['', 'tenants/acme/reports', false],
  ])('%j within %j: %s', (child, parent, expected) => {
    expect(isDataEntrySubset(entry(child), entry(parent))).toBe(expected)
    expect(findGrantWidening(dataOnly([entry(child)]), dataOnly([entry(parent)]))).toBe(
      expected ? undefined : 'grants.data[0]',
    )
  })

  // Segments that collide as strings: `a` is a string prefix of `a-b`, `a.b`, `ab` and `a/b`.
  const dataSegment = fc.string({
    unit: fc.constantFrom('a', 'b', '-', '.'),
    minLength: 1,
    maxLength: 3,
  })
  const dataPrefix = fc
    .tuple(
      fc.array(
        dataSegment.filter((s) => s !== '.' && s !== '..'),
        { maxLength: 3 },
      ),
      fc.boolean(),
    )
    .map(([segments, slash]) => {
      const p = segments.join('/')
      return p !== '' && slash ? `${p}/` : p
    })
  const canonical = (p: string) => (p.endsWith('/') ? p.slice(0, -1) : p)

  it('holds iff the child prefix is the parent prefix or starts with it and a `/`', () => {
    fc.assert(
      fc.property(dataPrefix, dataPrefix, (child, parent) => {
        const c = canonical(child)
        const p = canonical(parent)
        const expected = p === '' || c === p || c.startsWith(`${p}/`)
        expect(isDataEntrySubset(entry(child), entry(parent))).toBe(expected)
      }),
      { numRuns: 3000 },
    )
  })

  it('holds iff every key the child grants the parent grants too (the broker agrees)', () => {
    fc.assert(
      fc.property(dataPrefix, dataPrefix, dataPrefix, (child, parent, rest) => {
        const childGrant = compileDataGrant([entry(child)])
        const parentGrant = compileDataGrant([entry(parent)])
        const c = canonical(child)
        // A key the child grants: its own prefix, or one below it.
        const key = [c, canonical(rest)].filter((s) => s !== '').join('/')
        if (key !== '' && allows(childGrant, 'crm', key)) {
          if (isDataEntrySubset(entry(child), entry(parent))) {
            expect(allows(parentGrant, 'crm', key)).toBeDefined()
          }
        }
        // Not within: the child's own prefix is the witness the parent does not grant.
        if (!isDataEntrySubset(entry(child), entry(parent)) && c !== '') {
          expect(allows(childGrant, 'crm', c)).toBeDefined()
          expect(allows(parentGrant, 'crm', c)).toBeUndefined()
        }
      }),
      { numRuns: 3000 },
    )
  })
})

function dataOnly(data: DataGrantEntry[]): Grants {
  return { http: [], secrets: [], data, log: false }
}
