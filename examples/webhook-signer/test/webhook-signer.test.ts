/**
 * webhook-signer in Warden's real sandbox: the receiver gets the body and a signature it can
 * check with the key; the app never holds the key; any other receiver is denied.
 */
import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestApp, startUpstream } from 'warden/testing'
import type { TestApp, Upstream } from 'warden/testing'

const KEY = 'whsec_test_key_9f8e7d'
let receiver: Upstream
let other: Upstream
let app: TestApp

beforeAll(async () => {
  receiver = await startUpstream(() => ({ status: 202, body: 'ok' }))
  other = await startUpstream(() => ({ status: 200 }))
  app = await openTestApp(new URL('..', import.meta.url), {
    secrets: { webhook_key: KEY },
    origins: { 'https://hooks.example.com': receiver.origin },
  })
  // A cold build (componentize-js, then the loader) takes minutes on a busy machine.
}, 900_000)

afterAll(async () => {
  await app?.close()
  await receiver?.close()
  await other?.close()
})

describe('webhook-signer', () => {
  it('posts the event with a signature the receiver can verify', async () => {
    const run = await app.run({
      event: 'invoice.paid',
      payload: { id: 'inv_1', amount: 4200 },
      receiver: `${receiver.origin}/warden`,
    })
    expect(run.error).toBeUndefined()
    const seen = receiver.requests.at(-1)!
    expect(seen.method).toBe('POST')
    expect(seen.url).toBe('/warden')
    const expected = createHmac('sha256', KEY).update(seen.body).digest('hex')
    expect(seen.headers['x-signature-256']).toBe(`sha256=${expected}`)
    expect(JSON.parse(seen.body)).toEqual({
      event: 'invoice.paid',
      payload: { id: 'inv_1', amount: 4200 },
    })
    expect(run.output).toEqual({ delivered: 202, signature: `sha256=${expected}` })
    expect(run.calls.map((c) => `${c.capability}.${c.fn}:${c.decision}`)).toEqual([
      'secrets.hmacSha256:allow',
      'http.fetch:allow',
      'log.write:allow',
    ])
    expect(JSON.stringify([run.output, run.logs, run.calls])).not.toContain(KEY)
  })

  it('is denied any other receiver, which gets nothing', async () => {
    const run = await app.run({ event: 'invoice.paid', payload: {}, receiver: `${other.origin}/x` })
    expect(run.ok).toBe(false)
    expect(run.guestError).toMatch(/^cannot deliver: denied: /)
    expect(other.requests).toEqual([])
  })

  it('is denied a path outside the granted one on the right host', async () => {
    const run = await app.run({ event: 'a', payload: {}, receiver: `${receiver.origin}/admin` })
    expect(run.guestError).toMatch(/^cannot deliver: denied: path not under \/warden/)
  })
})
