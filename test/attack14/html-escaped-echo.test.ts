/**
 * Attack 14: an honest upstream that reflects the credential HTML-escaped (an error page:
 * `invalid token: <b>…</b>`) hands the script a secret that holds `&`, `<`, `>`, `"` or `'`.
 *
 * Upstream answers on a run that binds secrets are redacted of every secret "as written,
 * JSON-escaped, percent-encoded, in hex and in base64" (`host-capabilities/secrets/redact.ts`).
 * HTML character references are none of those: `p4ss&amp;w0rd` is not searched for, so the
 * script reads `p4ss&amp;w0rd`, unescapes it, and has the secret it was only allowed to send.
 * Passwords and some API keys (Basic credentials, signed blobs) hold such characters.
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenClient } from '../../sdk/client/index.js'
import { listenLoopback, loopbackHttp } from '../support/loopback.js'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'

const SECRET = 'Xk9<pQ&r"7s\'t>Lm2'

let host: TestServer
let admin: WardenClient
let upstream: Server
let port: number

const escapeHtml = (s: string) =>
  s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')

beforeAll(async () => {
  // An honest API's error page: it shows the credential it refused, HTML-escaped.
  upstream = createServer((req, res) => {
    res.statusCode = 401
    res.setHeader('content-type', 'text/html')
    res.end(`<p>invalid token: <b>${escapeHtml(String(req.headers['x-api-key'] ?? ''))}</b></p>`)
  })
  port = await listenLoopback(upstream)
  host = await startTestServer('warden-a14-html-', { agent: true })
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
  await admin.secrets.set('api_key', SECRET)
}, 120_000)

afterAll(async () => {
  await host?.close()
  await new Promise((resolve) => upstream?.close(resolve))
})

describe('an HTML-escaped echo', () => {
  it('does not hand the script its secret', async () => {
    const { token } = await admin.grantToken({
      app: 'js',
      grants: {
        http: [loopbackHttp(port, ['GET'], '/')],
        secrets: [{ name: 'api_key', hosts: [`http://127.0.0.1:${port}`], header: 'x-api-key' }],
      },
      ttlSeconds: 600,
    })
    const run = await admin.runJs(
      `const r = await warden.fetch(input.url, { headers: { 'x-api-key': '{{secret:api_key}}' } })
       const page = await r.text()
       const m = /<b>(.*)<.b>/.exec(page)
       if (!m) return { page }
       const value = m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
         .replace(/&#39;/g, "'").replace(/&amp;/g, '&')
       // Character codes: the run's own output redaction would hide the value itself.
       return { codes: Array.from(value, (c) => c.charCodeAt(0)) }`,
      { url: `http://127.0.0.1:${port}/me` },
      token,
    )
    const out = run.output as { codes?: number[]; page?: string }
    const recovered = out.codes ? String.fromCharCode(...out.codes) : null
    console.log(
      `html echo: ${JSON.stringify(out.page ?? null)}, recovered ${JSON.stringify(recovered)}`,
    )
    expect(recovered).not.toBe(SECRET)
  }, 120_000)
})
