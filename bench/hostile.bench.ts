/**
 * Question: what does a looping neighbour do to a benign app's latency, in process (no HTTP,
 * no load generator on the same vCPUs), with hogs at nice 19 against hogs at full priority?
 * A pool of 2 (default shares: each app may hold one worker); the benign app runs the echo
 * action with 8 callers; the hostile app, once it has a strike, runs an infinite loop to its
 * 100 ms deadline back to back, so it always holds the other worker. Phases alternate (quiet,
 * hostile with hogNice 19, hostile with hogNice 0), twice after a warm-up, on two runtimes made
 * the same way.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime } from '../runtime/index.js'
import type { LoadedComponent, WardenRuntime } from '../runtime/index.js'
import { infiniteLoop } from '../test/support/guests.js'
import { compileWat, guestFile } from '../test/support/wat.js'
import type { Row } from './support.js'

const QUESTION = 'benign echo runs beside a looping app (pool 2, 8 callers, in process)'
const PHASE_MS = 3000
const ECHO = { interfaces: ['warden:platform/log'], appId: 'calm' }
const LOOP = { limits: { fuel: 1e12, timeoutMs: 100 }, appId: 'loop' }

interface Phase {
  runsPerSecond: number
  p50Us: number
  p99Us: number
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN
}

async function phase(
  runtime: WardenRuntime,
  echo: LoadedComponent,
  loop: LoadedComponent | undefined,
): Promise<Phase> {
  const end = performance.now() + PHASE_MS
  const latencies: number[] = []
  const hostile = async () => {
    while (loop && performance.now() < end) {
      await runtime.invoke(loop, '', LOOP)
    }
  }
  const caller = async () => {
    while (performance.now() < end) {
      const t = performance.now()
      const r = await runtime.invoke(echo, 'x', ECHO)
      if (!r.ok) {
        throw new Error(JSON.stringify(r.error))
      }
      latencies.push((performance.now() - t) * 1000)
    }
  }
  const started = performance.now()
  await Promise.all([hostile(), ...Array.from({ length: 8 }, caller)])
  const seconds = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  return {
    runsPerSecond: latencies.length / seconds,
    p50Us: percentile(latencies, 0.5),
    p99Us: percentile(latencies, 0.99),
  }
}

export async function run(): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-hostile-'))
  const niced = await createRuntime({ dataDir: dir, poolSize: 2, maxQueuedPerApp: 16 })
  const plain = await createRuntime({
    dataDir: dir,
    poolSize: 2,
    maxQueuedPerApp: 16,
    hogNice: 0,
  })
  try {
    const echoBytes = await guestFile('echo')
    const loopBytes = await compileWat(infiniteLoop)
    const apps = new Map<WardenRuntime, { echo: LoadedComponent; loop: LoadedComponent }>()
    for (const runtime of [niced, plain]) {
      const echo = await runtime.load(echoBytes)
      const loop = await runtime.load(loopBytes)
      await runtime.pool.warm()
      await runtime.invoke(loop, '', LOOP) // a first strike: the loop app is a hog from here on
      apps.set(runtime, { echo, loop })
    }
    // Warm-up, not counted: the first phase of a process runs slow (JIT, caches).
    await phase(niced, apps.get(niced)!.echo, undefined)
    await phase(plain, apps.get(plain)!.echo, undefined)
    const results: Record<string, Phase[]> = { quiet: [], niced: [], plain: [] }
    for (let round = 0; round < 2; round++) {
      const a = apps.get(niced)!
      const b = apps.get(plain)!
      results.quiet!.push(await phase(niced, a.echo, undefined))
      await niced.pool.warm()
      results.niced!.push(await phase(niced, a.echo, a.loop))
      await plain.pool.warm()
      results.plain!.push(await phase(plain, b.echo, b.loop))
    }
    const load = loadavg()
      .map((l) => l.toFixed(1))
      .join('/')
    const quietP99 = Math.min(...results.quiet!.map((p) => p.p99Us))
    const row = (name: string, key: string): Row => {
      const phases = results[key]!
      const best = phases.reduce((x, y) => (x.p99Us <= y.p99Us ? x : y))
      return {
        question: QUESTION,
        name,
        medianUs: best.p50Us,
        ...(key === 'quiet'
          ? {}
          : { ratio: best.p99Us / quietP99, baseline: 'quiet p99 (ratio of p99s)' }),
        note: `p99s ${phases.map((p) => Math.round(p.p99Us)).join(', ')} µs; ${phases
          .map((p) => Math.round(p.runsPerSecond))
          .join(', ')} runs/s (load ${load})`,
      }
    }
    return [
      row('quiet: benign p50', 'quiet'),
      row('beside a loop, hog at nice 19: benign p50', 'niced'),
      row('beside a loop, hog at full priority: benign p50', 'plain'),
    ]
  } finally {
    await Promise.all([niced.close(), plain.close()])
    await rm(dir, { recursive: true, force: true })
  }
}
