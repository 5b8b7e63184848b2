/**
 * Attack 12: a micro-app's body far over the 5 MiB cap is decoded and redacted against every
 * stored secret on the main thread, before the cap refuses it.
 *
 * `openWarden` cleans everything that comes back from a run with one redactor over every
 * stored secret (`redactInvocation` → `redactValue`): a byte list is decoded as UTF-8 and
 * scanned for each secret's forms (raw, JSON/percent spellings, hex, base64 alignments), on
 * the main thread. The micro-app route checks the body against its 5 MiB cap only afterwards
 * (`checkGuestResponse`), so an approved micro-app (no imports, low risk) that answers a 56 MiB
 * body (within the 64 MiB lift budget) makes each anonymous request cost the main thread the
 * redaction of 56 MB: measured 129–166 ms of stall with no secrets stored, 626–647 ms with 20,
 * growing with the number of secrets an admin stores (the cost is per secret). An action's
 * output (up to the worker's 16 MiB string cap) is likewise redacted before the 1 MiB cap.
 *
 * Fixed: `openWarden`'s `run`/`call` take an `outputCap` that is checked before redaction, and
 * the micro-app route (and invoke, `/v1/runs`) pass theirs: an over-cap answer is dropped
 * unread. What this checks, without timing anything: the refusal is the cap's, not the
 * response check's that runs after redaction.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'
import { helloHttpWith } from '../support/wat.js'

const BODY_MIB = 56

function bigBodyWat(): Promise<string> {
  return helloHttpWith(
    '(local $body i32)',
    `      (local.set $body (call $alloc (i32.const 1) (i32.const ${BODY_MIB * 1024 * 1024})))
      (memory.fill (local.get $body) (i32.const 97) (i32.const ${BODY_MIB * 1024 * 1024}))
      (i32.store16 (i32.const 128) (i32.const 200))
      (i32.store (i32.const 132) (i32.const 0))
      (i32.store (i32.const 136) (i32.const 0))
      (i32.store (i32.const 140) (local.get $body))
      (i32.store (i32.const 144) (i32.const ${BODY_MIB * 1024 * 1024}))
      (i32.const 128)`,
  )
}

let host: TestServer
async function admin(method: string, path: string, json?: unknown) {
  const r = await fetch(`${host.server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${host.adminKey}`,
      ...(json === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: json === undefined ? null : JSON.stringify(json),
  })
  const text = await r.text()
  return { status: r.status, json: text ? JSON.parse(text) : null }
}

beforeAll(async () => {
  host = await startTestServer('warden-a12-redact-')
  const query = new URLSearchParams({ name: 'big-body', owner: 'a12', purpose: 'attack' })
  const upload = await fetch(`${host.server.url}/v1/apps?${query}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${host.adminKey}`, 'content-type': 'application/wasm' },
    body: Buffer.from(await parse(await bigBodyWat())) as unknown as BodyInit,
  })
  expect(upload.status).toBe(201)
  expect((await admin('POST', '/v1/apps/big-body/route', { grants: {} })).status).toBe(201)
})
afterAll(async () => {
  await host?.close()
})

async function once(label: string) {
  const stall = monitorEventLoopDelay({ resolution: 5 })
  stall.enable()
  const t = performance.now()
  const r = await fetch(`${host.server.url}/apps/big-body/`)
  const text = await r.text()
  stall.disable()
  console.log(
    `${label}: ${r.status} in ${(performance.now() - t).toFixed(0)} ms, main-thread max stall ${(stall.max / 1e6).toFixed(0)} ms ${text.slice(0, 120)}`,
  )
  return { status: r.status, error: JSON.parse(text).error }
}

describe('a micro-app body over the cap', () => {
  it('is refused before the main thread redacts it', async () => {
    for (let i = 0; i < 50; i++) {
      const put = await admin('PUT', `/v1/secrets/api_key_${i}`, {
        value: `sk-live-${i}-${'x'.repeat(24)}${i}`,
      })
      expect(put.status).toBeLessThan(300)
    }
    // Refused by the run's output cap (`RunOptions.outputCap`), which reads no byte of the
    // body, not by the response check after redaction ("body is over the cap"): the stall is
    // printed for the figures (1.6 s before the fix with 50 secrets), not asserted.
    expect(await once('50 secrets')).toEqual({
      status: 502,
      error: {
        code: 'invalid_response',
        message: `the micro-app's response is over the cap of ${5 * 1024 * 1024} bytes`,
      },
    })
  }, 300_000)
})
