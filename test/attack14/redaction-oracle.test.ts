/**
 * Attack 14: the redaction of upstream answers is an oracle that recovers a low-entropy secret
 * the script may never read.
 *
 * Every `http.fetch` answer is redacted of every secret the run's grant binds to *any* origin
 * (`authoriseRequest` → `reachable`, `responseRedactorCache`), with `minBytes: 1`, whatever host
 * answered. The upstream answers are the attacker's (threat model: "upstream HTTP responses from
 * the hosts a grant names"): a script with an http grant to an echo (here: its own loopback
 * server, or any endpoint that reflects a body) sends every candidate value of the secret in one
 * request body, gets them back with exactly the secret's candidate replaced by
 * `[redacted:NAME]`, and so reads the secret's value. The secret is never sent anywhere: it is
 * bound to another origin the script never calls. One fetch tests ~100,000 candidates; a run
 * has 1,000 fetches; a tenant has many runs. PINs, short passwords, numeric API keys, anything a
 * dictionary covers, falls.
 *
 * The script returns the value digit by digit (each under the output redactor's 4-byte minimum),
 * so the run's own output redaction does not hide it from the test.
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenClient } from '../../sdk/client/index.js'
import { listenLoopback, loopbackHttp } from '../support/loopback.js'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'

const SECRET = '73919'

let host: TestServer
let admin: WardenClient
let echo: Server
let port: number
const bodiesSeen: number[] = []

beforeAll(async () => {
  // The attacker's (or any reflecting) upstream: answers the request body as it came.
  echo = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      bodiesSeen.push(body.length)
      res.setHeader('content-type', 'text/plain')
      res.end(body)
    })
  })
  port = await listenLoopback(echo)
  host = await startTestServer('warden-a14-oracle-', { agent: true })
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
  await admin.secrets.set('door_pin', SECRET)
}, 120_000)

afterAll(async () => {
  await host?.close()
  await new Promise((resolve) => echo?.close(resolve))
})

describe('redaction of upstream answers', () => {
  it('does not tell a script which of its own candidate strings is a secret', async () => {
    const { token } = await admin.grantToken({
      app: 'js',
      grants: {
        http: [loopbackHttp(port, ['POST'], '/echo/')],
        // Bound to an origin the script never calls: it is only ever sent there.
        secrets: [{ name: 'door_pin', hosts: ['https://door.example.com'] }],
      },
      limits: { egressBytes: 64 * 1024 * 1024, fuel: 100_000_000_000, timeoutMs: 60_000 },
      ttlSeconds: 600,
    })
    const started = performance.now()
    const run = await admin.runJs(
      `const parts = []
       for (let i = 0; i < 100000; i++) parts.push(String(i).padStart(5, '0'))
       const r = await warden.fetch(input.url, { method: 'POST', body: parts.join(' ') })
       const back = (await r.text()).split(' ')
       for (let i = 0; i < back.length; i++) {
         if (back[i].startsWith('[redacted:')) return { digits: parts[i].split('') }
       }
       return null`,
      { url: `http://127.0.0.1:${port}/echo/x` },
      token,
    )
    console.log(
      `oracle run: ${Math.round(performance.now() - started)} ms, body ${bodiesSeen.at(-1)} bytes, output ${JSON.stringify(run.output)}, fuel ${run.report.fuelUsed}`,
    )
    const recovered = (run.output as { digits?: string[] } | null)?.digits?.join('') ?? null
    expect(recovered).not.toBe(SECRET)
  }, 120_000)
})
