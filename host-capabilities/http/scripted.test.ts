/**
 * The scripted transport, behind the real http broker with no guest: the broker's checks run
 * before it, the run's egress budget and deadline still hold, and a script's failure is a
 * generic `upstream` error that names no header.
 */
import { describe, expect, it, vi } from 'vitest'
import { resolveLimits } from '../../runtime/limits/limits.js'
import { fakeRunContext } from '../../test/support/context.js'
import { HostCallError } from '../types.js'
import type { HostErrorPayload } from '../../core/decisions.js'
import { compileSecretsGrant, SECRETS_INTERFACE } from '../secrets/index.js'
import { createHttpCapability, HTTP_INTERFACE } from './broker.js'
import { compileHttpGrant } from './grant.js'
import { createScriptedTransport } from './scripted.js'
import type { HttpScriptFunction } from './scripted.js'

const SECRET = 'sk-scripted-unit-0123456789'
const OK = { status: 200, headers: [], body: new TextEncoder().encode('fine') }

function ctx(options: { egressBytes?: number; signal?: AbortSignal } = {}) {
  const grants = {
    [HTTP_INTERFACE]: compileHttpGrant([
      { scheme: 'https', host: 'api.example.com', pathPrefix: '/', methods: ['GET'] },
    ]),
    [SECRETS_INTERFACE]: compileSecretsGrant([{ name: 'key', hosts: ['api.example.com'] }]),
  }
  return fakeRunContext({
    limits: resolveLimits(options.egressBytes ? { egressBytes: options.egressBytes } : {}),
    granted: new Set(Object.keys(grants)),
    grants,
    ...(options.signal ? { signal: options.signal } : {}),
  })
}

async function fetchWith(
  script: HttpScriptFunction,
  url: string,
  options: Parameters<typeof ctx>[0] & { timeoutMs?: number; auth?: string } = {},
) {
  const http = createHttpCapability({
    transport: createScriptedTransport(script),
    secrets: { read: async (name) => (name === 'key' ? SECRET : undefined) },
  })
  const request = {
    method: 'GET',
    url,
    headers: options.auth ? [{ name: 'authorization', value: options.auth }] : [],
    body: undefined,
    timeoutMs: options.timeoutMs,
  }
  return http.handle('fetch', [request], ctx(options))
}

async function refusal(promise: Promise<unknown>): Promise<HostErrorPayload> {
  try {
    await promise
  } catch (error) {
    if (error instanceof HostCallError) {
      return error.payload
    }
    throw error
  }
  throw new Error('expected a host error')
}

describe('the scripted transport', () => {
  it('gets the request after the checks, the secret substituted; the answer is redacted', async () => {
    const script = vi.fn<HttpScriptFunction>((req) => ({
      ...OK,
      body: new TextEncoder().encode(`echo ${req.headers[0]?.value}`),
    }))
    const answer = (await fetchWith(script, 'https://api.example.com/x?q=1', {
      auth: 'Bearer {{secret:key}}',
    })) as typeof OK
    expect(script).toHaveBeenCalledOnce()
    expect(script.mock.calls[0]?.[0]).toMatchObject({
      method: 'GET',
      url: 'https://api.example.com/x?q=1',
      headers: [
        { name: 'authorization', value: `Bearer ${SECRET}` },
        { name: 'accept-encoding', value: 'identity' },
      ],
    })
    expect(new TextDecoder().decode(answer.body)).not.toContain(SECRET)
  })

  it('never sees a request the grant refuses', async () => {
    const script = vi.fn<HttpScriptFunction>(() => OK)
    for (const url of ['https://other.example.com/', 'http://api.example.com/']) {
      expect((await refusal(fetchWith(script, url))).tag).toBe('denied')
    }
    // A placeholder toward an origin the secret is not bound to.
    const bound = await refusal(
      fetchWith(script, 'https://api.example.com/', { auth: '{{secret:other}}' }),
    )
    expect(bound.tag).toBe('denied')
    expect(script).not.toHaveBeenCalled()
  })

  it('answers upstream for an unknown request or a throwing script, naming no header', async () => {
    const unknown = await refusal(fetchWith(() => undefined, 'https://api.example.com/nope'))
    expect(unknown).toEqual({
      tag: 'upstream',
      val: "the test's script has no answer for GET https://api.example.com/nope",
    })
    const thrown = await refusal(
      fetchWith(
        (req) => {
          throw new Error(`boom ${req.headers[0]?.value}`)
        },
        'https://api.example.com/',
        { auth: 'Bearer {{secret:key}}' },
      ),
    )
    expect(thrown.tag).toBe('upstream')
    expect(String(thrown.val)).not.toContain(SECRET)
  })

  it("keeps the run's egress budget and the request's deadline", async () => {
    const big = { ...OK, body: new Uint8Array(4096) }
    expect(
      (await refusal(fetchWith(() => big, 'https://api.example.com/', { egressBytes: 1024 }))).tag,
    ).toBe('limit-exceeded')
    const run = new AbortController()
    const never = fetchWith(() => new Promise(() => {}), 'https://api.example.com/', {
      signal: run.signal,
    })
    run.abort()
    expect(await refusal(never)).toEqual({
      tag: 'upstream',
      val: 'the run ended before the request completed',
    })
  })
})
