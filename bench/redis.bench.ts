/**
 * Question: what does Redis mode cost, and what do two hosts on one Redis serve? The tiny echo
 * action through `POST /v1/apps/:id/invoke`, each server a `warden serve` child process (pool of
 * 1), autocannon from this process over loopback:
 *
 * - one host on local files (the baseline), one host on Redis, two hosts on one Redis (the
 *   load split over both, the figures summed);
 * - the p50 Redis adds to a run: the same `warden.run` in this process with local files and
 *   with Redis (tinybench medians), and the HTTP p50 at one connection.
 *
 * NB: this machine has 2 shared cores for the hosts, autocannon and Redis together; two hosts
 * cannot show their scaling here (see bench/README.md).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { openRedisConnection, openWarden, resolveHostConfig } from '../runtime/index.js'
import type { Warden } from '../runtime/index.js'
import { guestFile } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'Redis mode: HTTP invoke of a tiny action (servers pool 1, autocannon 8 conn.)'
const REDIS_URL = process.env.WARDEN_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const SECONDS = 8
const MAIN = fileURLToPath(new URL('../sdk/cli/main.ts', import.meta.url))

interface Load {
  rps: number
  p50Ms: number
  p99Ms: number
  non2xx: number
}

function load(url: string, token: string, connections: number): Promise<Load> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        method: 'POST',
        connections,
        duration: SECONDS,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: '{"input":"hello"}',
      },
      (error, result) => {
        if (error) {
          reject(error)
          return
        }
        resolve({
          rps: result.requests.average,
          p50Ms: result.latency.p50,
          p99Ms: result.latency.p99,
          non2xx: result.non2xx,
        })
      },
    )
  })
}

interface Server {
  url: string
  dataDir: string
  stop(): Promise<void>
}

async function startServer(env: Record<string, string>): Promise<Server> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-redis-'))
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), MAIN, 'serve', '--port', '0'],
    {
      env: {
        ...process.env,
        WARDEN_DATA_DIR: dataDir,
        WARDEN_POOL_SIZE: '1',
        WARDEN_RATE_LIMIT_TOKEN_RPS: '1000000',
        WARDEN_RATE_LIMIT_KEY_RPS: '1000000',
        // 8 connections on a pool of 1: let them queue rather than be refused.
        WARDEN_MAX_QUEUED_PER_APP: '64',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
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
    dataDir,
    async stop() {
      await new Promise((resolve) => {
        child.once('exit', resolve)
        child.kill('SIGTERM')
      })
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

// biome-ignore lint/suspicious/noExplicitAny: JSON answers of the API, read field by field
async function api(url: string, key: string, path: string, init: RequestInit): Promise<any> {
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

/** One invoke, awaited: the host has loaded the build (from Redis, on a second host). */
async function warm(url: string, token: string): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{"input":"hello"}',
  })
  if (!response.ok) {
    throw new Error(`warm-up: ${response.status} ${await response.text()}`)
  }
}

