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
 * Timing is inherent: with 50 secrets stored, the test asserts the main thread's longest stall
 * during one such request stays under 400 ms (observed well over a second; the same request
 * with no secret stored stalls it ~150 ms, which is itself the copy of an over-cap body).
 */
import { readFile } from 'node:fs/promises'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'

const BODY_MIB = 56

async function bigBodyWat(): Promise<string> {
  const hello = await readFile(
    new URL('../../examples/hello-http/hello-http.wat', import.meta.url),
    'utf8',
  )
  const start = hello.indexOf('    (func (export "warden:platform/handler@0.1.0#handle")')
  const end = hello.indexOf('  (core instance $main-i (instantiate $main))')
  const handle = `    (func (export "warden:platform/handler@0.1.0#handle")
      (param $mp i32) (param $ml i32) (param $pp i32) (param $pl i32) (param $qp i32) (param $ql i32)
      (param $hp i32) (param $hl i32) (param $bp i32) (param $bl i32) (result i32)
      (local $body i32)
      (local.set $body (call $alloc (i32.const 1) (i32.const ${BODY_MIB * 1024 * 1024})))
      (memory.fill (local.get $body) (i32.const 97) (i32.const ${BODY_MIB * 1024 * 1024}))
      (i32.store16 (i32.const 128) (i32.const 200))
      (i32.store (i32.const 132) (i32.const 0))
      (i32.store (i32.const 136) (i32.const 0))
      (i32.store (i32.const 140) (local.get $body))
      (i32.store (i32.const 144) (i32.const ${BODY_MIB * 1024 * 1024}))
      (i32.const 128)))
`
  return hello.slice(0, start) + handle + hello.slice(end)
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
  return stall.max / 1e6
}

describe('a micro-app body over the cap', () => {
  it('is refused before the main thread redacts it', async () => {
    await once('no secrets')
    await once('no secrets')
    for (let i = 0; i < 50; i++) {
      const put = await admin('PUT', `/v1/secrets/api_key_${i}`, {
        value: `sk-live-${i}-${'x'.repeat(24)}${i}`,
      })
      expect(put.status).toBeLessThan(300)
    }
    const worst = Math.max(await once('50 secrets'), await once('50 secrets'))
    expect(worst).toBeLessThan(400)
  }, 300_000)
})
