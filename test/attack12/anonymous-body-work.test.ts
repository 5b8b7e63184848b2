/**
 * Attack 12: work before authentication, with no rate limit, for anyone.
 *
 * `POST /v1/tokens/attenuate` validates its JSON body (the `grants` and `limits` schemas: up to
 * 64 http entries with 2 KiB path prefixes, each checked with regexes, `decodeURIComponent` and
 * WHATWG URL parsing; 64 secrets entries of 64 origins each, …) before the handler looks at the
 * credential. A request without any `Authorization` header is answered `401 unauthorized`
 * only after that, and is counted nowhere: the `/v1/*` middleware counts only API keys, and a
 * token route charges the client address only when a presented token fails verification. A
 * 270 KB body costs the main thread ~15 ms; four curl loops from one client (~63 requests/s,
 * all 401, never 429) took `/healthz` from a 0.2–0.3 ms median to 28.5 ms (×100), where the
 * same loops with a 13-byte body (~185 requests/s) left it at 0.3 ms. The same holds, to a
 * lesser degree, for every token route's body (`/v1/runs` source and input, invoke input).
 *
 * Timing is inherent: the test asserts the fat flood's /healthz median is within 5 ms of the
 * small flood's (observed 28.5 vs 0.3 ms), and that no 429 was ever answered (deterministic).
 */
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
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

function fatGrants() {
  return {
    http: Array.from({ length: 64 }, (_, i) => ({
      host: `h${i}.example.com`,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      pathPrefix: `/${String(i).padStart(2, '0')}-${'%C3%A9'.repeat(330)}`,
    })),
    secrets: Array.from({ length: 64 }, (_, i) => ({
      name: `s${i}`,
      hosts: Array.from({ length: 64 }, (_, j) => `https://h${j}.example${i}.com:8443`),
    })),
  }
}

describe('anonymous bodies', () => {
  it('a credential-less flood of fat attenuation bodies costs the others nothing', async () => {
    const body = JSON.stringify({ grants: fatGrants() })
    const flood = async (label: string, floodBody: string) => {
      // Now from outside the server's process: 4 curl loops, no credentials, while a benign
      // client calls /healthz.
      const file = join(host.dataDir, `${label}.json`)
      await writeFile(file, floodBody)
      const url = `${host.server.url}/v1/tokens/attenuate`
      const statuses = new Map<string, number>()
      const loops = Array.from(
        { length: 4 },
        () =>
          new Promise<void>((resolve) => {
            const child = spawn(
              'sh',
              [
                '-c',
                `while [ ! -e "$STOP" ]; do curl -s -o /dev/null -w '%{http_code}\\n' -X POST -H 'content-type: application/json' --data-binary @"$FILE" "$URL"; done`,
              ],
              { env: { ...process.env, FILE: file, URL: url, STOP: `${file}.stop` } },
            )
            child.stdout.on('data', (d: Buffer) => {
              for (const line of d.toString().trim().split('\n')) {
                statuses.set(line, (statuses.get(line) ?? 0) + 1)
              }
            })
            child.on('exit', () => resolve())
          }),
      )
      const health = async () => {
        const t = performance.now()
        await (await fetch(`${host.server.url}/healthz`)).text()
        return performance.now() - t
      }
      await new Promise((r) => setTimeout(r, 1000))
      const loud: number[] = []
      const tl = performance.now()
      while (performance.now() - tl < 5000) loud.push(await health())
      await writeFile(`${file}.stop`, '')
      await Promise.all(loops)
      const quiet: number[] = []
      for (let i = 0; i < 50; i++) quiet.push(await health())
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
      console.log(
        `anonymous flood (${label}, ${floodBody.length} bytes): ${JSON.stringify(Object.fromEntries(statuses))}; /healthz median quiet ${median(quiet).toFixed(1)} ms, loud ${median(loud).toFixed(1)} ms (p90 ${[...loud].sort((a, b) => a - b)[Math.floor(loud.length * 0.9)]!.toFixed(0)} ms, ${loud.length} probes)`,
      )
      return { statuses, loud: median(loud) }
    }
    const small = await flood('small', JSON.stringify({ grants: {} }))
    const fat = await flood('fat', body)
    // Never a 429: a request without credentials is not counted anywhere.
    expect(fat.statuses.get('429') ?? 0).toBe(0)
    // The generous bound: a flood of credential-less requests should cost the others no more
    // than a flood of small ones does, give or take a few ms.
    expect(fat.loud).toBeLessThan(small.loud + 5)
  }, 120_000)
})
