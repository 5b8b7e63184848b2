/**
 * OpenTelemetry end to end (issue 12): a real OTLP/HTTP receiver on loopback (node:http,
 * `/v1/traces`, `/v1/metrics`, `/v1/logs`, JSON encoding via `OTEL_EXPORTER_OTLP_PROTOCOL`),
 * a real server started as `warden serve` starts it (the standard `OTEL_*` variables), a real
 * componentize-js app that fetches an upstream with a secret placeholder, signs with the secret,
 * tries data it was not granted and logs a line. After the server closes (which flushes), the
 * receiver holds the request → run → host-call spans with the right attributes and parents, the
 * `/metrics` figures as OTel metrics, the guest's line and the audit records as log records, and
 * nowhere the secret, the tokens, the API keys or the query string.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { adminKeyPath, startServer } from '../control-plane/index.js'
import type { RunningServer } from '../control-plane/index.js'
import { resolveHostConfig } from '../runtime/index.js'
import { buildJsGuest, PLATFORM_GUEST_WORLD } from './support/js-guest.js'

const SECRET = `sk-live-otel-${randomBytes(12).toString('hex')}`
const QUERY_SECRET = `qs-${randomBytes(12).toString('hex')}`
const INCOMING_TRACE = 'ab'.repeat(16)

// biome-ignore lint/suspicious/noExplicitAny: OTLP JSON, read field by field
type Json = any

/** What the receiver got, per path, as raw text. */
const received: Record<string, string[]> = {}
let receiver: Server
let upstream: Server
let upstreamPort: number
let dataDir: string
let server: RunningServer
let url: string
/** Every credential the test holds: none may reach the receiver. */
const credentials: string[] = []

async function api(
  method: string,
  path: string,
  options: {
    auth?: string
    json?: unknown
    body?: Uint8Array
    headers?: Record<string, string>
  } = {},
): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.auth !== undefined) {
    headers.authorization = `Bearer ${options.auth}`
  }
  let body: BodyInit | null = null
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(options.json)
  } else if (options.body !== undefined) {
    headers['content-type'] = 'application/wasm'
    body = Buffer.from(options.body) as unknown as BodyInit
  }
  const response = await fetch(`${url}${path}`, { method, headers, body })
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
}

function listen(handler: Parameters<typeof createServer>[1]): Promise<Server> {
  const s = createServer(handler)
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)))
}

/** An OTLP attribute list as a plain object. */
function attrs(list: Json[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const { key, value } of list ?? []) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue
    out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : v
  }
  return out
}

function bodies(path: string): Json[] {
  return (received[path] ?? []).map((text) => JSON.parse(text))
}

function allSpans(): Json[] {
  return bodies('/v1/traces').flatMap((b) =>
    b.resourceSpans.flatMap((r: Json) => r.scopeSpans.flatMap((s: Json) => s.spans)),
  )
}

function allMetrics(): Json[] {
  return bodies('/v1/metrics').flatMap((b) =>
    b.resourceMetrics.flatMap((r: Json) => r.scopeMetrics.flatMap((s: Json) => s.metrics)),
  )
}

function allLogs(): Json[] {
  return bodies('/v1/logs').flatMap((b) =>
    b.resourceLogs.flatMap((r: Json) => r.scopeLogs.flatMap((s: Json) => s.logRecords)),
  )
}

/** The data points of metric `name`, from every export (cumulative: the last one counts). */
function points(name: string): Json[] {
  const found = allMetrics().filter((m) => m.name === name)
  const last = found.at(-1)
  return last ? (last.sum ?? last.histogram ?? last.gauge).dataPoints : []
}

