/**
 * webhook-signer: signs an event with `secrets.hmacSha256` (the key never enters the app) and
 * posts it to the one receiver its grant allows, with the signature in `X-Signature-256`
 * (`sha256=<hex>`, as GitHub's webhooks do). The receiver checks it with the same key.
 *
 * Input: { "event": "invoice.paid", "payload": { … }, "receiver"?: "https://…" }
 * (`receiver` defaults to https://hooks.example.com/warden; the grant decides what is reachable).
 */
import { HostError, http, log, secrets } from 'warden:app'

interface Input {
  event?: unknown
  payload?: unknown
  receiver?: unknown
}

const EVENT = /^[a-z][a-z0-9_.-]{0,63}$/

export function run(input: Input): { delivered: number; signature: string } {
  const event = typeof input.event === 'string' ? input.event : ''
  if (!EVENT.test(event)) {
    throw new Error('event must be a name like "invoice.paid"')
  }
  const receiver =
    typeof input.receiver === 'string' ? input.receiver : 'https://hooks.example.com/warden'
  const body = JSON.stringify({ event, payload: input.payload ?? null })
  const signature = `sha256=${secrets.hmacSha256Hex('webhook_key', body)}`
  try {
    const res = http.fetch(receiver, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signature-256': signature },
      body,
    })
    log.info(`${event}: receiver answered ${res.status}`)
    if (!res.ok) {
      throw new Error(`the receiver answered ${res.status}`)
    }
    return { delivered: res.status, signature }
  } catch (error) {
    if (error instanceof HostError) {
      throw new Error(`cannot deliver: ${error.kind}: ${error.reason}`)
    }
    throw error
  }
}
