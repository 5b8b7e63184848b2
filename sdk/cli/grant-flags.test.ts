import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { grantsSchema, WardenError } from '../../runtime/index.js'
import {
  grantsFromFlags,
  hasGrantFlags,
  parseDataFlag,
  parseFuel,
  parseHttpFlag,
  parseSecretFlag,
  parseTtl,
} from './grant-flags.js'

function codeOf(task: () => unknown): string | undefined {
  try {
    task()
  } catch (error) {
    return error instanceof WardenError ? error.code : 'not a WardenError'
  }
  return undefined
}

describe('readable grant flags', () => {
  it('turns --http, --method, --secret, --data and --log into grants', () => {
    const grants = grantsFromFlags({
      http: ['https://api.github.com/repos/', 'http://10.0.0.5:8080'],
      method: ['get', 'POST'],
      secret: ['github_token@api.github.com', 'key@http://10.0.0.5:8080'],
      data: ['crm:contacts/'],
      log: true,
    })
    expect(grants).toEqual({
      http: [
        {
          scheme: 'https',
          host: 'api.github.com',
          pathPrefix: '/repos/',
          methods: ['GET', 'POST'],
        },
        { scheme: 'http', host: '10.0.0.5', port: 8080, pathPrefix: '/', methods: ['GET', 'POST'] },
      ],
      secrets: [
        { name: 'github_token', hosts: ['api.github.com'] },
        { name: 'key', hosts: ['http://10.0.0.5:8080'] },
      ],
      data: [{ collection: 'crm', prefix: 'contacts/' }],
      log: true,
    })
    expect(grantsSchema.safeParse(grants).success).toBe(true)
  })

  it('adds the flags to the --grants JSON', () => {
    const base = { log: false, data: [{ collection: 'a', prefix: 'x' }] }
    expect(grantsFromFlags({ data: ['b:y'] }, base)).toEqual({
      log: false,
      data: [
        { collection: 'a', prefix: 'x' },
        { collection: 'b', prefix: 'y' },
      ],
    })
    expect(hasGrantFlags({})).toBe(false)
    expect(hasGrantFlags({ http: [] })).toBe(false)
    expect(hasGrantFlags({ log: true })).toBe(true)
  })

  it('refuses bad flags with invalid_request', () => {
    const refused = [
      () => parseHttpFlag('not a url'),
      () => parseHttpFlag('ftp://example.com/'),
      () => parseHttpFlag('https://user:pw@example.com/'),
      () => parseHttpFlag('https://example.com/a?b=1'),
      () => parseHttpFlag('https://example.com/#x'),
      () => parseSecretFlag('github_token'),
      () => parseSecretFlag('@api.github.com'),
      () => parseSecretFlag('github_token@'),
      () => parseDataFlag('crm'),
      () => parseDataFlag(':contacts'),
      () => parseDataFlag('crm:'),
      () => grantsFromFlags({ method: ['GET'] }),
      () => grantsFromFlags({ http: ['https://example.com/'], method: ['FETCH'] }),
      () => grantsFromFlags({ secret: ['Bad-Name@example.com'] }),
      () => grantsFromFlags({ data: ['crm:a//b'] }),
      () => grantsFromFlags({ log: true }, []),
      () => grantsFromFlags({ data: ['crm:a'] }, { data: 'x' }),
      () => parseTtl('1y'),
      () => parseTtl('0'),
      () => parseTtl('-5'),
      () => parseTtl('1.5h'),
      () => parseTtl(''),
      () => parseTtl('9'.repeat(20)),
      () => parseFuel('0'),
      () => parseFuel('1.5'),
      () => parseFuel('abc'),
      () => parseFuel('1e400'),
    ]
    for (const task of refused) {
      expect({ task: task.toString(), code: codeOf(task) }).toEqual({
        task: task.toString(),
        code: 'invalid_request',
      })
    }
  })

  it('reads ttls with units and fuel with exponents', () => {
    expect([
      parseTtl('3600'),
      parseTtl('90s'),
      parseTtl('30m'),
      parseTtl('1h'),
      parseTtl('7d'),
    ]).toEqual([3600, 90, 1800, 3600, 604_800])
    expect([parseFuel('5e8'), parseFuel('1000000'), parseFuel('2.5e3')]).toEqual([
      500_000_000, 1_000_000, 2500,
    ])
  })

  it('round-trips any https URL into a valid grant of the same origin and path', () => {
    const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/)
    const segment = fc.stringMatching(/^[A-Za-z0-9_~-]{1,8}$/)
    fc.assert(
      fc.property(
        fc.array(label, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('com', 'org', 'dev'),
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        fc.array(segment, { maxLength: 4 }),
        fc.boolean(),
        (labels, tld, port, segments, slash) => {
          const host = [...labels, tld].join('.')
          const path = `/${segments.join('/')}${slash && segments.length > 0 ? '/' : ''}`
          const url = `https://${host}${port === undefined ? '' : `:${port}`}${path}`
          const entry = parseHttpFlag(url)
          expect(grantsSchema.safeParse({ http: [entry] }).success).toBe(true)
          const back = new URL(
            `${entry.scheme}://${entry.host}${entry.port ? `:${entry.port}` : ''}`,
          )
          expect(back.origin).toBe(new URL(url).origin)
          expect(entry.pathPrefix).toBe(path)
        },
      ),
    )
  })
})
