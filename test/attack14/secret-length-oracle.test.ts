/**
 * Attack 14: a script reads the exact length of a secret it may use but never read.
 *
 * `authoriseRequest` checks the request headers against `maxRequestHeaderBytes` (16,384) with
 * the `{{secret:NAME}}` placeholder in place; the broker then substitutes the value, adds
 * `accept-encoding: identity`, and checks again (`checkHeaderBytes` in `fetchOnce`), answering
 * `limit-exceeded: request headers exceed 16384 bytes` to the script. A script that pads another
 * header finds, by bisection (14 fetches), the largest padding that still goes out, and from it
 * the secret's length to the byte. The denial "names the rule that refused, never a secret", but
 * its position is a function of the secret. Low severity alone; it narrows a dictionary for the
 * redaction oracle (redaction-oracle.test.ts), and tells which of several known secret formats
 * (key kinds of different lengths) an operator stored.
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenClient } from '../../sdk/client/index.js'
import { listenLoopback, loopbackHttp } from '../support/loopback.js'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'

const SECRET = 'sk-live-0123456789abcdef0123456789abcdef'

let host: TestServer
let admin: WardenClient
let upstream: Server
let port: number

beforeAll(async () => {
  upstream = createServer((_req, res) => res.end('ok'))
  port = await listenLoopback(upstream)
  host = await startTestServer('warden-a14-length-', { agent: true })
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
  await admin.secrets.set('api_key', SECRET)
}, 120_000)

afterAll(async () => {
  await host?.close()
  await new Promise((resolve) => upstream?.close(resolve))
})

describe('the header size check after substitution', () => {
  it('does not tell the script how long the secret is', async () => {
    const { token } = await admin.grantToken({
      app: 'js',
      grants: {
        http: [loopbackHttp(port, ['GET'], '/')],
        secrets: [{ name: 'api_key', hosts: [`http://127.0.0.1:${port}`] }],
      },
      limits: { fuel: 100_000_000_000, timeoutMs: 60_000 },
      ttlSeconds: 600,
    })
    const run = await admin.runJs(
      `const fits = async (n) => {
         try {
           await warden.fetch(input.url, { headers: [
             ['x-pad', 'a'.repeat(n)],
             ['authorization', 'Bearer {{secret:api_key}}'],
           ] })
           return true
         } catch (e) {
           if (e.kind === 'limit-exceeded') return false
           throw e
         }
       }
       let lo = 0, hi = 16384
       while (lo + 1 < hi) { const mid = (lo + hi) >> 1; if (await fits(mid)) lo = mid; else hi = mid }
       // x-pad: 5 + n + 4; authorization: 13 + 7 + L + 4; accept-encoding: identity: 27
       return { largestPad: lo, length: 16384 - 60 - lo }`,
      { url: `http://127.0.0.1:${port}/x` },
      token,
    )
    console.log(`length oracle: ${JSON.stringify(run.output)}, host calls ${run.report.hostCalls}`)
    expect((run.output as { length: number }).length).not.toBe(SECRET.length)
  }, 120_000)
})
