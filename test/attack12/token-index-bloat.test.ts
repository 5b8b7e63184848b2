/**
 * Attack 12: a capability token's holder bloats the file token index. `POST
 * /v1/tokens/attenuate` stored each child's whole `grants` in `tokens.json`, and every mint,
 * attenuation or revocation (anyone's) rewrites the whole file with `JSON.stringify(…, null,
 * 2)` on the server's main thread. A child may carry 64 http entries of 2,048-character path
 * prefixes (each within a parent entry with `pathPrefix: "/"`): ~140 KB of grants per entry.
 * With `ttlSeconds: 1` children expire at once and never count against the 100 live children,
 * yet the index keeps a family's newest 100 expired children, plus up to 100 live ones: a
 * holder of one ordinary token makes the file tens of MB, and then every token operation of
 * every tenant (an admin's grant included) costs a tens-of-MB serialisation and write.
 *
 * Measured: one ordinary http token made a 14.6 MB file; an admin's mint then took 140–199 ms.
 *
 * Fixed: a token longer than `MAX_TOKEN_LENGTH` (8 KiB: what an `Authorization` header
 * carries) is never minted (`invalid_request`): such children could never be presented anyway.
 * What this checks, without timing anything: the fat child is refused, and a holder making the
 * largest children that fit, 100 expired and 100 live, leaves the index under 2 MB.
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'
import { tieredGuest } from '../support/tiered-guest.js'

let host: TestServer

async function api(method: string, path: string, auth: string, json?: unknown) {
  const response = await fetch(`${host.server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${auth}`,
      ...(json === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: json === undefined ? null : JSON.stringify(json),
  })
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers
  return { status: response.status, body: (await response.json()) as any }
}

beforeAll(async () => {
  host = await startTestServer('warden-a12-tokens-')
})

afterAll(async () => {
  await host?.close()
})

/** `n` distinct http entries under `/`, each a path prefix of `length` characters. */
function fatGrants(salt: number, n = 64, length = 2_040) {
  return {
    http: Array.from({ length: n }, (_, i) => ({
      host: 'api.example.com',
      pathPrefix: `/${String(salt).padStart(6, '0')}-${String(i).padStart(2, '0')}-${'a'.repeat(length - 10)}`,
    })),
  }
}

describe('the token index against one holder', () => {
  it('stays small however a holder attenuates (one ordinary http token)', async () => {
    const query = new URLSearchParams({ name: 'fat', owner: 'a12', purpose: 'attack' })
    const upload = await fetch(`${host.server.url}/v1/apps?${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${host.adminKey}`, 'content-type': 'application/wasm' },
      body: Buffer.from(await tieredGuest(['log'], 'a12-fat')) as unknown as BodyInit,
    })
    const app = await upload.json()
    expect(upload.status).toBe(201)
    // An ordinary grant: one host, any path, GET.
    const granted = await api('POST', '/v1/tokens', host.adminKey, {
      app: app.id,
      grants: { log: true, http: [{ host: 'api.example.com' }] },
      ttlSeconds: 3600,
    })
    expect(granted.status).toBe(201)
    const token = granted.body.token as string

    // ~140 KB of grants: never minted.
    const fat = await api('POST', '/v1/tokens/attenuate', token, {
      grants: fatGrants(0),
      ttlSeconds: 1,
    })
    expect(fat.status).toBe(400)
    expect(fat.body.error.code).toBe('invalid_request')
    expect(fat.body.error.message).toContain('at most 8192')

    // The largest that fit (4 prefixes of 1,200 characters: a ~7.8 KB token), 100 that expire
    // at once and 100 live ones: what the index keeps of one family at most.
    const attenuate = async (salt: number, ttlSeconds: number) => {
      const child = await api('POST', '/v1/tokens/attenuate', token, {
        grants: fatGrants(salt, 4, 1_200),
        ttlSeconds,
      })
      expect(child.status, JSON.stringify(child.body)).toBe(201)
      expect(child.body.token.length).toBeGreaterThan(7_000)
    }
    for (let i = 0; i < 100; i++) {
      await attenuate(i, 1)
    }
    await new Promise((r) => setTimeout(r, 2100))
    for (let i = 100; i < 199; i++) {
      await attenuate(i, 3000)
    }
    const size = (await stat(join(host.dataDir, 'tokens.jsonl'))).size
    console.log(`tokens.jsonl ${(size / 1e6).toFixed(2)} MB`)
    expect(size).toBeLessThan(2_000_000)
  }, 120_000)
})
