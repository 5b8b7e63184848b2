/**
 * The agent-script example against a real server and two loopback upstreams: the agent holds
 * a token for two hosts and two secrets, attenuates it for a sub-task (one host, one secret,
 * less fuel) and runs code under the child. The code does its job; everything past the child's
 * grant is refused to it; the child dies with its parent.
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenApiError, WardenClient } from '../../sdk/client/index.js'
import { startTestServer } from '../../test/support/server.js'
import type { TestServer } from '../../test/support/server.js'
import { runSubTask, subTaskGrants } from './agent.js'

const LABELS_KEY = 'labels-secret-1234567890'
const BILLING_KEY = 'billing-secret-0987654321'

let host: TestServer
let admin: WardenClient
let agent: WardenClient
let parentToken: string
const upstreams: Server[] = []
let labels: string
let billing: string
const seen: { origin: string; authorization: string | undefined }[] = []

async function upstream(name: string, body: unknown): Promise<string> {
  const server = createServer((req, res) => {
    seen.push({ origin: name, authorization: req.headers.authorization })
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(req.headers.authorization ? body : { error: 'unauthorized' }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  upstreams.push(server)
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

beforeAll(async () => {
  labels = await upstream('labels', [{ name: 'bug' }, { name: 'docs' }])
  billing = await upstream('billing', { balance: 1000 })
  host = await startTestServer('warden-agent-script-', { agent: true })
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
  await admin.secrets.set('labels_key', LABELS_KEY)
  await admin.secrets.set('billing_key', BILLING_KEY)
  // What an admin grants the agent: both services, both secrets, generous fuel.
  const both = [labels, billing].map((origin) => subTaskGrants({ origin, fuel: 0, source: '' }))
  const minted = await admin.grantToken({
    app: 'js',
    grants: {
      http: both.flatMap((g) => g.http),
      secrets: [
        { name: 'labels_key', hosts: [labels] },
        { name: 'billing_key', hosts: [billing] },
      ],
      log: true,
    },
    limits: { fuel: 1e10 },
    ttlSeconds: 600,
  })
  parentToken = minted.token
  agent = new WardenClient({ server: host.server.url, token: parentToken })
})

afterAll(async () => {
  await host?.close()
  await Promise.all(upstreams.map((s) => new Promise((resolve) => s.close(resolve))))
})

const fetchLabels = `
  const r = await warden.fetch(input.url, { headers: { authorization: 'Bearer {{secret:labels_key}}' } })
  const names = (await r.json()).map((l) => l.name)
  warden.log('labels', names.length)
  return names`

describe('examples/agent-script', () => {
  it('runs a sub-task under a child token with one host, one secret and less fuel', async () => {
    const result = await runSubTask(agent, parentToken, {
      origin: labels,
      secret: 'labels_key',
      fuel: 1e9,
      source: fetchLabels,
      input: { url: `${labels}/repos/o/r/labels` },
    })
    expect(result.output).toEqual(['bug', 'docs'])
    expect(result.logs).toEqual([{ level: 'info', message: 'labels 2' }])
    expect(result.report.fuelLimit).toBe(1e9)
    expect(seen.at(-1)).toEqual({ origin: 'labels', authorization: `Bearer ${LABELS_KEY}` })
    expect(JSON.stringify(result)).not.toContain(LABELS_KEY)
  })

  it('refuses the sub-task the other host and the other secret', async () => {
    const before = seen.length
    const result = await runSubTask(agent, parentToken, {
      origin: labels,
      secret: 'labels_key',
      fuel: 1e9,
      source: `
        const tries = []
        for (const [url, secret] of input) {
          try {
            await warden.fetch(url, { headers: { authorization: 'Bearer {{secret:' + secret + '}}' } })
            tries.push('sent')
          } catch (e) { tries.push(e.kind) }
        }
        return tries`,
      input: [
        [`${billing}/balance`, 'billing_key'],
        [`${labels}/repos/o/r/labels`, 'billing_key'],
      ],
    })
    expect(result.output).toEqual(['denied', 'denied'])
    expect(seen.length).toBe(before)
  })

  it('cannot widen its grant, and dies with its parent', async () => {
    const wider = await agent
      .attenuateToken({ grants: { http: [{ host: 'example.com' }] } }, parentToken)
      .catch((e: unknown) => e)
    expect((wider as WardenApiError).code).toBe('forbidden')
    const child = await agent.attenuateToken(
      { grants: subTaskGrants({ origin: labels, fuel: 1e8, source: '' }), limits: { fuel: 1e8 } },
      parentToken,
    )
    const entry = (await admin.listTokens('js')).find((t) => !t.parent)!
    await admin.revokeToken(entry.jti)
    const refused = await agent.runJs('return 1', undefined, child.token).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(WardenApiError)
    expect((refused as WardenApiError).code).toBe('token_revoked')
  })
})
