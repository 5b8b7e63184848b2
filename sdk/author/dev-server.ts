/**
 * `warden dev`'s local HTTP mapping for micro-apps: a Node request becomes the WIT
 * `incoming-request`, the guest's `outgoing-response` becomes the Node response, by the control
 * plane's own rules for `ANY /apps/:name/*` (`control-plane/micro-app-http.ts`): the same headers
 * hidden from the guest, the same answer checks and dropped headers, the same caps and CSP, so
 * an app behaves in `warden dev` as it will when deployed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import {
  checkGuestResponse,
  MICRO_APP_CSP,
  MICRO_APP_DEFAULTS,
  requestHeadersForGuest,
} from '../../control-plane/index.js'
import type { Invocation } from '../../runtime/index.js'
import { toWardenError, WardenError } from '../../runtime/index.js'
import type { IncomingRequest } from './dev-host.js'

/** Request body cap, as the control plane's default: 1 MiB. */
export const MAX_REQUEST_BYTES = MICRO_APP_DEFAULTS.maxRequestBytes

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
  const headers = new Headers()
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!)
  }
  return {
    method: req.method ?? 'GET',
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q + 1),
    headers: requestHeadersForGuest(headers),
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
  let answer: ReturnType<typeof checkGuestResponse>
  try {
    answer = checkGuestResponse(invocation.output, {
      maxBodyBytes: MICRO_APP_DEFAULTS.maxResponseBytes,
    })
  } catch (error) {
    const { code, message } = toWardenError(error)
    res.writeHead(502, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code, message } }))
    return 502
  }
  const headers = answer.headers
  headers['content-security-policy'] = [
    ...(headers['content-security-policy'] ?? []),
    MICRO_APP_CSP,
  ]
  headers['x-content-type-options'] = ['nosniff']
  res.writeHead(answer.status, headers)
  res.end(Buffer.from(answer.body))
  return answer.status
}
