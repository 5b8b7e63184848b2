/**
 * `npm run soak`: a bounded mix of healthy and hostile runs through one runtime and its pool,
 * several in flight at once, watching for healthy runs that fail and for resources that leak.
 *
 *   npm run soak -- [--runs 5000] [--seconds S] [--concurrency 24] [--pool 2] [--hostile 40]
 *                    [--max-running-per-app N] [--max-queued-per-app N]
 *
 * Healthy runs use one app id per lane (`healthy-<lane>`), hostile runs share `hostile`, so the
 * pool's per-app caps (`maxRunningPerApp`, `maxQueuedPerApp`) refuse hostile bursts with
 * `limit_exceeded` before any worker: those refusals are counted apart from outcomes. Exits 1 on
 * any healthy failure. See test/reliability/README.md for what each figure means.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime } from '../../runtime/index.js'
import type { Invocation, Limits, LoadedComponent, WardenRuntime } from '../../runtime/index.js'
import * as guests from '../support/guests.js'
import { compileWat, guestFile } from '../support/wat.js'
import { mib, parseFlags, Tally } from './harness.js'

const flags = parseFlags(process.argv.slice(2), {
  runs: 'number',
  seconds: 'number',
  concurrency: 'number',
  pool: 'number',
  hostile: 'number',
  'max-running-per-app': 'number',
  'max-queued-per-app': 'number',
})
const maxRuns = Math.floor(Number(flags.runs ?? (flags.seconds ? Number.MAX_SAFE_INTEGER : 5000)))
const maxSeconds = Number(flags.seconds ?? 0)
const concurrency = Math.max(1, Math.floor(Number(flags.concurrency ?? 24)))
const poolSize = Math.max(1, Math.floor(Number(flags.pool ?? 2)))
/** Percent of runs that are hostile. */
const hostilePercent = Math.min(100, Number(flags.hostile ?? 40))
/** Runs before the start figures are taken: every component loaded, caches and JITs warm. */
const WARMUP_RUNS = Math.max(1, Math.min(200, Math.floor(maxRuns / 10)))
const LOG = 'warden:platform/log'

/** One kind of run: what to load, how to call it, and what a healthy answer is. */
interface Kind {
  name: string
  healthy: boolean
  bytes: () => Promise<Uint8Array>
  limits?: Limits
  grant?: readonly string[]
  input: (run: number) => string
  /** For healthy kinds: why the answer is wrong, or undefined. */
  check?: (run: Invocation, input: string) => string | undefined
  /** For hostile kinds: the outcome expected (anything else is reported, not failed). */
  expect?: string
}

/** Fuel of each healthy kind's first run: the same run must cost the same fuel every time. */
const fuelSeen = new Map<string, number>()

function answers(expected: (input: string) => string, kind: string) {
  return (run: Invocation, input: string): string | undefined => {
    if (!run.ok) {
      const message = run.error?.message ?? JSON.stringify(run.guestError)
      return `${run.error?.code ?? 'guest error'}: ${message}`
    }
    if (run.output !== expected(input)) {
      return `wrong output ${JSON.stringify(String(run.output).slice(0, 80))}`
    }
    if (!kind.startsWith('echo')) {
      const first = fuelSeen.get(kind) ?? run.report.fuelUsed!
      fuelSeen.set(kind, first)
      if (run.report.fuelUsed !== first) {
        return `fuel ${run.report.fuelUsed}, not ${first} as before`
      }
    }
    return undefined
  }
}

