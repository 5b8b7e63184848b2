/**
 * Attack 13: data keys reach the OpenTelemetry collector.
 *
 * docs/telemetry.md, "Attributes": "Never recorded: secret values …, the paths of egress URLs,
 * data keys and run inputs or outputs." A data key often names a person
 * (`contacts/alice@example.com`): it is what the PII rules of the data store are about. Yet the
 * request span's `url.path` is the path as sent, with only credential-shaped segments masked, so
 * `PUT /v1/data/crm/contacts%2Falice%40example.com` exports the key as an attribute; and the
 * audit record of the write (and of a guest's `data.get`) carries the key as its `target`, which
 * the `warden.audit` log record exports as `warden.audit.target`.
 *
 * What this checks: after an admin writes, reads and deletes a document, nothing the receiver got
 * contains the key, in plain or percent-encoded form.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { adminKeyPath, startServer } from '../../control-plane/index.js'
import type { RunningServer } from '../../control-plane/index.js'
import { resolveHostConfig } from '../../runtime/index.js'

const KEY_PLAIN = 'contacts/alice.liddell@example.com'
const KEY_SENT = encodeURIComponent(KEY_PLAIN)

const received: Record<string, string[]> = {}
let receiver: Server
let dataDir: string
let server: RunningServer | undefined
let admin: string

function listen(handler: Parameters<typeof createServer>[1]): Promise<Server> {
  const s = createServer(handler)
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)))
}

beforeAll(async () => {
  receiver = await listen((req, res) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => {
      text += chunk
    })
    req.on('end', () => {
      ;(received[req.url ?? ''] ??= []).push(text)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
  vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', endpoint)
  vi.stubEnv('OTEL_EXPORTER_OTLP_PROTOCOL', 'http/json')
  vi.stubEnv('OTEL_METRIC_EXPORT_INTERVAL', '600000')
  dataDir = await mkdtemp(join(tmpdir(), 'warden-a13-otel-'))
  const config = {
    ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }),
    poolSize: 1,
  }
  server = await startServer({ config, port: 0, host: '127.0.0.1', log: () => {} })
  admin = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
}, 120_000)

afterAll(async () => {
  await server?.close()
  vi.unstubAllEnvs()
  await new Promise((r) => receiver?.close(r))
  await rm(dataDir, { recursive: true, force: true })
})

async function api(method: string, path: string, json?: unknown): Promise<number> {
  const response = await fetch(`${server!.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${admin}`,
      ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: json !== undefined ? JSON.stringify(json) : null,
  })
  await response.text()
  return response.status
}

describe('data keys and telemetry', () => {
  it('no data key reaches the collector', async () => {
    expect(await api('PUT', `/v1/data/crm/${KEY_SENT}`, { value: { name: 'Alice' } })).toBe(204)
    expect(await api('GET', `/v1/data/crm/${KEY_SENT}`)).toBe(200)
    expect(await api('DELETE', `/v1/data/crm/${KEY_SENT}`)).toBe(200)
    // Closing flushes every span and log record.
    await server!.close()
    server = undefined
    const all = Object.values(received).flat().join('\n')
    expect(all.length).toBeGreaterThan(0)
    const leaks = [
      KEY_PLAIN,
      KEY_SENT,
      'alice.liddell@example.com',
      'alice.liddell%40example.com',
    ].filter((form) => all.includes(form))
    const where = Object.entries(received)
      .filter(([, texts]) => texts.some((t) => leaks.some((l) => t.includes(l))))
      .map(([path]) => path)
    console.log(`key forms found: ${JSON.stringify(leaks)} in ${JSON.stringify(where)}`)
    for (const text of Object.values(received).flat()) {
      const m = text.match(/.{0,80}alice\.liddell.{0,40}/)
      if (m) console.log(`  e.g. …${m[0]}…`)
    }
    expect(leaks).toEqual([])
  }, 60_000)
})