let appId: string
let invokeAnswer: Json
let fuelAnswer: Json

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
  upstream = await listen((req, res) => {
    res.setHeader('content-type', 'text/plain')
    // Echo the path, query and authorization: the secret comes back to the host (redacted for
    // the guest); the query reaches the guest's output. Neither may reach telemetry.
    res.end(`hello from ${req.url} auth=${req.headers.authorization ?? 'none'}`)
  })
  upstreamPort = (upstream.address() as AddressInfo).port
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`
  // The SDK reads the standard variables from the process environment, as in `warden serve`.
  vi.stubEnv('OTEL_EXPORTER_OTLP_ENDPOINT', endpoint)
  vi.stubEnv('OTEL_EXPORTER_OTLP_PROTOCOL', 'http/json')
  // Only the final flush exports metrics: one cumulative export, whatever the machine's speed.
  vi.stubEnv('OTEL_METRIC_EXPORT_INTERVAL', '600000')
  vi.stubEnv('OTEL_SERVICE_NAME', 'warden-under-test')

  const bytes = await buildJsGuest('platform', PLATFORM_GUEST_WORLD)
  dataDir = await mkdtemp(join(tmpdir(), 'warden-otel-'))
  const config = {
    ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }),
    poolSize: 1,
    // The 11.5 MiB componentize-js guest transpiles slowly on a loaded machine.
    transpileTimeoutMs: 240_000,
  }
  expect(config.otel.enabled).toBe(true)
  server = await startServer({ config, port: 0, host: '127.0.0.1' })
  url = server.url
  expect(server.warden.telemetry.enabled).toBe(true)
  const adminKey = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
  const secondAdmin = (
    await api('POST', '/v1/keys', { auth: adminKey, json: { role: 'admin', label: 'second' } })
  ).body.key as string
  credentials.push(adminKey, secondAdmin)

  expect(
    (await api('PUT', '/v1/secrets/api_key', { auth: adminKey, json: { value: SECRET } })).status,
  ).toBe(204)
  const uploaded = await api('POST', '/v1/apps?name=platform&owner=qa&purpose=telemetry', {
    auth: secondAdmin,
    body: bytes,
  })
  expect(uploaded.body).toMatchObject({ riskTier: 'high' })
  appId = uploaded.body.id
  const approved = await api('POST', `/v1/apps/platform/approve?digest=${uploaded.body.digest}`, {
    auth: adminKey,
  })
  expect(approved.body.status).toBe('approved')
  const origin = `http://127.0.0.1:${upstreamPort}`
  const grants = {
    http: [{ scheme: 'http', host: '127.0.0.1', port: upstreamPort, allowPrivate: true }],
    secrets: [{ name: 'api_key', hosts: [origin] }],
    log: true,
  }
  const granted = await api('POST', '/v1/tokens', {
    auth: adminKey,
    json: { app: 'platform', grants, ttlSeconds: 600 },
  })
  const token = granted.body.token as string
  const starved = (
    await api('POST', '/v1/tokens', {
      auth: adminKey,
      json: { app: 'platform', grants, limits: { fuel: 1000 }, ttlSeconds: 600 },
    })
  ).body.token as string
  credentials.push(token, starved)

  const input = { url: `${origin}/ok/js?sig=${QUERY_SECRET}` }
  invokeAnswer = await api('POST', '/v1/apps/platform/invoke', {
    auth: token,
    json: { input },
    headers: {
      traceparent: `00-${INCOMING_TRACE}-${'cd'.repeat(8)}-01`,
      tracestate: `vendor=${QUERY_SECRET}`,
    },
  })
  fuelAnswer = await api('POST', '/v1/apps/platform/invoke', { auth: starved, json: { input } })
  const forged = await api('POST', '/v1/apps/platform/invoke', {
    auth: `${token.slice(0, -4)}AAAA`,
    json: { input },
  })
  expect(forged.body.error.code).toBe('token_invalid')
  // A credential pasted into a path is masked there.
  await api('DELETE', `/v1/tokens/${token}`, { auth: adminKey })
  await server.close()
}, 300_000)

afterAll(async () => {
  vi.unstubAllEnvs()
  await server?.close()
  receiver?.close()
  upstream?.close()
  if (dataDir) {
    await rm(dataDir, { recursive: true, force: true })
  }
})

