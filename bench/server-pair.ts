/**
 * Not a tinybench question: a paired A/B of the server's CPU per `POST /v1/apps/:id/invoke`.
 * Two `warden serve` run side by side, one from another checkout's `dist/` (A, say main's) and
 * one from this tree's (B); chunks of requests go to each in turn, the order swapped every
 * round, and each server's CPU is read from `/proc/<pid>/task/<tid>/stat` over its own chunks only
 * (main thread, the two busiest other threads: the pool's workers, and the rest). On a shared
 * machine, where the CPU per request of one build moves by ±30 % from minute to minute with the
 * load, both sides see the same load.
 *
 * `npm run build` in both trees, then
 * `npx tsx bench/server-pair.ts <other checkout> [rounds=8] [requests per chunk=1500] [connections=8]`.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { guestFile } from '../test/support/wat.js'
import { deploy, startServer } from './server.bench.js'
import type { ServerProcess } from './server.bench.js'

const TICK_US = 10_000

interface Side {
  server: ServerProcess
  dataDir: string
  invoke: string
  token: string
}

async function start(checkout: string): Promise<Side> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-pair-'))
  const server = await startServer(dataDir, {}, { checkout })
  const key = (await readFile(join(dataDir, 'admin.key'), 'utf8')).trim()
  const { invoke, token } = await deploy(server.url, key, 'echo', await guestFile('echo'), {
    grants: { log: true },
  })
  return { server, dataDir, invoke, token }
}

/** CPU ticks of each thread of `pid`, by tid. */
function ticks(pid: number): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(tid, Number(fields[11]) + Number(fields[12]))
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out
}

function fire(side: Side, amount: number, connections: number): Promise<autocannon.Result> {
  return new Promise((done, fail) => {
    autocannon(
      {
        url: side.invoke,
        connections,
        amount,
        method: 'POST',
        headers: { authorization: `Bearer ${side.token}`, 'content-type': 'application/json' },
        body: '{"input":"hello"}',
      },
      (error, result) => (error ? fail(error) : done(result)),
    )
  })
}

const [other, roundsArg = '8', chunkArg = '1500', connectionsArg = '8'] = process.argv.slice(2)
if (!other) {
  throw new Error('usage: npx tsx bench/server-pair.ts <other checkout> [rounds] [chunk] [conns]')
}
const rounds = Number(roundsArg)
const chunk = Number(chunkArg)
const connections = Number(connectionsArg)
const sides = { A: await start(other), B: await start('.') }
const totals = {
  A: { requests: 0, main: 0, workers: 0, rest: 0 },
  B: { requests: 0, main: 0, workers: 0, rest: 0 },
}
try {
  for (const side of Object.values(sides)) {
    await fire(side, 3000, connections)
  }
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const)
    const line: string[] = []
    for (const name of order) {
      const side = sides[name]
      const before = ticks(side.server.pid)
      const result = await fire(side, chunk, connections)
      const deltas = [...ticks(side.server.pid)].map(
        ([tid, t]) => [tid, t - (before.get(tid) ?? 0)] as const,
      )
      const main = deltas.find(([tid]) => tid === String(side.server.pid))?.[1] ?? 0
      const others = deltas.filter(([tid]) => tid !== String(side.server.pid)).map(([, t]) => t)
      others.sort((a, b) => b - a)
      const workers = (others[0] ?? 0) + (others[1] ?? 0)
      const rest = others.slice(2).reduce((a, t) => a + t, 0)
      const total = totals[name]
      total.requests += chunk
      total.main += main
      total.workers += workers
      total.rest += rest
      const us = (t: number) => ((t * TICK_US) / chunk).toFixed(0)
      line.push(
        `${name} ${us(main + workers + rest)} µs (main ${us(main)}, workers ${us(workers)}, rest ${us(rest)}), p50 ${result.latency.p50} ms`,
      )
    }
    console.log(`round ${round}: ${line.join(' | ')} | load ${loadavg()[0].toFixed(2)}`)
  }
  for (const name of ['A', 'B'] as const) {
    const t = totals[name]
    const us = (x: number) => ((x * TICK_US) / t.requests).toFixed(0)
    console.log(
      `${name} (${name === 'A' ? other : 'this tree'}): ${us(t.main + t.workers + t.rest)} µs per request ` +
        `(main ${us(t.main)}, workers ${us(t.workers)}, rest ${us(t.rest)})`,
    )
  }
} finally {
  for (const side of Object.values(sides)) {
    await side.server.stop()
    await rm(side.dataDir, { recursive: true, force: true })
  }
}
