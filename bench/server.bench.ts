/**
 * Question: what does the HTTP API serve, and what does it add over `warden.invoke`? The
 * server runs as `warden serve` in a child process (pool of 2, default per-app shares);
 * autocannon loads `POST /v1/apps/:id/invoke` of a tiny action from this process over
 * loopback. Then the same with hostile traffic beside it: 10 % of requests, by count, to an
 * app that loops until its 100 ms deadline or grows memory until its cap. The in-process
 * median of the same run is measured first, in this process, as the floor.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { createRuntime } from '../runtime/index.js'
import { growForever, infiniteLoop } from '../test/support/guests.js'
import { compileWat, guestFile } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'HTTP invoke of a tiny action (server child, pool 2, autocannon 8 connections)'
const CONNECTIONS = 8
const SECONDS = 8

/** What autocannon measured. */
export interface Load {
  rps: number
  /** Requests answered in the run. */
  total: number
  p50Ms: number
  p99Ms: number
  non2xx: number
  /** The statuses of the answers that were not 2xx, with counts (`429×3 503×1`), or ''. */
  non2xxStatuses: string
}

/**
 * Load `url` for {@link SECONDS}: with a token, `POST {"input":"hello"}` as invoke takes it;
 * with `token` undefined, a plain GET (an HTTP micro-app).
 */
export function load(
  url: string,
  token: string | undefined,
  options: { connections: number; overallRate?: number },
): Promise<Load> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections: options.connections,
        duration: SECONDS,
        ...(token === undefined
          ? { method: 'GET' }
          : {
              method: 'POST',
              headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
              body: '{"input":"hello"}',
            }),
        ...(options.overallRate ? { overallRate: options.overallRate } : {}),
      },
      (error, result) => {
        if (error) {
          reject(error)
          return
        }
        resolve({
          rps: result.requests.average,
          total: result.requests.total,
          p50Ms: result.latency.p50,
          p99Ms: result.latency.p99,
          non2xx: result.non2xx,
          non2xxStatuses: Object.entries(
            (result as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ??
              {},
          )
            .filter(([status]) => !status.startsWith('2'))
            .map(([status, { count }]) => `${status}×${count}`)
            .join(' '),
        })
      },
    )
  })
}

/** A `warden serve` child process. */
export interface ServerProcess {
  url: string
  /** Its process id (for {@link processCpuMs}). */
  pid: number
  stop: () => Promise<void>
}

/**
 * `warden serve` (from dist/) in a child process on `dataDir`, pool of 2, rate limits raised.
 * With `cpu`, pinned to that CPU (`taskset -c`, which execs: the pid is the server's);
 * `nodeArgs` go to node before the script (`--cpu-prof`); with `checkout`, the build in that
 * directory's `dist/` instead of this tree's (`server-pair.ts`).
 */
export async function startServer(
  dataDir: string,
  env: Record<string, string> = {},
  options: { cpu?: number; nodeArgs?: readonly string[]; checkout?: string } = {},
): Promise<ServerProcess> {
  const main =
    options.checkout === undefined
      ? fileURLToPath(new URL('../dist/sdk/cli/main.js', import.meta.url))
      : resolvePath(options.checkout, 'dist/sdk/cli/main.js')
  const argv = [...(options.nodeArgs ?? []), main, 'serve', '--port', '0']
  const [command, args] =
    options.cpu === undefined
      ? [process.execPath, argv]
      : [TASKSET, ['-c', String(options.cpu), process.execPath, ...argv]]
  const child = spawn(command, args, {
    env: {
      ...process.env,
      WARDEN_DATA_DIR: dataDir,
      WARDEN_POOL_SIZE: '2',
      WARDEN_RATE_LIMIT_TOKEN_RPS: '1000000',
      WARDEN_RATE_LIMIT_KEY_RPS: '1000000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /listening on (http:\/\/\S+)/.exec(out)
      if (match) {
        resolve(match[1]!)
      }
    })
    child.once('exit', (code) => reject(new Error(`warden serve exited with ${code}`)))
  })
  return {
    url,
    pid: child.pid!,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

/** Where `taskset` is (util-linux), for pinned servers. */
export const TASKSET = '/usr/bin/taskset'

/** A JSON call of the API with `key`; throws on an error answer. */
// biome-ignore lint/suspicious/noExplicitAny: JSON answers of the API, read field by field
export async function api(url: string, key: string, path: string, init: RequestInit): Promise<any> {
  const response = await fetch(`${url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) },
  })
  const body = await response.json()
  if (!response.ok) {
    throw new Error(`${path}: ${JSON.stringify(body)}`)
  }
  return body
}

/** Upload `bytes` as app `name` and grant a token: the invoke URL and the token. */
export async function deploy(
  url: string,
  key: string,
  name: string,
  bytes: Uint8Array,
  grants: object,
) {
  const query = new URLSearchParams({ name, owner: 'bench', purpose: 'load' })
  const app = await api(url, key, `/v1/apps?${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/wasm' },
    body: Buffer.from(bytes) as unknown as BodyInit,
  })
  const { token } = await api(url, key, '/v1/tokens', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ app: app.id, ...grants }),
  })
  return { invoke: `${url}/v1/apps/${app.id}/invoke`, token: token as string }
}

