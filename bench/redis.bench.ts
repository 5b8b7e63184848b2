/**
 * Question: what does Redis mode cost, and what do two hosts on one Redis serve? The tiny echo
 * action through `POST /v1/apps/:id/invoke`, each server a `warden serve` child process from
 * `dist/` (pool of 1; `npm run build` first), autocannon from this process over loopback:
 *
 * - one host on local files (the baseline), one host on Redis, two hosts on one Redis (8
 *   connections on each host in every case, the two hosts' figures summed);
 * - per host, the CPU time it burns per request (`/proc/<pid>/stat`, every thread), and Redis's
 *   too: throughput is what the cores left to a host allow, so CPU per request is what tells
 *   capacity when the load generator, Redis and the hosts share too few cores;
 * - the p50 Redis adds to a run: the same `warden.run` in this process with local files and
 *   with Redis (tinybench medians), and the HTTP p50 at one connection.
 *
 * Rounds (`WARDEN_BENCH_ROUNDS`, default 2) alternate the three set-ups; each figure comes from
 * the round whose hosts burnt the least CPU per request (the least disturbed by other work),
 * and the notes give every round's.
 *
 * Each host is pinned to a CPU of its own (`taskset -c`): `WARDEN_BENCH_CPUS=a,b` (the first
 * host on `a`, the second on `b`; default `0,1` when taskset exists and there are 2 CPUs or
 * more; `none`: not pinned). On a machine with more cores, pin this process (autocannon) and
 * Redis elsewhere too, e.g. `taskset -c 2,3 npx tsx bench/index.ts redis` with
 * `WARDEN_BENCH_CPUS=0,1` and Redis on CPU 4, and req/s itself answers the question.
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { openRedisConnection, openWarden, resolveHostConfig } from '../runtime/index.js'
import type { Warden } from '../runtime/index.js'
import { dropPrefix } from '../test/redis/support.js'
import { guestFile } from '../test/support/wat.js'
import { deploy, load, startServer, TASKSET } from './server.bench.js'
import type { Load, ServerProcess } from './server.bench.js'
import { load1, medians, processCpuMs } from './support.js'
import type { Row } from './support.js'

const QUESTION =
  'Redis mode: HTTP invoke of a tiny action (servers pool 1, autocannon 8 conn. per host)'
const REDIS_URL = process.env.WARDEN_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const CONNECTIONS = 8
const MASTER = randomBytes(32).toString('base64')

/** The CPUs of the first and the second host, or undefined: not pinned. */
function hostCpus(): [number, number] | undefined {
  const asked = process.env.WARDEN_BENCH_CPUS
  if (asked === 'none') {
    return undefined
  }
  if (asked) {
    const [a, b] = asked.split(',').map(Number)
    if (!Number.isInteger(a) || !Number.isInteger(b)) {
      throw new TypeError('WARDEN_BENCH_CPUS must be two CPU numbers, `a,b`, or `none`')
    }
    return [a!, b!]
  }
  return existsSync(TASKSET) && cpus().length >= 2 ? [0, 1] : undefined
}

/** A host: its process, its data dir, the echo action deployed on the first one. */
interface Host {
  server: ServerProcess
  dataDir: string
}

async function startHost(env: Record<string, string>, cpu: number | undefined): Promise<Host> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-redis-'))
  const server = await startServer(
    dataDir,
    {
      WARDEN_POOL_SIZE: '1',
      // 8 connections on a pool of 1: let them queue rather than be refused.
      WARDEN_MAX_QUEUED_PER_APP: '64',
      WARDEN_MASTER_KEY: MASTER,
      ...env,
    },
    cpu === undefined ? {} : { cpu },
  )
  return { server, dataDir }
}

async function stopHost(host: Host): Promise<void> {
  await host.server.stop()
  await rm(host.dataDir, { recursive: true, force: true })
}

