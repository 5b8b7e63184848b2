/**
 * Attack 14: a compressed echo of a secret reaches the script when the compression is a
 * transfer coding instead of a content coding.
 *
 * On a run whose grant binds a secret, the broker asks for `accept-encoding: identity` and the
 * transport refuses an answer whose `Content-Encoding` is not identity: redaction searches plain
 * bytes, "a compressed echo of a secret would slip through". Node's HTTP parser also accepts
 * `Transfer-Encoding: gzip, chunked` and removes only the chunking: the body reaches the broker
 * still gzipped, passes redaction (no plain form of the value is in it), and the script gets the
 * compressed bytes of its secret. Low severity: it needs the upstream the secret is bound to (or
 * was sent to) to echo it and to use a transfer coding other than chunked, which honest servers
 * rarely do; but the documented guarantee is that such an echo is refused.
 */
import { createServer } from 'node:net'
import type { Server } from 'node:net'
import { gunzipSync, gzipSync } from 'node:zlib'
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
  // An echo of the authorization header, gzipped as a transfer coding.
  upstream = createServer((socket) => {
    let head = ''
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1')
      if (!head.includes('\r\n\r\n')) {
        return
      }
      const auth = /\r\nauthorization: ([^\r]*)/i.exec(head)?.[1] ?? ''
      const gz = gzipSync(auth)
      socket.write(
        `HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${gz.length.toString(16)}\r\n`,
      )
      socket.write(gz)
      socket.end('\r\n0\r\n\r\n')
    })
    socket.on('error', () => {})
  })
  port = await listenLoopback(upstream)
  host = await startTestServer('warden-a14-te-', { agent: true })
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
  await admin.secrets.set('api_key', SECRET)
}, 120_000)

afterAll(async () => {
  await host?.close()
  await new Promise((resolve) => upstream?.close(resolve))
})

describe('an echo compressed as a transfer coding', () => {
  it('does not hand the script its secret', async () => {
    const { token } = await admin.grantToken({
      app: 'js',
      grants: {
        http: [loopbackHttp(port, ['GET'], '/')],
        secrets: [{ name: 'api_key', hosts: [`http://127.0.0.1:${port}`] }],
      },
      ttlSeconds: 600,
    })
    const run = await admin.runJs(
      `try {
         const r = await warden.fetch(input.url, { headers: { authorization: 'Bearer {{secret:api_key}}' } })
         return { status: r.status, te: r.headers['transfer-encoding'] ?? null, bytes: Array.from(r.bytes()) }
       } catch (e) { return { refused: e.kind ?? e.name } }`,
      { url: `http://127.0.0.1:${port}/echo` },
      token,
    )
    const out = run.output as { bytes?: number[]; refused?: string; te?: string }
    const echoed = out.bytes ? gunzipSync(Buffer.from(out.bytes)).toString('latin1') : null
    console.log(
      `transfer-coding echo: ${JSON.stringify({ ...out, bytes: out.bytes?.length })}, gunzipped by the caller: ${echoed}`,
    )
    expect(echoed).not.toBe(`Bearer ${SECRET}`)
  }, 120_000)
})