/** Upload the echo action on `url` and grant a token: the invoke path and the token. */
async function deploy(url: string, key: string, bytes: Uint8Array) {
  const query = new URLSearchParams({ name: 'echo', owner: 'bench', purpose: 'load' })
  const app = await api(url, key, `/v1/apps?${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/wasm' },
    body: Buffer.from(bytes) as unknown as BodyInit,
  })
  const { token } = await api(url, key, '/v1/tokens', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ app: app.id, grants: { log: true } }),
  })
  return { path: `/v1/apps/${app.id}/invoke`, token: token as string }
}

async function dropPrefix(prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL)
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) {
      await client.del(...keys)
    }
  } while (cursor !== '0')
  client.disconnect()
}

/** The in-process median of `warden.run` of the echo action, on files or on Redis. */
async function inProcess(redisPrefix: string | undefined): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-redis-run-'))
  const redis = redisPrefix
    ? await openRedisConnection({ url: REDIS_URL, prefix: redisPrefix })
    : undefined
  let warden: Warden | undefined
  try {
    warden = await openWarden({
      ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir, WARDEN_MASTER_KEY: MASTER }),
      poolSize: 1,
      ...(redis ? { redis } : {}),
    })
    const w = warden
    const app = await w.load(await guestFile('echo'))
    const { token } = await w.grantToken({
      appId: 'app-00000000000000b1',
      digest: app.digest,
      grants: { log: true },
      lifetimeSeconds: 3600,
    })
    await w.runtime.pool.warm()
    return (
      await medians({
        run: async () => {
          // As the control plane does: the barrier, then the run.
          await redis?.sync()
          await w.run(app, '"hello"', { token })
        },
      })
    ).run!
  } finally {
    await warden?.close()
    await redis?.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

const MASTER = randomBytes(32).toString('base64')

export async function run(): Promise<Row[]> {
  const echo = await guestFile('echo')
  const prefix = `warden-bench:${randomBytes(4).toString('hex')}:`
  const rows: Row[] = []
  try {
    // Alternated, twice: this machine's load drifts; the lower median of each is kept.
    const filesRounds: number[] = []
    const redisRounds: number[] = []
    for (let round = 0; round < 2; round++) {
      filesRounds.push(await inProcess(undefined))
      redisRounds.push(await inProcess(`${prefix}inproc${round}:`))
    }
    const filesUs = Math.min(...filesRounds)
    const redisUs = Math.min(...redisRounds)
    const rounds = (r: number[]) => `rounds ${r.map((v) => Math.round(v)).join(', ')} µs`
    rows.push(
      {
        question: QUESTION,
        name: 'warden.run in process, local files',
        medianUs: filesUs,
        note: rounds(filesRounds),
      },
      {
        question: QUESTION,
        name: 'warden.run in process, Redis',
        medianUs: redisUs,
        ratio: redisUs / filesUs,
        baseline: 'local files',
        note: `Redis adds ${Math.round(redisUs - filesUs)} µs to a run (p50); ${rounds(redisRounds)}`,
      },
    )

    const shared = { WARDEN_MASTER_KEY: MASTER }
    const redisEnv = { ...shared, WARDEN_REDIS_URL: REDIS_URL, WARDEN_REDIS_PREFIX: prefix }
    const measureOne = async (env: Record<string, string>) => {
      const server = await startServer(env)
      try {
        const key = (await readFile(join(server.dataDir, 'admin.key'), 'utf8')).trim()
        const { path, token } = await deploy(server.url, key, echo)
        await warm(server.url + path, token)
        await load(server.url + path, token, 8).catch(() => undefined)
        const busy = await load(server.url + path, token, 8)
        const single = await load(server.url + path, token, 1)
        return { busy, single }
      } finally {
        await server.stop()
      }
    }
    const local = await measureOne(shared)
    const oneRedis = await measureOne(redisEnv)
    await dropPrefix(prefix)

    // Two hosts on one Redis: deployed on A, the load split over A and B.
    const a = await startServer(redisEnv)
    const b = await startServer(redisEnv)
    let both: Load[]
    try {
      const key = (await readFile(join(a.dataDir, 'admin.key'), 'utf8')).trim()
      const { path, token } = await deploy(a.url, key, echo)
      await Promise.all([warm(a.url + path, token), warm(b.url + path, token)])
      await Promise.all([load(a.url + path, token, 4), load(b.url + path, token, 4)])
      both = await Promise.all([load(a.url + path, token, 4), load(b.url + path, token, 4)])
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
    const twoRps = both.reduce((sum, l) => sum + l.rps, 0)
    const note = (l: Load) => `${Math.round(l.rps)} req/s, p99 ${l.p99Ms} ms, ${l.non2xx} non-2xx`
    rows.push(
      {
        question: QUESTION,
        name: 'one host, local files: p50 (8 conn.)',
        medianUs: local.busy.p50Ms * 1000,
        note: note(local.busy),
      },
      {
        question: QUESTION,
        name: 'one host, Redis: p50 (8 conn.)',
        medianUs: oneRedis.busy.p50Ms * 1000,
        ratio: local.busy.rps / oneRedis.busy.rps,
        baseline: 'local files (ratio of req/s)',
        target: '≤ 1.5×',
        note: note(oneRedis.busy),
      },
      {
        question: QUESTION,
        name: 'two hosts, one Redis: p50 (4 + 4 conn.)',
        medianUs: Math.max(both[0]!.p50Ms, both[1]!.p50Ms) * 1000,
        ratio: twoRps / oneRedis.busy.rps,
        baseline: 'one host on Redis (ratio of req/s)',
        target: '≥ 1.6× with cores of their own',
        note: `${Math.round(twoRps)} req/s in all (${both.map((l) => Math.round(l.rps)).join(' + ')}), ${both[0]!.non2xx + both[1]!.non2xx} non-2xx`,
      },
      {
        question: QUESTION,
        name: 'one host, local files: p50 at 1 connection',
        medianUs: local.single.p50Ms * 1000,
        note: note(local.single),
      },
      {
        question: QUESTION,
        name: 'one host, Redis: p50 at 1 connection',
        medianUs: oneRedis.single.p50Ms * 1000,
        ratio: oneRedis.single.p50Ms / Math.max(local.single.p50Ms, 0.001),
        baseline: 'local files',
        note: note(oneRedis.single),
      },
    )
    return rows
  } finally {
    await dropPrefix(prefix)
  }
}
