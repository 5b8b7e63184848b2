/**
 * Redis-mode test support: the Redis at 127.0.0.1:6379 (required: a test that cannot reach it
 * fails), a fresh key prefix per test file and its clean-up, Warden hosts as child processes
 * (`warden serve`), and a TCP proxy the test can cut.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, type Server, type Socket, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest'
import { openRedisConnection } from '../../runtime/redis/index.js'
import type { RedisConnection } from '../../runtime/redis/index.js'

export const REDIS_URL = 'redis://127.0.0.1:6379'

/** A client for the test itself; rejects (the test fails) when Redis is not there. */
export async function testRedis(): Promise<Redis> {
  const client = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  client.on('error', () => undefined)
  await client.connect()
  return client
}

/** A prefix no other test uses. */
export function freshPrefix(): string {
  return `warden-test:${randomBytes(6).toString('hex')}:`
}

/** Delete every key under `prefix`. */
export async function dropPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) {
      await client.del(...keys)
    }
  } while (cursor !== '0')
}

/** What {@link perTestPrefix} gives each test. */
export interface PerTest {
  /** The test's own client (not a host's). */
  readonly redis: Redis
  /** This test's key prefix. */
  readonly prefix: string
  /** This test's scratch directory. */
  readonly dir: string
  /** A host's connection on this test's prefix, closed after the test. */
  host(url?: string): Promise<RedisConnection>
  /** Close `item` after the test, before the connections (an audit log's last checkpoint). */
  closeAfter(item: { close(): Promise<void> }): void
}

/**
 * The hooks of a test file whose tests each get a fresh prefix and scratch directory: the
 * test's client, and after each test its logs and connections closed, its keys and directory
 * dropped.
 */
export function perTestPrefix(tag: string): PerTest {
  let redis: Redis | undefined
  let prefix = ''
  let dir = ''
  const logs: { close(): Promise<void> }[] = []
  const connections: RedisConnection[] = []
  beforeAll(async () => {
    redis = await testRedis()
  })
  afterAll(() => {
    redis?.disconnect()
  })
  beforeEach(async () => {
    prefix = freshPrefix()
    dir = await mkdtemp(join(tmpdir(), `warden-redis-${tag}-`))
  })
  afterEach(async () => {
    for (const log of logs.splice(0)) {
      await log.close()
    }
    await Promise.all(connections.splice(0).map((c) => c.close()))
    await dropPrefix(redis!, prefix)
    await rm(dir, { recursive: true, force: true })
  })
  return {
    get redis() {
      return redis!
    },
    get prefix() {
      return prefix
    },
    get dir() {
      return dir
    },
    async host(url = REDIS_URL) {
      const connection = await openRedisConnection({ url, prefix, commandTimeoutMs: 1000 })
      connections.push(connection)
      return connection
    },
    closeAfter(item) {
      logs.push(item)
    },
  }
}

/** A base64 master key shared by the hosts of one deployment. */
export function masterKey(): string {
  return randomBytes(32).toString('base64')
}

/** A `warden serve` child process. */
export interface Host {
  url: string
  dataDir: string
  child: ChildProcess
  stop(): Promise<void>
}

const MAIN = fileURLToPath(new URL('../../sdk/cli/main.ts', import.meta.url))

/** Start `warden serve` (through tsx) with `env`, on a fresh data dir and a free port. */
export async function startHost(env: Record<string, string>): Promise<Host> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-redis-host-'))
  const child = spawn(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), MAIN, 'serve', '--port', '0'],
    {
      env: {
        ...process.env,
        WARDEN_DATA_DIR: dataDir,
        WARDEN_POOL_SIZE: '1',
        WARDEN_RATE_LIMIT_TOKEN_RPS: '100000',
        WARDEN_RATE_LIMIT_KEY_RPS: '100000',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /listening on (http:\/\/\S+)/.exec(out)
      if (match) {
        resolve(match[1]!)
      }
    })
    child.once('exit', (code) => reject(new Error(`warden serve exited with ${code}: ${stderr}`)))
  })
  return {
    url,
    dataDir,
    child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await exited
      }
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/** Run `warden <args>` to the end: its exit code and output. */
export function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), MAIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    child.once('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

/** The admin key a host wrote on first start. */
export async function adminKeyOf(host: Host): Promise<string> {
  return (await readFile(join(host.dataDir, 'admin.key'), 'utf8')).trim()
}

export interface Answer {
  status: number
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, read field by field
  body: any
}

/** One HTTP call to a host's API. */
export async function call(
  url: string,
  method: string,
  path: string,
  options: { auth?: string; json?: unknown; wasm?: Uint8Array } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (options.auth) {
    headers.authorization = `Bearer ${options.auth}`
  }
  let body: BodyInit | null = null
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json'
    body = JSON.stringify(options.json)
  } else if (options.wasm) {
    headers['content-type'] = 'application/wasm'
    body = Buffer.from(options.wasm) as unknown as BodyInit
  }
  const response = await fetch(`${url}${path}`, { method, headers, body })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: response.status, body: parsed }
}

/**
 * A TCP proxy to Redis that the test controls: `cut()` drops every connection and refuses new
 * ones (as a lost network would), `restore()` lets them in again.
 */
export interface RedisProxy {
  url: string
  cut(): void
  restore(): void
  close(): Promise<void>
}

export async function startProxy(target = { host: '127.0.0.1', port: 6379 }): Promise<RedisProxy> {
  const sockets = new Set<Socket>()
  let open = true
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy()
      return
    }
    const upstream = connect(target.port, target.host)
    sockets.add(client)
    sockets.add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const cut = () => {
    open = false
    for (const socket of sockets) {
      socket.destroy()
    }
    sockets.clear()
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    cut,
    restore() {
      open = true
    },
    close() {
      cut()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
