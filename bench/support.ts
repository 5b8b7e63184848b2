/**
 * Shared helpers for the benchmarks: a tinybench runner that returns medians in µs, and a
 * printer. Every file in bench/ answers one question and returns rows; `index.ts` prints them.
 */
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { ChildProcess } from 'node:child_process'
import { cpus, loadavg, setPriority } from 'node:os'
import { Bench } from 'tinybench'

/** One printed figure. */
export interface Row {
  question: string
  name: string
  /** Median, in microseconds. */
  medianUs: number
  /** Ratio against the row named as this one's baseline, if any. */
  ratio?: number
  baseline?: string
  target?: string
  note?: string
}

/** Median latency in µs of each task, measured by tinybench in one run. */
export async function medians(
  tasks: Record<string, () => unknown>,
  options: { time?: number; iterations?: number } = {},
): Promise<Record<string, number>> {
  const bench = new Bench({ time: options.time ?? 1500, iterations: options.iterations ?? 50 })
  for (const [name, fn] of Object.entries(tasks)) {
    bench.add(name, fn)
  }
  await bench.run()
  const out: Record<string, number> = {}
  for (const task of bench.tasks) {
    const result = task.result
    if (result.state !== 'completed') {
      throw new Error(`benchmark ${task.name} did not complete: ${result.state}`)
    }
    out[task.name] = result.latency.p50 * 1000
  }
  return out
}

/** Median latency and CPU time of one task, from {@link measure}. */
export interface Measured {
  /** Median latency, in µs. */
  medianUs: number
  /** CPU time of this whole process (main thread and workers) per iteration, in µs. */
  cpuUs: number
}

/**
 * Like {@link medians}, plus the CPU each iteration burns in this process (`process.cpuUsage`,
 * every thread: a spin on the main thread or in a worker shows up here, and idle waiting does
 * not). Warmup iterations are not counted.
 */
export async function measure(
  tasks: Record<string, () => unknown>,
  options: { time?: number; iterations?: number } = {},
): Promise<Record<string, Measured>> {
  const bench = new Bench({ time: options.time ?? 1500, iterations: options.iterations ?? 50 })
  const cpu: Record<string, number> = {}
  for (const [name, fn] of Object.entries(tasks)) {
    let count = 0
    let start = process.cpuUsage()
    bench.add(
      name,
      async () => {
        count++
        await fn()
      },
      {
        beforeAll: () => {
          count = 0
          start = process.cpuUsage()
        },
        afterAll: () => {
          const used = process.cpuUsage(start)
          cpu[name] = (used.user + used.system) / Math.max(count, 1)
        },
      },
    )
  }
  await bench.run()
  const out: Record<string, Measured> = {}
  for (const task of bench.tasks) {
    const result = task.result
    if (result.state !== 'completed') {
      throw new Error(`benchmark ${task.name} did not complete: ${result.state}`)
    }
    out[task.name] = { medianUs: result.latency.p50 * 1000, cpuUs: cpu[task.name]! }
  }
  return out
}

/**
 * Median CPU time and wall time per call of each task, the tasks taking turns call by call
 * (`rounds` turns after `warmup`), so that a change in the machine's load between tasks does
 * not become a ratio. For short synchronous CPU work on this thread; the CPU time is the whole
 * process's (`process.cpuUsage`), time spent descheduled is not in it.
 */
export function interleaved(
  tasks: Record<string, () => unknown>,
  options: { rounds?: number; warmup?: number } = {},
): Record<string, { cpuUs: number; wallUs: number }> {
  const names = Object.keys(tasks)
  const cpu: number[][] = names.map(() => [])
  const wall: number[][] = names.map(() => [])
  const warmup = options.warmup ?? 20
  const rounds = warmup + (options.rounds ?? 200)
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < names.length; i++) {
      const fn = tasks[names[i]!]!
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      fn()
      const t1 = performance.now()
      const used = process.cpuUsage(c0)
      if (r >= warmup) {
        cpu[i]!.push(used.user + used.system)
        wall[i]!.push((t1 - t0) * 1000)
      }
    }
  }
  return Object.fromEntries(
    names.map((name, i) => [name, { cpuUs: median(cpu[i]!), wallUs: median(wall[i]!) }]),
  )
}

/**
 * Run `fn` while spinner processes keep vCPUs busy. Default: one at `nice 19` per vCPU, the
 * "loaded" machine whose vCPUs never park, at little cost to this process (nice 19 weighs 15
 * against our 1024). `{ count: 1, nice: 0 }`: another process wanting a whole vCPU as much as
 * we do, the "contended" machine.
 */
export async function withLoad<T>(
  fn: () => Promise<T>,
  options: { count?: number; nice?: number } = {},
): Promise<T> {
  const spinners: ChildProcess[] = []
  for (let i = 0; i < (options.count ?? cpus().length); i++) {
    const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' })
    if (child.pid !== undefined) {
      setPriority(child.pid, options.nice ?? 19)
    }
    spinners.push(child)
  }
  try {
    await new Promise((resolve) => setTimeout(resolve, 200))
    return await fn()
  } finally {
    for (const child of spinners) {
      child.kill('SIGKILL')
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/**
 * CPU time (user + system, every thread) a process has used so far, in ms, from
 * `/proc/<pid>/stat` (Linux; undefined elsewhere or when it is gone). Ticks of
 * `getconf CLK_TCK` (100 Hz here): 10 ms resolution, so measure over seconds.
 */
export function processCpuMs(pid: number): number | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // NB: the command name (field 2) may hold spaces; the fields after it are plain.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks()
}

let ticks: number | undefined
function clockTicks(): number {
  ticks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  return ticks
}

/** The 1-minute load average, for the notes: "idle" means nothing else ran. */
export function load1(): string {
  return loadavg()[0]!.toFixed(2)
}

/** Median of plain numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Print rows as a table. */
export function printRows(rows: Row[]): void {
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))
  let question = ''
  for (const row of rows) {
    if (row.question !== question) {
      question = row.question
      console.log(`\n## ${question}`)
    }
    const ratio = row.ratio === undefined ? '' : `  ×${row.ratio.toFixed(2)} vs ${row.baseline}`
    const target = row.target ? `  [target ${row.target}]` : ''
    const note = row.note ? `  (${row.note})` : ''
    console.log(
      `  ${row.name.padEnd(52)} ${fmt(row.medianUs).padStart(9)} µs${ratio}${target}${note}`,
    )
  }
}
