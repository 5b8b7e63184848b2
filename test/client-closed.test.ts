/**
 * A client that hangs up while its run waits for a sandbox frees that place: through the real
 * server, an invoke whose socket is destroyed while the app's one running place is held ends
 * `client_closed` (audited) without ever starting, and the run that holds the place goes on.
 */
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenClient } from '../sdk/client/index.js'
import { infiniteLoop } from './support/guests.js'
import { startTestServer } from './support/server.js'
import type { TestServer } from './support/server.js'
import { compileWat } from './support/wat.js'

let host: TestServer
let admin: WardenClient

beforeAll(async () => {
  host = await startTestServer('warden-client-closed-')
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
}, 60_000)

afterAll(async () => {
  await host?.close()
})

/** POST an invoke and hang up once the request is sent, before any answer. */
function invokeAndHangUp(url: string, token: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ input: 'x' })
    const req = request(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
    })
    req.on('error', () => resolve())
    req.on('response', () => reject(new Error('the run answered before the client hung up')))
    req.end(body, () => {
      // Sent: give the server the request, then leave.
      setTimeout(() => {
        req.destroy()
        resolve()
      }, 200)
    })
  })
}

describe('a client that hangs up', () => {
  it('ends its queued run with client_closed; the running one goes on', async () => {
    const { app } = await admin.upload(await compileWat(infiniteLoop), {
      name: 'spins',
      owner: 'it-team',
      purpose: 'holds its place until the deadline',
    })
    const { token } = await admin.grantToken({
      app: app.id,
      grants: {},
      limits: { timeoutMs: 60_000 },
      ttlSeconds: 600,
    })
    // A pool of 2: one app runs on one worker at most, so a second run of it waits.
    let settled = false
    const holding = admin
      .invoke(app.id, 'x', token)
      .catch((error: unknown) => error)
      .finally(() => {
        settled = true
      })
    await invokeAndHangUp(`${host.server.url}/v1/apps/${app.id}/invoke`, token)
    await expect
      .poll(
        async () => {
          const page = await admin.audit.query({ app: app.id, limit: 1000 })
          return page.records.some((r) => JSON.stringify(r).includes('client_closed'))
        },
        { timeout: 20_000, interval: 100 },
      )
      .toBe(true)
    // The queued run ended while the run holding the place still ran; the kill switch ends it.
    expect(settled).toBe(false)
    await admin.disable(app.id)
    const held = (await holding) as { code?: string }
    expect(held.code).toBe('app_disabled')
  }, 30_000)
})
