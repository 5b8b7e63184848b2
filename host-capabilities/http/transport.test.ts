/**
 * The transport's address rules on their own: a fake resolver, and requests refused before any
 * connection is made. Exchanges with real servers are tested through the broker.
 */
import { describe, expect, it } from 'vitest'
import { HostCallError } from '../types.js'
import { createTransport, startDeadline } from './transport.js'
import type { ResolvedAddress } from './transport.js'
import { parseEgressUrl } from './url.js'

/** A resolver answering from `table`; any other name is ENOTFOUND. */
const resolver =
  (table: Record<string, string[]>) =>
  async (host: string): Promise<ResolvedAddress[]> => {
    const answer = table[host]
    if (answer === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
    }
    return answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
  }

type Outcome = { ok: true } | { ok: false; tag: string; message: string }

/** Send a GET to `url` with nothing spent, as the broker would once the checks passed. */
async function sendTo(
  url: string,
  allowPrivate: boolean,
  lookup?: (host: string) => Promise<ResolvedAddress[]>,
): Promise<Outcome> {
  const transport = createTransport({
    lookup,
    maxResponseHeaderBytes: 32_768,
    maxResponseBytes: 5 * 1024 * 1024,
  })
  const target = parseEgressUrl(url)
  const deadline = startDeadline(10_000, new AbortController().signal, Date.now, target.origin)
  try {
    await transport.send(
      {
        url: target,
        method: 'GET',
        headers: [],
        body: undefined,
        allowPrivate,
        plainBytesOnly: false,
        requestBytes: 0,
      },
      {
        budget: { counters: { egressBytes: 0 }, limits: { egressBytes: 1024 * 1024 } },
        deadline,
        onConnect: () => undefined,
      },
    )
    return { ok: true }
  } catch (error) {
    if (error instanceof HostCallError) {
      return { ok: false, tag: error.payload.tag, message: error.payload.val }
    }
    throw error
  } finally {
    deadline.dispose()
  }
}

const tagOf = (outcome: Outcome) => (outcome.ok ? 'ok' : outcome.tag)
const messageOf = (outcome: Outcome) => (outcome.ok ? 'ok' : outcome.message)

describe('transport: addresses', () => {
  it('refuses metadata addresses behind a name even with allowPrivate', async () => {
    const lookup = resolver({ 'meta.test': ['169.254.169.254'], 'zero.test': ['0.0.0.0'] })
    expect(tagOf(await sendTo('http://meta.test/', true, lookup))).toBe('denied')
    expect(tagOf(await sendTo('http://zero.test/', true, lookup))).toBe('denied')
  })

  it('denies IPv4-mapped and other encodings of loopback without allowPrivate', async () => {
    for (const url of ['http://[::ffff:127.0.0.1]/', 'http://0x7f.1/', 'http://0177.0.0.1/']) {
      expect(tagOf(await sendTo(url, false))).toBe('denied')
    }
  })

  it('answers upstream when the name does not resolve', async () => {
    expect(tagOf(await sendTo('https://nowhere.test/', false, resolver({})))).toBe('upstream')
  })
})

describe('transport: denial messages (issue 7)', () => {
  it('names the rule for a loopback literal', async () => {
    expect(messageOf(await sendTo('http://127.0.0.1/', false))).toBe(
      '127.0.0.1 is a loopback address (127.0.0.0/8)',
    )
  })

  it('names the range a resolved address falls in', async () => {
    const lookup = resolver({ 'api.test': ['10.1.2.3'], 'meta.test': ['169.254.169.254'] })
    expect(messageOf(await sendTo('https://api.test/', false, lookup))).toBe(
      'api.test resolves to a private address (10.0.0.0/8)',
    )
    expect(messageOf(await sendTo('https://meta.test/', true, lookup))).toBe(
      'meta.test resolves to a metadata address (169.254.169.254/32), never allowed by name',
    )
  })
})
