/**
 * `warden dev`'s local HTTP mapping for micro-apps: a Node request becomes the WIT
 * `incoming-request`, the guest's `outgoing-response` becomes the Node response.
 *
 * NB: a small local copy of the control plane's rules for `ANY /apps/:name/*` (issue 10): to
 * the guest go every request header except hop-by-hop ones and credentials; from the guest,
 * framing and hop-by-hop headers and those whose effect reaches past the app (`set-cookie`,
 * `strict-transport-security`, …) are dropped, and a status or header HTTP cannot carry is a
 * 502. Keep the two in step; the control plane's mapping is the one deployed apps get.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Invocation } from '../../runtime/index.js'
import { WardenError } from '../../runtime/index.js'
import type { IncomingRequest } from './dev-host.js'

/** Request body cap, as the control plane's default: 1 MiB. */
export const MAX_REQUEST_BYTES = 1024 * 1024

/** Never shown to the guest: hop-by-hop and credentials. */
const HIDDEN_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'authorization',
  'proxy-authorization',
  'cookie',
])

/** Never passed on from the guest: framing, hop-by-hop, origin-wide and the host's own. */
const DROPPED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'content-length',
  'set-cookie',
  'clear-site-data',
  'strict-transport-security',
  'service-worker-allowed',
  'alt-svc',
])

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const VALUE = /^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$|^$/

/** Read a Node request into the WIT `incoming-request` (body capped). */
export async function toIncomingRequest(req: IncomingMessage): Promise<IncomingRequest> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_REQUEST_BYTES) {
      throw new WardenError('payload_too_large', 'the request body is over 1 MiB')
    }
    chunks.push(chunk as Buffer)
  }
  const target = req.url ?? '/'
  const q = target.indexOf('?')
  const headers: { name: string; value: string }[] = []
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase()
    if (!HIDDEN_REQUEST_HEADERS.has(name)) {
      headers.push({ name, value: req.rawHeaders[i + 1]! })
    }
  }
  return {
    method: req.method ?? 'GET',
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q + 1),
    headers,
    body: new Uint8Array(Buffer.concat(chunks)),
  }
}

/** Write the guest's answer (or Warden's error) to `res`; returns the status sent. */
export function toHttpResponse(invocation: Invocation, res: ServerResponse): number {
  if (!invocation.ok) {
    const error = invocation.error ?? { code: 'guest_trap', message: String(invocation.guestError) }
    const status = error.code === 'timeout' ? 504 : 500
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: { code: error.code, message: error.message } }))
    return status
  }
  const raw = invocation.output as {
    status: number
    headers: { name: string; value: string }[]
    body: Uint8Array
  }
  const headers: Record<string, string[]> = {}
  let bad = !Number.isInteger(raw.status) || raw.status < 200 || raw.status > 599
  for (const { name, value } of raw.headers) {
    const lower = name.toLowerCase()
    if (!TOKEN.test(name) || !VALUE.test(value)) {
      bad = true
      break
    }
    if (DROPPED_RESPONSE_HEADERS.has(lower) || lower.startsWith('x-warden-')) {
      continue
    }
    ;(headers[lower] ??= []).push(value)
  }
  if (bad) {
    res.writeHead(502, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        error: {
          code: 'invalid_response',
          message: 'the app answered a status or header HTTP cannot carry',
        },
      }),
    )
    return 502
  }
  res.writeHead(raw.status, { ...headers, 'x-content-type-options': 'nosniff' })
  res.end(Buffer.from(raw.body))
  return raw.status
}
