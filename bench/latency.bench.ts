/**
 * Question: what do the three headline figures cost, in time and in CPU, on an idle machine,
 * a loaded one and a contended one, measured in the same run? On this VM a parked vCPU wakes
 * slowly, so the idle machine is the slow case. Loaded: a spinner at `nice 19` on every vCPU
 * (they never park; we always win the CPU). Contended: one spinner at `nice 0` (another
 * process wants a whole vCPU as much as we do).
 *
 * - bridge: one host call to the broker and back (ping guest, N calls − 0 calls, per call);
 * - tiny run: a fresh-instance echo run end to end, one at a time (1 worker);
 * - throughput: echo runs with 8 in flight, as µs per run, on 1 worker and on 1 per vCPU.
 *
 * CPU is `process.cpuUsage` (every thread of this process) per operation: a spin shows up
 * there, an idle wait does not. Each condition compares the default spin bounds (`SPIN` in
 * runtime/sandbox/channel.ts) with none, interleaved over rounds so that a change in the
 * machine's load hits both; `WARDEN_BENCH_SPIN` adds settings, as `response/job/run/call` in
 * µs separated by `;` (e.g. `50/0/0/0`), and `WARDEN_BENCH_ROUNDS` sets the rounds (3).
 * "others" is the share of the machine's CPU used by other processes meanwhile.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime } from '../runtime/index.js'
import { SPIN } from '../runtime/sandbox/channel.js'
import { guestFile } from '../test/support/wat.js'
import { ping, pingGuest } from './host-calls.bench.js'
import { median, measure, withLoad } from './support.js'
import type { Measured, Row } from './support.js'
import { BATCH, batch, throughputOptions } from './throughput.bench.js'

const QUESTION = 'idle vs loaded: latency and CPU per operation'
const CALLS = 200
const PING = 'warden:bench/ping'
const LOG = 'warden:platform/log'

type Spin = typeof SPIN
type Figure = 'bridge' | 'tiny' | 'batch' | 'batch1'
type Figures = Record<Figure, Measured> & { others: number }

function settings(): [string, Spin][] {
  const list: [string, Spin][] = [
    ['spin', { ...SPIN }],
    ['no spin', { response: 0, job: 0, run: 0, call: 0 }],
  ]
  for (const text of (process.env.WARDEN_BENCH_SPIN ?? '').split(';').filter(Boolean)) {
    const [response = 0, job = 0, run = 0, call = 0] = text.split('/').map(Number)
    list.push([`spin ${text}`, { response, job, run, call }])
  }
  return list
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
  const fields = line.trim().split(/\s+/).slice(1).map(Number)
  const total = fields.reduce((a, b) => a + b, 0)
  return { busy: total - fields[3]! - (fields[4] ?? 0), total }
}

/** The three figures with the current `SPIN`, each on a fresh runtime. */
async function figures(dir: string): Promise<Figures> {
  const single = await createRuntime({
    dataDir: dir,
    brokerCapabilities: [ping],
    ...throughputOptions(1),
  })
  const wide = await createRuntime({ dataDir: dir, ...throughputOptions(cpus().length) })
  try {
    const echoBytes = await guestFile('echo')
    const echo = await single.load(echoBytes)
    const pinger = await single.load(await pingGuest())
    const wideEcho = await wide.load(echoBytes)
    await Promise.all([single.pool.warm(), wide.pool.warm()])
    const limits = { hostCalls: CALLS + 10 }
    const invoke = (app: typeof echo, input: string, grant: string[]) => async () => {
      const r = await single.invoke(app, input, { interfaces: grant, limits })
      if (!r.ok) {
        throw new Error(JSON.stringify(r.error))
      }
    }
    const ticks = machineTicks()
    const own = process.cpuUsage()
    const m = await measure(
      {
        pingBase: invoke(pinger, '0', [PING]),
        ping: invoke(pinger, String(CALLS), [PING]),
        tiny: invoke(echo, 'x', [LOG]),
        batch: batch(wide, wideEcho),
        batch1: batch(single, echo),
      },
      { time: 1000, iterations: 30 },
    )
    const after = machineTicks()
    const ownUsed = process.cpuUsage(own)
    // Jiffies are 10 ms; cpuUsage is in µs.
    const ownTicks = (ownUsed.user + ownUsed.system) / 10_000
    const others = Math.max(0, after.busy - ticks.busy - ownTicks) / (after.total - ticks.total)
    const perCall = (key: keyof Measured) => (m.ping![key] - m.pingBase![key]) / CALLS
    return {
      bridge: { medianUs: perCall('medianUs'), cpuUs: perCall('cpuUs') },
      tiny: m.tiny!,
      batch: { medianUs: m.batch!.medianUs / BATCH, cpuUs: m.batch!.cpuUs / BATCH },
      batch1: { medianUs: m.batch1!.medianUs / BATCH, cpuUs: m.batch1!.cpuUs / BATCH },
      others,
    }
  } finally {
    await Promise.all([single.close(), wide.close()])
  }
}

/** Every setting, interleaved over rounds; medians of the rounds. */
async function sweep(condition: string): Promise<Row[]> {
  const defaults = { ...SPIN }
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  const list = settings()
  const results: Figures[][] = list.map(() => [])
  try {
    const rounds = Number(process.env.WARDEN_BENCH_ROUNDS ?? 3)
    for (let round = 0; round < rounds; round++) {
      for (const [i, [, spin]] of list.entries()) {
        Object.assign(SPIN, spin)
        results[i]!.push(await figures(dir))
      }
    }
  } finally {
    Object.assign(SPIN, defaults)
    await rm(dir, { recursive: true, force: true })
  }
  const rows: Row[] = []
  for (const [i, [name]] of list.entries()) {
    const runs = results[i]!
    const mid = (key: Figure, field: keyof Measured) => median(runs.map((r) => r[key][field]))
    const others = `others ${(100 * median(runs.map((r) => r.others))).toFixed(0)} %`
    const row = (key: Figure, label: string, target: string): Row => ({
      question: QUESTION,
      name: `${condition}, ${name}: ${label}`,
      medianUs: mid(key, 'medianUs'),
      target,
      note: `CPU ${mid(key, 'cpuUs').toFixed(0)} µs/op${perSecond(key)}; ${others}`,
    })
    const perSecond = (key: Figure) =>
      key.startsWith('batch')
        ? `, ${Math.round(1e6 / mid(key, 'medianUs')).toLocaleString('en')} runs/s`
        : ''
    rows.push(
      row('bridge', 'bridge to the broker, per call', '≤ 40 µs'),
      row('tiny', 'tiny run end to end', '≤ 150 µs'),
      row('batch1', '8 in flight on 1 worker, per run', '≥ 6,000 runs/s'),
      row('batch', `8 in flight on ${cpus().length} workers, per run`, '≥ 6,000 runs/s'),
    )
  }
  return rows
}

export async function run(): Promise<Row[]> {
  const idle = await sweep('idle')
  const loaded = await withLoad(() => sweep('loaded'))
  const contended = await withLoad(() => sweep('contended'), { count: 1, nice: 0 })
  return [...idle, ...loaded, ...contended]
}
