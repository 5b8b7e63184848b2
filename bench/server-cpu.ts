/**
 * Not a tinybench question: the CPU the server process spends per `POST /v1/apps/:id/invoke`
 * of the echo action, read from `/proc/<pid>/task/<tid>/stat` before and after a fixed number
 * of requests, split by thread (the main thread, the pool's workers, the rest). CPU time per
 * request is robust to other load on a shared machine, where req/s is not.
 *
 * `npm run build && npx tsx bench/server-cpu.ts [requests=6000] [connections=8]`;
 * `WARDEN_CPU_PROF=dir` runs the server under `node --cpu-prof --cpu-prof-dir=dir` (its
 * worker threads write their own profiles there too).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { guestFile } from '../test/support/wat.js'
import { deploy, startServer } from './server.bench.js'

const TICK_US = 10_000

/** CPU ticks of each thread of `pid`, by tid, with its name. */
function threadTicks(pid: number): Map<string, { name: string; ticks: number }> {
  const out = new Map<string, { name: string; ticks: number }>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1')
      const close = stat.lastIndexOf(')')
      const name = stat.slice(stat.indexOf('(') + 1, close)
      const fields = stat.slice(close + 2).split(' ')
      // utime and stime are fields 14 and 15 of stat(5); here 0-based after the name: 11 and 12.
      out.set(tid, { name, ticks: Number(fields[11]) + Number(fields[12]) })
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out
}

function fire(url: string, token: string, amount: number, connections: number) {
  return new Promise<autocannon.Result>((resolve, reject) => {
    autocannon(
      {
        url,
        connections,
        amount,
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: '{"input":"hello"}',
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    )
  })
}

const requests = Number(process.argv[2] ?? 6000)
const connections = Number(process.argv[3] ?? 8)
const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-cpu-'))
const profDir = process.env.WARDEN_CPU_PROF
const server = await startServer(
  dataDir,
  {},
  {
    ...(profDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {}),
  },
)
try {
  const key = (await readFile(join(dataDir, 'admin.key'), 'utf8')).trim()
  const { invoke: url, token } = await deploy(server.url, key, 'echo', await guestFile('echo'), {
    grants: { log: true },
  })
  await fire(url, token, 2000, connections)
  const before = threadTicks(server.pid)
  const started = performance.now()
  const result = await fire(url, token, requests, connections)
  const seconds = (performance.now() - started) / 1000
  const after = threadTicks(server.pid)
  const byName = new Map<string, number>()
  let total = 0
  for (const [tid, { name, ticks }] of after) {
    const delta = ticks - (before.get(tid)?.ticks ?? 0)
    const label = tid === String(server.pid) ? 'main' : name
    byName.set(label, (byName.get(label) ?? 0) + delta)
    total += delta
  }
  const perRequest = (ticks: number) => ((ticks * TICK_US) / requests).toFixed(0)
  console.log(
    `${requests} requests, ${connections} connections, ${result.non2xx} non-2xx, ` +
      `${(requests / seconds).toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ` +
      `load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  )
  console.log(`server CPU per request: ${perRequest(total)} µs`)
  for (const [name, ticks] of [...byName].sort((a, b) => b[1] - a[1])) {
    if (ticks > 0) {
      console.log(`  ${name.padEnd(16)} ${perRequest(ticks).padStart(6)} µs`)
    }
  }
} finally {
  await server.stop()
  await rm(dataDir, { recursive: true, force: true })
}