/** What one measured load gave: per host, and Redis's CPU. */
interface Measured {
  loads: Load[]
  /** Each host's CPU time per request it answered, in ms. */
  hostCpuMs: (number | undefined)[]
  /** Redis's CPU time per request answered by all hosts, in ms (a local Redis only). */
  redisCpuMs: number | undefined
  /** This process's (autocannon's) CPU time per request, in ms. */
  loaderCpuMs: number
  /**
   * Scripts (`EVAL`/`EVALSHA`) Redis ran per request: more with two hosts than with one means
   * retries (an audit append that lost the race re-chains and runs again). Counts every client
   * of this Redis: only meaningful on a Redis nobody else uses.
   */
  scriptsPerReq: number | undefined
}

/**
 * Load every host at once (`connections` each) once to warm up, then again measured, with the
 * CPU each host process, Redis and this process used during the measured run.
 */
async function measure(
  hosts: { host: Host; url: string; token: string }[],
  connections: number,
  redis: { client: Redis; pid: number | undefined } | undefined,
): Promise<Measured> {
  const redisPid = redis?.pid
  const all = () => Promise.all(hosts.map((h) => load(h.url, h.token, { connections })))
  await all().catch(() => undefined)
  const cpu = () => hosts.map((h) => processCpuMs(h.host.server.pid))
  const hostsBefore = cpu()
  const redisBefore = redisPid === undefined ? undefined : processCpuMs(redisPid)
  const scriptsBefore = redis ? await scriptCalls(redis.client) : undefined
  const loaderBefore = process.cpuUsage()
  const loads = await all()
  const loader = process.cpuUsage(loaderBefore)
  const scriptsAfter = redis ? await scriptCalls(redis.client) : undefined
  const hostsAfter = cpu()
  const redisAfter = redisPid === undefined ? undefined : processCpuMs(redisPid)
  const total = loads.reduce((sum, l) => sum + l.total, 0)
  const per = (before: number | undefined, after: number | undefined, n: number) =>
    before === undefined || after === undefined || n === 0 ? undefined : (after - before) / n
  return {
    loads,
    hostCpuMs: loads.map((l, i) => per(hostsBefore[i], hostsAfter[i], l.total)),
    redisCpuMs: per(redisBefore, redisAfter, total),
    loaderCpuMs: (loader.user + loader.system) / 1000 / Math.max(total, 1),
    scriptsPerReq: per(scriptsBefore, scriptsAfter, total),
  }
}

/** How many scripts Redis has run (`INFO commandstats`). */
async function scriptCalls(client: Redis): Promise<number> {
  const stats = await client.info('commandstats')
  let calls = 0
  for (const match of stats.matchAll(/^cmdstat_(?:eval|evalsha):calls=(\d+)/gm)) {
    calls += Number(match[1])
  }
  return calls
}

/** What one set-up gave: 8 connections per host, and 1 connection for a lone host. */
interface Scenario {
  busy: Measured
  single?: Measured
}

/** Rounds of the three set-ups (`WARDEN_BENCH_ROUNDS`, default 2). */
const ROUNDS = Number(process.env.WARDEN_BENCH_ROUNDS ?? 2)

/** Mean host CPU per request of a set-up (Infinity when unknown). */
const meanCpu = (s: Scenario) =>
  s.busy.hostCpuMs.reduce<number>((sum, v) => sum + (v ?? Number.POSITIVE_INFINITY), 0) /
  s.busy.hostCpuMs.length

/**
 * The round whose hosts burnt the least CPU per request: the one least disturbed by other work
 * on the machine (interference only adds CPU time: cache misses, preemption costs).
 */
function quietest(rounds: Scenario[]): Scenario {
  return rounds.reduce((best, s) => (meanCpu(s) < meanCpu(best) ? s : best))
}

/** Each round's req/s (summed over hosts) and mean host CPU per request, for the notes. */
function roundsNote(rounds: Scenario[]): string {
  const each = rounds.map((s) => {
    const rps = s.busy.loads.reduce((sum, l) => sum + l.rps, 0)
    return `${Math.round(rps)} req/s at ${meanCpu(s).toFixed(2)} ms`
  })
  return `rounds: ${each.join(', ')}`
}

