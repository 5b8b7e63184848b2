/**
 * Shared helpers for the benchmarks: a tinybench runner that returns medians in µs, and a
 * printer. Every file in bench/ answers one question and returns rows; `index.ts` prints them.
 */
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
    console.log(`  ${row.name.padEnd(52)} ${fmt(row.medianUs).padStart(9)} µs${ratio}${target}${note}`)
  }
}
