/**
 * Not a tinybench question: what a run ended at its deadline costs the host, in CPU of every
 * thread of the process (the main thread, the workers, their replacements, V8's helpers:
 * `process.cpuUsage()`, which counts threads that have exited too), the guest's own spinning
 * included (at most the deadline; less on a busy machine, where a hog's worker runs at nice
 * 19). A pool of 2; a guest that loops forever with fuel for hours, a 100 ms deadline;
 * runs back to back, two at a time. Run with `npx tsx bench/deadline-cpu.ts [runs]`.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime } from '../runtime/index.js'
import { infiniteLoop } from '../test/support/guests.js'
import { compileWat } from '../test/support/wat.js'

const runs = Number(process.argv[2] ?? 40)
const DEADLINE_MS = 100

const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
const warden = await createRuntime({ dataDir: dir, poolSize: 2 })
try {
  const loop = await warden.load(await compileWat(infiniteLoop))
  await warden.pool.warm()
  const one = () => warden.invoke(loop, '', { limits: { fuel: 1e12, timeoutMs: DEADLINE_MS } })
  // Warm-up: both workers have run the component once.
  await Promise.all([one(), one()])
  await new Promise((resolve) => setTimeout(resolve, 500))
  await warden.pool.warm()
  const replacements = warden.pool.replacements
  const cpu = process.cpuUsage()
  const started = performance.now()
  let timeouts = 0
  for (let i = 0; i < runs; i += 2) {
    const pair = await Promise.all([one(), one()])
    timeouts += pair.filter((r) => r.error?.code === 'timeout').length
  }
  const wallMs = performance.now() - started
  // Replacements still starting count too: wait for the pool to be whole.
  await warden.pool.warm()
  await new Promise((resolve) => setTimeout(resolve, 300))
  const used = process.cpuUsage(cpu)
  const cpuMs = (used.user + used.system) / 1000
  console.log(
    JSON.stringify({
      runs,
      timeouts,
      replacements: warden.pool.replacements - replacements,
      cpuMsPerRun: +(cpuMs / runs).toFixed(1),
      wallMsPerPair: +(wallMs / (runs / 2)).toFixed(1),
      loadavg: loadavg().map((l) => +l.toFixed(2)),
    }),
  )
} finally {
  await warden.close()
  await rm(dir, { recursive: true, force: true })
}