const KINDS: readonly Kind[] = [
  {
    name: 'echo',
    healthy: true,
    bytes: () => guestFile('echo'),
    grant: [LOG],
    input: (run) => `{"run":${run},"pad":"${'x'.repeat(run % 2048)}"}`,
    check: answers((input) => input, 'echo'),
  },
  {
    name: 'cpu-kernel',
    healthy: true,
    bytes: () => compileWat(guests.cpuKernel(200)),
    input: () => '',
    check: answers(() => 'done', 'cpu-kernel'),
  },
  {
    name: 'grow-8-pages',
    healthy: true,
    bytes: () => compileWat(guests.growBy(8)),
    limits: { memoryMb: 16 },
    input: () => '',
    check: answers(() => 'done', 'grow-8-pages'),
  },
  {
    name: 'loop/fuel',
    healthy: false,
    bytes: () => compileWat(guests.infiniteLoop),
    limits: { fuel: 10_000_000 },
    input: () => '',
    expect: 'fuel_exhausted',
  },
  {
    name: 'loop/deadline',
    healthy: false,
    bytes: () => compileWat(guests.infiniteLoop),
    limits: { fuel: 1e12, timeoutMs: 200 },
    input: () => '',
    expect: 'timeout',
  },
  {
    name: 'start-loop',
    healthy: false,
    bytes: () => compileWat(guests.startLoop),
    limits: { fuel: 10_000_000 },
    input: () => '',
    expect: 'fuel_exhausted',
  },
  {
    name: 'memory-bomb',
    healthy: false,
    bytes: () => compileWat(guests.growForever),
    limits: { memoryMb: 32 },
    input: () => '',
    expect: 'memory_limit',
  },
  {
    name: 'huge-grow',
    healthy: false,
    bytes: () => compileWat(guests.hugeGrow),
    limits: { memoryMb: 32 },
    input: () => '',
    expect: 'memory_limit',
  },
  {
    name: 'deep-recursion',
    healthy: false,
    bytes: () => compileWat(guests.deepRecursion),
    input: () => '',
    expect: 'guest_trap',
  },
  {
    name: 'host-call-flood',
    healthy: false,
    bytes: () => compileWat(guests.hostCallFlood),
    grant: [LOG],
    limits: { hostCalls: 200 },
    input: () => 'spam',
    expect: 'limit_exceeded',
  },
  {
    name: 'trap',
    healthy: false,
    bytes: () => compileWat(guests.trap),
    input: () => '',
    expect: 'guest_trap',
  },
  {
    name: 'atomic-wait',
    healthy: false,
    bytes: () => guestFile('atomic-wait'),
    limits: { timeoutMs: 200 },
    input: () => '',
    expect: 'timeout',
  },
  {
    name: 'guest-error',
    healthy: false,
    bytes: () => compileWat(guests.guestError),
    input: () => 'no',
    expect: 'err',
  },
]

/** The kind of run `i`: a fixed interleaving, `hostilePercent` of it hostile. */
function kindOf(i: number, kinds: readonly Kind[]): Kind {
  const healthy = kinds.filter((k) => k.healthy)
  const hostile = kinds.filter((k) => !k.healthy)
  // Bresenham-style spread: run i is hostile when the hostile share crosses a whole number.
  const h = Math.floor((i * hostilePercent) / 100)
  if (Math.floor(((i + 1) * hostilePercent) / 100) > h) {
    return hostile[h % hostile.length]!
  }
  return healthy[i % healthy.length]!
}

interface Sample {
  runs: number
  rss: number
  heap: number
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length
}

function threads(): number {
  const status = readFileSync('/proc/self/status', 'utf8')
  const line = status.split('\n').find((l) => l.startsWith('Threads:'))
  return Number(line?.split(/\s+/)[1] ?? NaN)
}

function settle(): void {
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
}

function sample(runs: number): Sample {
  settle()
  const m = process.memoryUsage()
  return { runs, rss: m.rss, heap: m.heapUsed }
}

/** Least-squares slope of `y` over `runs`, per 1,000 runs. */
function slope(samples: readonly Sample[], y: (s: Sample) => number): number {
  const n = samples.length
  if (n < 2) {
    return 0
  }
  const mx = samples.reduce((a, s) => a + s.runs, 0) / n
  const my = samples.reduce((a, s) => a + y(s), 0) / n
  let num = 0
  let den = 0
  for (const s of samples) {
    num += (s.runs - mx) * (y(s) - my)
    den += (s.runs - mx) ** 2
  }
  return den === 0 ? 0 : (num / den) * 1000
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) {
    return NaN
  }
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

function signed(bytes: number): string {
  const kib = bytes / 1024
  return `${kib >= 0 ? '+' : ''}${kib.toFixed(1)} KiB`
}

