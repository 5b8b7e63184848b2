/**
 * Attack 14: an anonymous client of a micro-app that echoes its request (the shipped example
 * `examples/hello-http` does) finds every stored secret a dictionary covers.
 *
 * Everything a run returns is redacted against every form of every stored secret of the
 * deployment, whatever the run's grant (the micro-app here imports nothing and has none). The
 * body the app sends back is the client's own, so the client knows what each byte was: where
 * the answer holds `[redacted:NAME]`, the candidate it sent there is the secret NAME. One
 * request carries ~1 MiB of candidates (the micro-app body cap), costs the app a memcpy, and
 * needs no credential at all: the route's callers are anonymous.
 */
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenClient } from '../../sdk/client/index.js'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'
import { compileWat } from '../support/wat.js'

const SECRET = '739194' // e.g. a payroll PIN another team stored for its own app

let host: TestServer
let admin: WardenClient

beforeAll(async () => {
  host = await startTestServer('warden-a14-echo-')
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
  await admin.secrets.set('payroll_pin', SECRET)
  const wat = await readFile(
    new URL('../../examples/hello-http/hello-http.wat', import.meta.url),
    'utf8',
  )
  await admin.upload(await compileWat(wat), {
    name: 'hello-http',
    owner: 'it-team',
    purpose: 'the example',
  })
  await admin.bindRoute('hello-http', { grants: {} })
}, 120_000)

afterAll(async () => {
  await host?.close()
})

describe('an echoing micro-app', () => {
  it('does not show an anonymous caller which of its strings is a stored secret', async () => {
    const started = performance.now()
    let found: { candidate: string; marker: string } | undefined
    let requests = 0
    const PER = 120_000 // 7 bytes each: under the 1 MiB request body cap
    for (let from = 0; from < 1_000_000 && found === undefined; from += PER) {
      requests++
      const sent: string[] = []
      for (let i = from; i < Math.min(from + PER, 1_000_000); i++) {
        sent.push(String(i).padStart(6, '0'))
      }
      const response = await fetch(`${host.server.url}/apps/hello-http/x`, {
        method: 'POST',
        body: sent.join(' '),
      })
      expect(response.status).toBe(200)
      const back = (await response.text()).split(' ')
      const at = back.findIndex((s) => s.startsWith('[redacted:'))
      if (at !== -1) {
        found = { candidate: sent[at]!, marker: back[at]! }
      }
    }
    console.log(
      `echo oracle: ${requests} anonymous requests, ${Math.round(performance.now() - started)} ms, found ${JSON.stringify(found)}`,
    )
    expect(found?.candidate ?? null).not.toBe(SECRET)
  }, 300_000)
})