describe('OpenTelemetry over OTLP/HTTP', () => {
  it('ran the app as the test expects (the secret went upstream, the guest saw it redacted)', () => {
    expect(invokeAnswer.status).toBe(200)
    const out = invokeAnswer.body.output
    expect(out.http.ok.status).toBe(200)
    expect(out.http.ok.body).toBe(
      `hello from /ok/js?sig=${QUERY_SECRET} auth=Bearer [redacted:api_key]`,
    )
    expect(out.data.err.tag).toBe('denied')
    expect(fuelAnswer.body.error.code).toBe('fuel_exhausted')
  })

  it('sends a server span per request, a run span under it and host-call spans under that', () => {
    const spans = allSpans()
    const invokes = spans.filter((s) => s.name === 'POST /v1/apps/:id/invoke')
    expect(invokes).toHaveLength(3)
    const request = invokes.find((s) => attrs(s.attributes)['http.response.status_code'] === 200)
    expect(request.kind).toBe(2) // SERVER
    expect(request.parentSpanId ?? '').toBe('')
    expect(attrs(request.attributes)).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/apps/:id/invoke',
      'url.path': '/v1/apps/platform/invoke',
      'url.scheme': 'http',
    })
    // The client's trace context is a link, never the parent.
    expect(request.traceId).not.toBe(INCOMING_TRACE)
    expect(request.links.map((l: Json) => l.traceId)).toEqual([INCOMING_TRACE])

    const report = invokeAnswer.body.report
    const run = spans.find(
      (s) =>
        s.name === 'warden.run' &&
        attrs(s.attributes)['warden.invocation.id'] === report.invocationId,
    )
    expect(run).toMatchObject({ traceId: request.traceId, parentSpanId: request.spanId })
    expect(attrs(run.attributes)).toMatchObject({
      'warden.app.id': appId,
      'warden.app.digest': report.digest,
      'warden.outcome': 'ok',
      'warden.fuel.used': report.fuelUsed,
      'warden.egress_bytes': report.egressBytes,
    })
    expect(report.fuelUsed).toBeGreaterThan(0)

    const children = spans.filter((s) => s.parentSpanId === run.spanId)
    expect(children.every((s: Json) => s.traceId === run.traceId)).toBe(true)
    const byName = (name: string) => children.filter((s: Json) => s.name === name)
    const [fetch] = byName('GET')
    expect(fetch.kind).toBe(3) // CLIENT
    expect(attrs(fetch.attributes)).toMatchObject({
      'warden.app.id': appId,
      'warden.app.digest': report.digest,
      'warden.capability': 'warden:platform/http',
      'warden.op': 'fetch',
      'warden.decision': 'allow',
      'warden.host_call.side': 'broker',
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'server.address': '127.0.0.1',
      'server.port': upstreamPort,
      'url.scheme': 'http',
      'network.peer.address': '127.0.0.1',
      'warden.target_host': '127.0.0.1',
    })
    expect(attrs(fetch.attributes)['warden.bytes_out']).toBeGreaterThan(0)
    expect(Number(fetch.endTimeUnixNano)).toBeGreaterThan(Number(fetch.startTimeUnixNano))
    expect(attrs(byName('secrets.hmacSha256')[0].attributes)).toMatchObject({
      'warden.decision': 'allow',
      'warden.host_call.side': 'broker',
    })
    // Data was not granted: denied in the worker, an error span blaming the guest.
    const [denied] = byName('data.get')
    expect(denied.status.code).toBe(2) // ERROR
    expect(attrs(denied.attributes)).toMatchObject({
      'warden.decision': 'deny',
      'warden.reason': 'not granted',
      'warden.error.code': 'capability_denied',
      'warden.error.blame': 'guest',
      'warden.host_call.side': 'worker',
      'warden.app.id': appId,
    })
    expect(attrs(byName('log.write')[0].attributes)).toMatchObject({ 'warden.decision': 'allow' })
  })

  it('marks a failed run and a refused request with their code and who is to blame', () => {
    const spans = allSpans()
    const starved = spans.find(
      (s) =>
        s.name === 'warden.run' &&
        attrs(s.attributes)['warden.invocation.id'] === fuelAnswer.body.invocationId,
    )
    expect(starved.status.code).toBe(2)
    expect(attrs(starved.attributes)).toMatchObject({
      'warden.outcome': 'fuel_exhausted',
      'warden.error.code': 'fuel_exhausted',
      'warden.error.blame': 'guest',
      'error.type': 'fuel_exhausted',
    })
    const forged = spans.find(
      (s) =>
        s.name === 'POST /v1/apps/:id/invoke' &&
        attrs(s.attributes)['http.response.status_code'] === 401,
    )
    expect(attrs(forged.attributes)).toMatchObject({
      'warden.error.code': 'token_invalid',
      'warden.error.blame': 'guest',
    })
    // A 4xx is the client's: the server span's status stays unset.
    expect(forged.status.code ?? 0).toBe(0)
    expect(spans.some((s) => s.parentSpanId === forged.spanId)).toBe(false)
    const pasted = spans.find((s) => s.name === 'DELETE /v1/tokens/:jti')
    expect(attrs(pasted.attributes)['url.path']).toBe('/v1/tokens/[masked]')
  })

  it('exports the /metrics figures as OTel metrics', () => {
    const invoke = points('http.server.request.duration').filter(
      (p) => attrs(p.attributes)['http.route'] === '/v1/apps/:id/invoke',
    )
    expect(
      invoke.map((p) => [attrs(p.attributes)['http.response.status_code'], Number(p.count)]).sort(),
    ).toEqual([
      [200, 1],
      [401, 1],
      [422, 1],
    ])
    const runs = points('warden.runs').map((p) => [
      attrs(p.attributes)['warden.outcome'],
      Number(p.asInt ?? p.asDouble),
    ])
    expect(runs.sort()).toEqual([
      ['fuel_exhausted', 1],
      ['ok', 1],
    ])
    const calls = points('warden.host_calls').map((p) => attrs(p.attributes))
    expect(calls).toContainEqual({
      'warden.capability': 'warden:platform/http',
      'warden.decision': 'allow',
    })
    expect(calls).toContainEqual({
      'warden.capability': 'warden:platform/data',
      'warden.decision': 'deny',
    })
    expect(points('warden.run.fuel').reduce((n, p) => n + Number(p.count), 0)).toBe(2)
    expect(points('warden.run.duration').reduce((n, p) => n + Number(p.count), 0)).toBe(2)
    expect(
      Number(points('warden.pool.size')[0].asInt ?? points('warden.pool.size')[0].asDouble),
    ).toBe(1)
    expect(Number(points('warden.runs.in_flight')[0].asInt ?? 0)).toBe(0)
  })

  it('exports the guest log line in the run span and every audit record', () => {
    const logs = allLogs()
    const run = allSpans().find(
      (s) =>
        s.name === 'warden.run' &&
        attrs(s.attributes)['warden.invocation.id'] === invokeAnswer.body.invocationId,
    )
    const line = logs.find((l) => l.eventName === 'warden.guest.log')
    expect(line).toMatchObject({
      body: { stringValue: 'platform app done' },
      severityText: 'INFO',
      traceId: run.traceId,
      spanId: run.spanId,
    })
    expect(attrs(line.attributes)['warden.app.id']).toBe(appId)
    const audit = logs.filter((l) => l.eventName === 'warden.audit').map((l) => attrs(l.attributes))
    const seqs = audit.map((a) => a['warden.audit.seq'])
    // Every record, in order, each once: seq 1 … n.
    expect(seqs).toEqual(seqs.map((_, i) => i + 1))
    expect(audit).toContainEqual(
      expect.objectContaining({
        'warden.audit.kind': 'host-call',
        'warden.audit.capability': 'warden:platform/http',
        'warden.audit.op': 'fetch',
        'warden.audit.decision': 'allow',
        'warden.audit.invocationId': invokeAnswer.body.invocationId,
      }),
    )
    expect(audit).toContainEqual(
      expect.objectContaining({
        'warden.audit.op': 'secret.put',
        'warden.audit.target': 'api_key',
      }),
    )
    expect(audit).toContainEqual(
      expect.objectContaining({
        'warden.audit.kind': 'run',
        'warden.audit.reason': 'fuel_exhausted',
      }),
    )
  })

  it('sends nothing secret: no secret value, token, API key or query string, in any encoding', () => {
    const everything = Object.values(received).flat().join('\n')
    expect(everything.length).toBeGreaterThan(1000)
    expect(bodies('/v1/traces')[0].resourceSpans[0].resource.attributes).toContainEqual({
      key: 'service.name',
      value: { stringValue: 'warden-under-test' },
    })
    const forbidden = [SECRET, QUERY_SECRET, ...credentials]
    for (const value of forbidden) {
      for (const form of [
        value,
        Buffer.from(value).toString('base64'),
        Buffer.from(value).toString('base64url'),
        Buffer.from(value).toString('hex'),
        encodeURIComponent(value),
      ]) {
        expect(everything.includes(form), `${form.slice(0, 12)}… reached the receiver`).toBe(false)
      }
    }
    // The signature part of each token alone, too.
    for (const token of credentials.filter((c) => c.split('.').length === 3)) {
      expect(everything.includes(token.split('.')[2]!)).toBe(false)
    }
    expect(everything.includes('sig=')).toBe(false)
  })
})
