/**
 * Attack 12: work before authentication, with no rate limit, for anyone.
 *
 * `POST /v1/tokens/attenuate` validated its JSON body (the `grants` and `limits` schemas: up to
 * 64 http entries with 2 KiB path prefixes, each checked with regexes, `decodeURIComponent` and
 * WHATWG URL parsing; 64 secrets entries of 64 origins each, …) before the handler looked at the
 * credential. A request without any `Authorization` header was answered `401 unauthorized`
 * only after that, and was counted nowhere: the `/v1/*` middleware counted only API keys, and a
 * token route charged the client address only when a presented token failed verification. A
 * 270 KB body cost the main thread ~15 ms; four curl loops from one client (~63 requests/s,
 * all 401, never 429) took `/healthz` from a 0.2–0.3 ms median to 28.5 ms (×100). The same held,
 * to a lesser degree, for every token route's body (`/v1/runs` source and input, invoke input).
 *
 * Fixed: the token routes verify the bearer token in route middleware (`tokenFirst`), before
 * their validators read the body, and a `/v1` request without a credential is counted against
 * its sender like a wrong key. What this checks, without timing anything: a body the schema
 * refuses is never looked at without a valid credential (401, not 400), and a credential-less
 * flood meets `429 rate_limited`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'

let host: TestServer
beforeAll(async () => {
  host = await startTestServer('warden-a12-anon-')
})
afterAll(async () => {
  await host?.close()
})

/** A body every token route's schema refuses: `grants.http` is not a list, `input` is missing. */
const REFUSED_BODY = JSON.stringify({ grants: { http: 'not a list' }, nonsense: true })

async function post(path: string, authorization?: string) {
  const response = await fetch(`${host.server.url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(authorization ? { authorization } : {}),
    },
    body: REFUSED_BODY,
  })
  const body = (await response.json()) as { error: { code: string } }
  return { status: response.status, code: body.error.code }
}

const TOKEN_ROUTES = ['/v1/tokens/attenuate', '/v1/runs', '/v1/apps/hello/invoke']

describe('anonymous bodies', () => {
  it('a token route reads no body before its credential checked', async () => {
    for (const path of TOKEN_ROUTES) {
      // No credential, a forged token, an API key's shape that is unknown: refused as such,
      // never `invalid_request` for the body behind them.
      expect(await post(path), path).toEqual({ status: 401, code: 'unauthorized' })
      expect(await post(path, 'Bearer x.y.z'), path).toEqual({ status: 401, code: 'token_invalid' })
      expect(await post(path, 'Bearer wdn_unknown'), path).toMatchObject({ status: 401 })
    }
  })

  it('a credential-less flood is counted against its sender', async () => {
    const answers = await Promise.all(
      Array.from({ length: 300 }, () => post('/v1/tokens/attenuate')),
    )
    const codes = new Set(answers.map((a) => a.code))
    expect(codes).toContain('rate_limited')
    expect([...codes].every((c) => c === 'unauthorized' || c === 'rate_limited')).toBe(true)
  })
})