export async function run(): Promise<Row[]> {
  const echo = await guestFile('echo')
  // The floor: the same run in process, through the runtime alone.
  const floorDir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  const runtime = await createRuntime({ dataDir: floorDir, poolSize: 2 })
  let floorUs: number
  try {
    const app = await runtime.load(echo)
    await runtime.pool.warm()
    floorUs = (
      await medians({
        invoke: async () => {
          await runtime.invoke(app, '"hello"', { interfaces: ['warden:platform/log'] })
        },
      })
    ).invoke!
  } finally {
    await runtime.close()
    await rm(floorDir, { recursive: true, force: true })
  }

  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-server-'))
  const server = await startServer(dataDir)
  try {
    const key = (await readFile(join(dataDir, 'admin.key'), 'utf8')).trim()
    const benign = await deploy(server.url, key, 'echo', echo, { grants: { log: true } })
    const loop = await deploy(server.url, key, 'loop', await compileWat(infiniteLoop), {
      limits: { fuel: 1e12, timeoutMs: 100 },
    })
    const bomb = await deploy(server.url, key, 'bomb', await compileWat(growForever), {
      limits: { memoryMb: 64 },
    })
    // Warm up the connection pool and the workers.
    await load(benign.invoke, benign.token, { connections: CONNECTIONS }).catch(() => undefined)
    const quiet = await load(benign.invoke, benign.token, { connections: CONNECTIONS })
    // Hostile: a tenth of the benign request count, half loops and half memory bombs.
    const hostileRate = Math.max(2, Math.round(quiet.rps / 9 / 2))
    const [mixed, loops, bombs] = await Promise.all([
      load(benign.invoke, benign.token, { connections: CONNECTIONS }),
      load(loop.invoke, loop.token, { connections: 4, overallRate: hostileRate }),
      load(bomb.invoke, bomb.token, { connections: 4, overallRate: hostileRate }),
    ])
    const note = (l: Load) =>
      `${Math.round(l.rps)} req/s, p99 ${l.p99Ms} ms, ${l.non2xx} non-2xx${l.non2xxStatuses ? ` (${l.non2xxStatuses})` : ''}`
    return [
      { question: QUESTION, name: 'warden.invoke in process (floor, median)', medianUs: floorUs },
      {
        question: QUESTION,
        name: 'server, quiet: p50',
        medianUs: quiet.p50Ms * 1000,
        ratio: (quiet.p50Ms * 1000) / floorUs,
        baseline: 'in process',
        target: '≥ 3,000 req/s',
        note: note(quiet),
      },
      {
        question: QUESTION,
        name: 'server, 10 % hostile beside: benign p50',
        medianUs: mixed.p50Ms * 1000,
        ratio: mixed.p99Ms / Math.max(quiet.p99Ms, 0.001),
        baseline: 'quiet p99 (ratio of p99s)',
        target: 'benign p99 ≤ 2× quiet',
        note: `${note(mixed)}; hostile: ${Math.round(loops.rps + bombs.rps)} req/s, ${loops.non2xx + bombs.non2xx} refused or failed (by design)`,
      },
    ]
  } finally {
    await server.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}