/** Start hosts with `env` on `pins`, deploy the echo action on the first, measure. */
async function scenario(
  env: Record<string, string>,
  pins: (number | undefined)[],
  redis: { client: Redis; pid: number | undefined } | undefined,
): Promise<Scenario> {
  const echo = await guestFile('echo')
  const hosts: Host[] = []
  try {
    for (const cpu of pins) {
      hosts.push(await startHost(env, cpu))
    }
    const first = hosts[0]!
    const key = (await readFile(join(first.dataDir, 'admin.key'), 'utf8')).trim()
    const { invoke, token } = await deploy(first.server.url, key, 'echo', echo, {
      grants: { log: true },
    })
    const path = new URL(invoke).pathname
    const targets = hosts.map((host) => ({ host, url: host.server.url + path, token }))
    // The same concurrency on every host as on one alone: CPU per request depends on it
    // (group commits and batches fill up with more requests in flight).
    const busy = await measure(targets, CONNECTIONS, redis)
    const single = hosts.length === 1 ? await measure(targets, 1, redis) : undefined
    return single ? { busy, single } : { busy }
  } finally {
    await Promise.all(hosts.map(stopHost))
  }
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

/** Redis's process id when it runs on this machine (its CPU is read from /proc), else undefined. */
async function localRedisPid(client: Redis): Promise<number | undefined> {
  const info = await client.info('server')
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1])
  return Number.isInteger(pid) && processCpuMs(pid) !== undefined ? pid : undefined
}

const scripts = (m: Measured) =>
  m.scriptsPerReq === undefined ? 'scripts n/a' : `${m.scriptsPerReq.toFixed(2)} scripts/req`
const ms = (v: number | undefined) => (v === undefined ? 'n/a' : `${v.toFixed(2)} ms`)
/** Requests a second one core serves at `cpuMs` per request. */
const perCore = (cpuMs: number | undefined) =>
  cpuMs === undefined || cpuMs <= 0 ? undefined : 1000 / cpuMs

