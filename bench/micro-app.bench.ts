/**
 * Question: how many requests a second does an HTTP micro-app serve through `/apps/<name>/`
 * (issue 10: WAT ≥ 3,000 req/s, componentize-js ≥ 500 req/s)? `warden serve` runs in a child
 * process (pool of 2, default per-app share, which lets a lone app borrow the second worker;
 * rate limits raised); autocannon sends `GET /apps/<name>/` from this process over loopback,
 * 8 connections, 8 s, after a warm-up.
 * With each load, the server's CPU per request (every thread of its process, from `/proc`):
 * what req/s comes to when the machine is shared.
 * Baselines in the same run: each app's in-process floor (`runtime.call` of its handler, fresh
 * instance, no HTTP, no token), and `POST /v1/apps/:id/invoke` of the echo action (one log call)
 * on the same server, the API's own figure (bench/server.bench.ts). Last, what the route itself
 * costs: one request at a time to a server in this process, `GET /apps/hello-wat/` against
 * `POST /v1/apps/:id/invoke` of the echo action, medians from tinybench.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { adminKeyPath, startServer as startInProcess } from '../control-plane/index.js'
import { createRuntime, DEFAULT_TRANSPILE_BUDGET, resolveHostConfig } from '../runtime/index.js'
import type { WardenRuntime } from '../runtime/index.js'
import { buildJsGuest, JS_MICRO_APP_WORLD } from '../test/support/js-guest.js'
import { compileWat, guestFile } from '../test/support/wat.js'
import { api, load, startServer } from './server.bench.js'
import type { Load } from './server.bench.js'
import { load1, medians, processCpuMs } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'HTTP micro-app through /apps/<name>/ (server child, pool 2, 8 connections)'
const CONNECTIONS = 8

const REQUEST = { method: 'GET', path: '/', query: '', headers: [], body: new Uint8Array() }

async function builds(): Promise<{ wat: Uint8Array; js: Uint8Array }> {
  const example = new URL('../examples/hello-http/', import.meta.url)
  const [wat, js] = await Promise.all([
    readFile(new URL('hello-http.wat', example), 'utf8').then(compileWat),
    buildJsGuest('hello-http', JS_MICRO_APP_WORLD, new URL('hello-http.js', example)),
  ])
  return { wat, js }
}

/** The floor: each handler called in process, a fresh instance per call. */
async function floors(apps: { wat: Uint8Array; js: Uint8Array }) {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  let runtime: WardenRuntime | undefined
  try {
    runtime = await createRuntime({
      dataDir,
      poolSize: 2,
      transpileBudget: { ...DEFAULT_TRANSPILE_BUDGET, timeoutMs: 300_000 },
    })
    const rt = runtime
    const [wat, js] = await Promise.all([rt.load(apps.wat), rt.load(apps.js)])
    await rt.pool.warm()
    return await medians({
      wat: async () => {
        await rt.call(wat, 'handler.handle', [REQUEST])
      },
      js: async () => {
        await rt.call(js, 'handler.handle', [REQUEST])
      },
    })
  } finally {
    await runtime?.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** A load with the server's CPU per request (ms, every thread), when `/proc` tells. */
type Served = Load & { cpuMs?: number }

/** Both apps and the echo action behind one server; each loaded in turn. */
async function served(apps: {
  wat: Uint8Array
  js: Uint8Array
}): Promise<{ wat: Served; js: Served; invoke: Served }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-micro-'))
  const server = await startServer(dataDir, { WARDEN_TRANSPILE_TIMEOUT_MS: '300000' })
  const measured = async (url: string, token: string | undefined): Promise<Served> => {
    const before = processCpuMs(server.pid)
    const result = await load(url, token, { connections: CONNECTIONS })
    const after = processCpuMs(server.pid)
    return before === undefined || after === undefined || result.total === 0
      ? result
      : { ...result, cpuMs: (after - before) / result.total }
  }
  try {
    const key = (await readFile(join(dataDir, 'admin.key'), 'utf8')).trim()
    const query = new URLSearchParams({ name: 'echo', owner: 'bench', purpose: 'baseline' })
    const echo = await api(server.url, key, `/v1/apps?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/wasm' },
      body: Buffer.from(await guestFile('echo')) as unknown as BodyInit,
    })
    const { token } = await api(server.url, key, '/v1/tokens', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ app: echo.id, grants: { log: true } }),
    })
    const invokeUrl = `${server.url}/v1/apps/${echo.id}/invoke`
    await load(invokeUrl, token, { connections: CONNECTIONS }) // warm-up
    const invoke = await measured(invokeUrl, token)
    const urls: Record<string, string> = {}
    for (const [name, bytes] of Object.entries(apps)) {
      const query = new URLSearchParams({ name: `hello-${name}`, owner: 'bench', purpose: 'load' })
      await api(server.url, key, `/v1/apps?${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/wasm' },
        body: Buffer.from(bytes) as unknown as BodyInit,
      })
      const route = await api(server.url, key, `/v1/apps/hello-${name}/route`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      })
      urls[name] = `${server.url}${route.path}`
    }
    const out: Record<string, Served> = {}
    for (const name of ['wat', 'js']) {
      await load(urls[name]!, undefined, { connections: CONNECTIONS }) // warm-up
      out[name] = await measured(urls[name]!, undefined)
    }
    return { wat: out.wat!, js: out.js!, invoke }
  } finally {
    await server.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** One request at a time, same in-process server: the route against invoke, medians in µs. */
async function overhead(wat: Uint8Array): Promise<{ route: number; invoke: number }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-route-'))
  const config = {
    ...resolveHostConfig({
      WARDEN_DATA_DIR: dataDir,
      WARDEN_RATE_LIMIT_TOKEN_RPS: '1000000',
      WARDEN_RATE_LIMIT_KEY_RPS: '1000000',
    }),
    poolSize: 2,
  }
  const server = await startInProcess({ config, port: 0, host: '127.0.0.1' })
  try {
    const key = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
    const upload = (name: string, bytes: Uint8Array) =>
      api(server.url, key, `/v1/apps?name=${name}&owner=bench&purpose=overhead`, {
        method: 'POST',
        headers: { 'content-type': 'application/wasm' },
        body: Buffer.from(bytes) as unknown as BodyInit,
      })
    const echo = await upload('echo', await guestFile('echo'))
    await upload('hello-wat', wat)
    await api(server.url, key, '/v1/apps/hello-wat/route', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
    const { token } = await api(server.url, key, '/v1/tokens', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ app: echo.id, grants: { log: true } }),
    })
    const route = `${server.url}/apps/hello-wat/`
    const invoke = `${server.url}/v1/apps/${echo.id}/invoke`
    const check = async (response: Response) => {
      await response.arrayBuffer()
      if (!response.ok) {
        throw new Error(`${response.url}: ${response.status}`)
      }
    }
    return (await medians({
      route: async () => check(await fetch(route)),
      invoke: async () =>
        check(
          await fetch(invoke, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: '{"input":"hello"}',
          }),
        ),
    })) as { route: number; invoke: number }
  } finally {
    await server.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

export async function run(): Promise<Row[]> {
  const apps = await builds()
  const floor = await floors(apps)
  const before = load1()
  const figures = await served(apps)
  const loadavg = `load ${before} → ${load1()}`
  const note = (l: Served) =>
    `${Math.round(l.rps)} req/s, p99 ${l.p99Ms} ms, ${l.non2xx} non-2xx` +
    (l.non2xxStatuses ? ` (${l.non2xxStatuses})` : '') +
    `${l.cpuMs === undefined ? '' : `, server CPU ${l.cpuMs.toFixed(2)} ms/request`}; ${loadavg}`
  const rows: Row[] = [
    {
      question: QUESTION,
      name: 'invoke of the echo action, same server: p50 (baseline)',
      medianUs: figures.invoke.p50Ms * 1000,
      note: note(figures.invoke),
    },
  ]
  for (const [name, target] of [
    ['wat', '≥ 3,000 req/s'],
    ['js', '≥ 500 req/s'],
  ] as const) {
    rows.push(
      {
        question: QUESTION,
        name: `${name}: runtime.call in process (floor, median)`,
        medianUs: floor[name]!,
      },
      {
        question: QUESTION,
        name: `${name}: GET /apps/hello-${name}/: p50`,
        medianUs: figures[name].p50Ms * 1000,
        ratio: figures[name].rps / figures.invoke.rps,
        baseline: 'req/s of invoke (ratio of req/s)',
        target,
        note: note(figures[name]),
      },
    )
  }
  const before2 = load1()
  const cost = await overhead(apps.wat)
  rows.push(
    {
      question: QUESTION,
      name: 'one at a time, in-process server: invoke of echo (median)',
      medianUs: cost.invoke,
      note: `load ${before2} → ${load1()}`,
    },
    {
      question: QUESTION,
      name: 'one at a time, in-process server: GET /apps/hello-wat/ (median)',
      medianUs: cost.route,
      ratio: cost.route / cost.invoke,
      baseline: 'invoke of echo',
      note: `load ${before2} → ${load1()}`,
    },
  )
  return rows
}
