/**
 * Question: how quickly does the host regain control from a guest that never stops, and is a
 * run right after it slower? Deadline-enforced runs are measured one by one (until cost model 6
 * each killed a worker and started a replacement; now the guest ends itself at its next fuel
 * check), so this file uses plain timing rather than tinybench loops.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime } from '../runtime/index.js'
import { infiniteLoop } from '../test/support/guests.js'
import { compileWat, guestFile } from '../test/support/wat.js'
import { median } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'timeout enforcement (infinite loop, fuel 1e12, deadline 50 ms)'
const DEADLINE_MS = 50
const ROUNDS = 15

export async function run(): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  const warden = await createRuntime({ dataDir: dir, poolSize: 2 })
  try {
    const loop = await warden.load(await compileWat(infiniteLoop))
    const echo = await warden.load(await guestFile('echo'))
    await warden.pool.warm()
    const late: number[] = []
    const neighbour: number[] = []
    const quiet: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      await warden.pool.warm()
      for (let j = 0; j < 5; j++) {
        const t = performance.now()
        await warden.invoke(echo, 'x')
        quiet.push(performance.now() - t)
      }
      const started = performance.now()
      const runaway = await warden.invoke(loop, '', {
        limits: { fuel: 1e12, timeoutMs: DEADLINE_MS },
      })
      late.push(performance.now() - started - DEADLINE_MS)
      if (runaway.error?.code !== 'timeout') {
        throw new Error(`expected timeout, got ${JSON.stringify(runaway.error)}`)
      }
      // Right after the deadline: the worker is back (before cost model 6: being replaced).
      const t = performance.now()
      const ok = await warden.invoke(echo, 'x')
      neighbour.push(performance.now() - t)
      if (!ok.ok) {
        throw new Error('neighbour run failed')
      }
    }
    return [
      {
        question: QUESTION,
        name: 'control regained after the deadline (lateness)',
        medianUs: median(late) * 1000,
        target: '≤ 5 ms',
      },
      { question: QUESTION, name: 'echo run on a quiet pool', medianUs: median(quiet) * 1000 },
      {
        question: QUESTION,
        name: 'echo run right after a deadline',
        medianUs: median(neighbour) * 1000,
        ratio: median(neighbour) / median(quiet),
        baseline: 'quiet pool',
      },
    ]
  } finally {
    await warden.close()
    await rm(dir, { recursive: true, force: true })
  }
}