export async function run(): Promise<Row[]> {
  const prefix = `warden-bench:${Date.now().toString(36)}:`
  const client = new Redis(REDIS_URL)
  const rows: Row[] = []
  const pins = hostCpus()
  const loadAtStart = load1()
  try {
    const redis = { client, pid: await localRedisPid(client) }
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

    const redisEnv = { WARDEN_REDIS_URL: REDIS_URL }
    // Rounds alternate the three set-ups, so that drifting load falls on all of them.
    const locals: Scenario[] = []
    const ones: Scenario[] = []
    const twos: Scenario[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const on = (name: string) => ({
        ...redisEnv,
        WARDEN_REDIS_PREFIX: `${prefix}${name}${round}:`,
      })
      locals.push(await scenario({}, [pins?.[0]], undefined))
      ones.push(await scenario(on('one'), [pins?.[0]], redis))
      twos.push(await scenario(on('two'), [pins?.[0], pins?.[1]], redis))
    }
    const local = quietest(locals)
    const one = quietest(ones)
    const two = quietest(twos)

    const pinned = pins ? `hosts pinned to CPU ${pins.join(' and ')}` : 'hosts not pinned'
    const context = `${cpus().length} CPUs, ${pinned}, load average ${loadAtStart} → ${load1()}`
    const note = (m: Measured, i = 0) => {
      const l = m.loads[i]!
      return (
        `${Math.round(l.rps)} req/s, p99 ${l.p99Ms} ms, ${l.non2xx} non-2xx; ` +
        `host CPU ${ms(m.hostCpuMs[i])}/req`
      )
    }
    const oneRps = one.busy.loads[0]!.rps
    const twoRps = two.busy.loads.reduce((sum, l) => sum + l.rps, 0)
    // Capacity: what the hosts would serve with a core each, from the CPU each request costs.
    const oneCapacity = perCore(one.busy.hostCpuMs[0])
    const twoCapacities = two.busy.hostCpuMs.map(perCore)
    const twoCapacity = twoCapacities.every((c) => c !== undefined)
      ? twoCapacities.reduce((sum, c) => sum! + c!, 0)
      : undefined
    // Redis's share of a core if the two hosts served their capacity.
    const redisShare =
      two.busy.redisCpuMs === undefined || twoCapacity === undefined
        ? 'n/a'
        : `${Math.round((two.busy.redisCpuMs * twoCapacity) / 10)} % of a core`
    rows.push(
      {
        question: QUESTION,
        name: 'one host, local files: p50 (8 conn.)',
        medianUs: local.busy.loads[0]!.p50Ms * 1000,
        note: `${note(local.busy)}; ${roundsNote(locals)}; ${context}`,
      },
      {
        question: QUESTION,
        name: 'one host, Redis: p50 (8 conn.)',
        medianUs: one.busy.loads[0]!.p50Ms * 1000,
        ratio: local.busy.loads[0]!.rps / oneRps,
        baseline: 'local files (ratio of req/s)',
        target: '≤ 1.5×',
        note:
          `${note(one.busy)} (×${((one.busy.hostCpuMs[0] ?? Number.NaN) / (local.busy.hostCpuMs[0] ?? Number.NaN)).toFixed(2)} ` +
          `local's), Redis CPU ${ms(one.busy.redisCpuMs)}/req, ${scripts(one.busy)}, ` +
          `autocannon ${ms(one.busy.loaderCpuMs)}/req; ${roundsNote(ones)}`,
      },
      {
        question: QUESTION,
        name: 'two hosts, one Redis: p50 (8 + 8 conn.), req/s measured',
        medianUs: Math.max(...two.busy.loads.map((l) => l.p50Ms)) * 1000,
        ratio: twoRps / oneRps,
        baseline: 'one host on Redis (ratio of req/s)',
        target: '≥ 1.6× with cores of their own',
        note:
          `${Math.round(twoRps)} req/s in all (${two.busy.loads.map((l) => Math.round(l.rps)).join(' + ')}); ` +
          `${roundsNote(twos)}; only meaningful when autocannon and Redis have cores of their own too`,
      },
      {
        question: QUESTION,
        name: 'two hosts, one Redis: host CPU per request (ratio: capacity with a core each)',
        medianUs: (two.busy.hostCpuMs[0] ?? Number.NaN) * 1000,
        ...(oneCapacity !== undefined && twoCapacity !== undefined
          ? { ratio: twoCapacity / oneCapacity }
          : {}),
        baseline: 'one host on Redis (1 core ÷ CPU per request)',
        target: '≥ 1.6×',
        note:
          `host CPU ${two.busy.hostCpuMs.map(ms).join(' and ')}/req against ${ms(one.busy.hostCpuMs[0])} ` +
          `alone; Redis CPU ${ms(two.busy.redisCpuMs)}/req (${redisShare} at that capacity); ` +
          `${scripts(two.busy)} against ${scripts(one.busy)} alone`,
      },
      {
        question: QUESTION,
        // autocannon's percentiles are whole milliseconds: with one connection the mean time
        // per request is 1 ÷ req/s, to the microsecond.
        name: 'one host, local files: time per request at 1 connection (1 ÷ req/s)',
        medianUs: 1e6 / local.single!.loads[0]!.rps,
        note: note(local.single!),
      },
      {
        question: QUESTION,
        name: 'one host, Redis: time per request at 1 connection (1 ÷ req/s)',
        medianUs: 1e6 / one.single!.loads[0]!.rps,
        ratio: local.single!.loads[0]!.rps / one.single!.loads[0]!.rps,
        baseline: 'local files',
        note: note(one.single!),
      },
    )
    return rows
  } finally {
    await dropPrefix(client, prefix)
    client.disconnect()
  }
}
