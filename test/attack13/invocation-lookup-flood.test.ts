/**
 * Attack 13: in Redis mode, a token's lookups of its own invocation held the host's main thread.
 *
 * `GET /v1/invocations/:id` with the token that ran it answers every audit record of the run.
 * A run may leave one record per distinct host-call target (bounded by its `hostCalls`, 1,000
 * by default), so a `js` token with a data grant made one run of 990 `data.get`s of distinct
 * keys (~70 ms) and then asked for it again and again. In Redis mode each lookup was a `ZRANGE`
 * and two `EVAL`s fetching 500 stream entries, ~300 KB of replies parsed, 991 `JSON.parse`s and
 * a ~300 KB answer, all on the host's main thread: ~12 ms each. The token family's budget counts
 * requests (500 a second), not records: one client with 32 connections (~81 lookups a second)
 * made another tenant's `return 1` run go from 9–15 ms to 245–280 ms (×20).
 *
 * Fixed: a finished run's answer to the token that ran it is kept (by invocation id, 32 MiB at
 * most, least recently asked first out), so asking again reads nothing. What this checks,
 * without timing anything: repeated lookups by the token read the audit log once; another
 * token still gets `not_found`; an admin's lookup still reads the log. And, since the
 * fourteenth round, the token's answer leaves out its host calls' targets and reasons.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'
import { guestFile } from '../support/wat.js'

let host: TestServer
beforeAll(async () => {
  host = await startTestServer('warden-a13-lookups-')
})
afterAll(async () => {
  await host?.close()
})

async function api(method: string, path: string, auth: string, json?: unknown) {
  const r = await fetch(`${host.server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${auth}`,
      ...(json === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: json === undefined ? null : JSON.stringify(json),
  })
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers
  return { status: r.status, body: (await r.json()) as any }
}

describe("a token's lookups of its own run", () => {
  it('read the audit log once, however often they come', async () => {
    const query = new URLSearchParams({ name: 'echo', owner: 'a13', purpose: 'attack' })
    const upload = await fetch(`${host.server.url}/v1/apps?${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${host.adminKey}`, 'content-type': 'application/wasm' },
      body: Buffer.from(await guestFile('echo')) as unknown as BodyInit,
    })
    expect(upload.status).toBe(201)
    const grant = async () =>
      (await api('POST', '/v1/tokens', host.adminKey, { app: 'echo', grants: { log: true } })).body
        .token as string
    const token = await grant()
    const other = await grant()
    const run = await api('POST', '/v1/apps/echo/invoke', token, { input: 'hi' })
    expect(run.status).toBe(200)
    const id = run.body.report.invocationId as string

    const audit = host.server.warden.audit
    const read = audit.read.bind(audit)
    let reads = 0
    audit.read = (query) => {
      reads++
      return read(query)
    }
    const answers = []
    for (let i = 0; i < 20; i++) {
      answers.push(await api('GET', `/v1/invocations/${id}`, token))
    }
    expect(answers.every((a) => a.status === 200)).toBe(true)
    expect(answers[19]!.body).toEqual(answers[0]!.body)
    expect(answers[0]!.body.records.some((r: { kind: string }) => r.kind === 'run')).toBe(true)
    expect(reads).toBe(1)
    // Another token learns nothing, kept or not; an admin reads the log as before.
    expect((await api('GET', `/v1/invocations/${id}`, other)).status).toBe(404)
    const asAdmin = await api('GET', `/v1/invocations/${id}`, host.adminKey)
    expect(asAdmin.status).toBe(200)
    expect(reads).toBe(2)
    // The token sees its host calls without their targets and reasons, which the log cleans of
    // every stored secret (an oracle: fourteenth outside attack); an admin sees them.
    const calls = (body: { records: { kind: string; target: unknown }[] }) =>
      body.records.filter((r) => r.kind === 'host-call')
    expect(calls(asAdmin.body).some((r) => r.target !== null)).toBe(true)
    expect(calls(answers[0]!.body)).toHaveLength(calls(asAdmin.body).length)
    expect(calls(answers[0]!.body).every((r) => r.target === null)).toBe(true)
  })
})