async function main(): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-soak-'))
  const running = flags['max-running-per-app']
  const queued = flags['max-queued-per-app']
  const warden: WardenRuntime = await createRuntime({
    dataDir,
    poolSize,
    ...(running ? { maxRunningPerApp: Number(running) } : {}),
    ...(queued ? { maxQueuedPerApp: Number(queued) } : {}),
  })
  try {
    return await soak(warden)
  } finally {
    await warden.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

async function loadKinds(
  warden: WardenRuntime,
): Promise<{ apps: Map<string, LoadedComponent>; skipped: string[] }> {
  const apps = new Map<string, LoadedComponent>()
  const skipped: string[] = []
  for (const kind of KINDS) {
    try {
      apps.set(kind.name, await warden.load(await kind.bytes()))
    } catch (error) {
      if (kind.healthy) {
        throw error
      }
      // A hostile kind the loader now refuses is contained earlier: note it, run the rest.
      const code = (error as { code?: unknown }).code
      const message = error instanceof Error ? error.message : String(error)
      skipped.push(`${kind.name} (refused at load: ${String(code)}: ${message.slice(0, 120)})`)
    }
  }
  return { apps, skipped }
}

/** Figures taken at the start (after warm-up) and at the end. */
interface Snapshot extends Sample {
  fds: number
  threads: number
  replacements: number
}

async function soak(warden: WardenRuntime): Promise<number> {
  await warden.pool.warm()
  const { apps, skipped } = await loadKinds(warden)
  const kinds = KINDS.filter((k) => apps.has(k.name))
  const gcOn = (globalThis as { gc?: unknown }).gc !== undefined
  const bound = [
    maxRuns === Number.MAX_SAFE_INTEGER ? 'unbounded runs' : `${maxRuns} runs`,
    ...(maxSeconds ? [`at most ${maxSeconds} s`] : []),
  ]
  console.log(
    `warden soak: ${bound.join(', ')}, ${concurrency} in flight, pool of ${warden.pool.size}, ` +
      `${hostilePercent}% hostile, ${kinds.length} kinds, gc ${gcOn ? 'on' : 'off (--expose-gc)'}`,
  )
  const caps = [
    `running ${flags['max-running-per-app'] ?? 'default (pool size)'}`,
    `queued ${flags['max-queued-per-app'] ?? 'default'}`,
  ]
  console.log(`  per-app caps: ${caps.join(', ')}; healthy apps: one per lane; hostile app: one`)
  for (const line of skipped) {
    console.log(`  skipped: ${line}`)
  }

  const started = performance.now()
  const deadline = maxSeconds > 0 ? started + maxSeconds * 1000 : Infinity
  const outcomes = new Tally()
  const unexpected = new Tally()
  const failures: string[] = []
  const latencies: number[] = []
  const wallMs: number[] = []
  const samples: Sample[] = []
  let refusals = 0
  let healthyRuns = 0
  let hostileRuns = 0
  let next = 0
  let done = 0
  let start: Snapshot | undefined
  const snapshot = (): Snapshot => ({
    ...sample(done),
    fds: openFds(),
    threads: threads(),
    replacements: warden.pool.replacements,
  })

  // Memory every second (after warm-up), a progress line every tenth of the runs or seconds.
  let printed = 0
  const ticker = setInterval(() => {
    if (start) {
      samples.push(sample(done))
    }
    const secs = (performance.now() - started) / 1000
    const tenth = maxSeconds > 0 ? Math.floor((secs / maxSeconds) * 10) : 0
    const tenthOfRuns = maxRuns < Number.MAX_SAFE_INTEGER ? Math.floor((done / maxRuns) * 10) : 0
    if (Math.max(tenth, tenthOfRuns) > printed) {
      printed = Math.max(tenth, tenthOfRuns)
      const m = process.memoryUsage()
      console.log(
        `  [${String(done).padStart(6)}] ${secs.toFixed(0).padStart(4)} s  rss ${mib(m.rss)}, ` +
          `heap ${mib(m.heapUsed)}, fds ${openFds()}, threads ${threads()}, ` +
          `replacements ${warden.pool.replacements}, healthy failures ${failures.length}`,
      )
    }
  }, 1000)

  async function lane(id: number): Promise<void> {
    while (next < maxRuns && performance.now() < deadline) {
      const i = next++
      const kind = kindOf(i, kinds)
      const input = kind.input(i)
      const t0 = performance.now()
      const run = await warden.invoke(apps.get(kind.name)!, input, {
        ...(kind.limits ? { limits: kind.limits } : {}),
        ...(kind.grant ? { interfaces: kind.grant } : {}),
        appId: kind.healthy ? `healthy-${id}` : 'hostile',
      })
      const ms = performance.now() - t0
      const outcome = run.ok ? 'ok' : run.error ? run.error.code : 'err'
      // A run the pool refused at the door never reached a worker: it has no metering at all.
      const refused = run.error?.code === 'limit_exceeded' && run.report.hostCalls === null
      const shown = refused ? 'refused (per-app cap)' : outcome
      outcomes.add(`${kind.healthy ? 'healthy' : 'hostile'} ${kind.name.padEnd(16)} ${shown}`)
      if (kind.healthy) {
        healthyRuns++
        const problem = kind.check!(run, input)
        if (problem) {
          failures.push(`run ${i} (${kind.name}, healthy-${id}): ${problem}`)
        } else {
          latencies.push(ms)
          wallMs.push(run.report.wallMs)
        }
      } else {
        hostileRuns++
        if (refused) {
          refusals++
        } else if (outcome !== kind.expect) {
          const why = run.error ? ` (${run.error.message.slice(0, 80)})` : ''
          unexpected.add(`${kind.name}: ${outcome}${why}`)
        }
      }
      done++
      if (done === WARMUP_RUNS) {
        start = snapshot()
      }
    }
  }

  console.log('progress:')
  await Promise.all(Array.from({ length: concurrency }, (_, i) => lane(i)))
  clearInterval(ticker)
  const elapsed = (performance.now() - started) / 1000
  // Let the workers killed at the end be replaced and the old threads exit, then measure.
  await warden.pool.warm()
  await new Promise((r) => setTimeout(r, 500))
  const end = snapshot()
  samples.push(end)
  start ??= end

  latencies.sort((a, b) => a - b)
  wallMs.sort((a, b) => a - b)
  const ms = (sorted: number[], p: number) => `${percentile(sorted, p).toFixed(2)} ms`
  const perK = (y: (s: Sample) => number) => `${signed(slope(samples, y))} per 1,000 runs`
  const others = [...unexpected.counts.values()].reduce((a, b) => a + b, 0)
  console.log('')
  console.log(
    `runs: ${done} in ${elapsed.toFixed(1)} s (${(done / elapsed).toFixed(0)} runs/s): ` +
      `${healthyRuns} healthy, ${hostileRuns} hostile`,
  )
  console.log(`healthy failures: ${failures.length}`)
  for (const f of failures.slice(0, 20)) {
    console.log(`    ${f}`)
  }
  console.log(`hostile runs refused by the per-app cap (limit_exceeded, no worker): ${refusals}`)
  console.log('outcomes by kind:')
  console.log(outcomes.lines().join('\n'))
  console.log(`hostile outcomes other than expected: ${others}`)
  if (others > 0) {
    console.log(unexpected.lines('    ').join('\n'))
  }
  console.log(
    `healthy latency, invoke to answer (queueing included): p50 ${ms(latencies, 50)}, ` +
      `p99 ${ms(latencies, 99)}, max ${ms(latencies, 100)}`,
  )
  console.log(
    `healthy latency, report.wallMs (in the sandbox): p50 ${ms(wallMs, 50)}, p99 ${ms(wallMs, 99)}`,
  )
  const counted = `${samples.length} samples`
  console.log(`memory (after gc; start after ${start.runs} warm-up runs, ${counted}):`)
  const memory = (what: string, y: (s: Sample) => number) =>
    `  ${what.padEnd(5)} start ${mib(y(start!))}, end ${mib(y(end))}, slope ${perK(y)}`
  console.log(memory('rss', (s) => s.rss))
  console.log(memory('heap', (s) => s.heap))
  console.log(
    `workers: pool size ${warden.pool.size}; replacements ${start.replacements} at start, ` +
      `${end.replacements} at end (+${end.replacements - start.replacements})`,
  )
  console.log(`threads of this process: ${start.threads} at start, ${end.threads} at end`)
  console.log(`open file descriptors: ${start.fds} at start, ${end.fds} at end`)
  const result = failures.length === 0 ? 'ok' : `FAILED (${failures.length} healthy failures)`
  console.log(`result: ${result}`)
  return failures.length === 0 ? 0 : 1
}

process.exitCode = await main()
