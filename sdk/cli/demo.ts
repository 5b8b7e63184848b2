/**
 * `warden demo` (what `npm start` runs until the HTTP server lands): three bundled examples
 * through the real sandbox: one that works, one that never stops, one that eats memory.
 */
import { join } from 'node:path'
import { createRuntime } from '../../runtime/index.js'
import type { Invocation, Isolation } from '../../runtime/index.js'
import { readComponentFile } from './load-file.js'
import { packageRoot } from './paths.js'

interface DemoStep {
  title: string
  file: string
  input: string
  options: Parameters<Awaited<ReturnType<typeof createRuntime>>['invoke']>[2]
}

const STEPS: DemoStep[] = [
  {
    title: 'hello: logs its input and returns it',
    file: 'examples/hello/hello.wat',
    input: '{"greeting":"hello from the sandbox"}',
    options: { interfaces: ['warden:platform/log'] },
  },
  {
    title: 'runaway: loops forever, stopped by its fuel budget',
    file: 'examples/runaway/runaway.wat',
    input: '{}',
    options: { limits: { fuel: 5_000_000 } },
  },
  {
    title: 'memory-hog: grows memory forever, stopped at its 16 MiB cap',
    file: 'examples/memory-hog/memory-hog.wat',
    input: '{}',
    options: { limits: { memoryMb: 16 } },
  },
]

/** Run the demo, writing a short report for each step to `out`. Returns true if every step behaved. */
export async function runDemo(
  dataDir: string,
  out: (line: string) => void,
  isolation: Isolation = 'thread',
): Promise<boolean> {
  const root = packageRoot()
  const warden = await createRuntime({ dataDir, poolSize: 2, isolation })
  const network = warden.isolation.networkIsolated ? ', no network' : ''
  out(
    `Warden demo: three bundled examples in the sandbox (data dir: ${dataDir}; isolation: ${isolation}${isolation === 'process' ? network : ''})\n`,
  )
  let behaved = true
  try {
    for (const [i, step] of STEPS.entries()) {
      const app = await warden.load(await readComponentFile(join(root, step.file)))
      const run = await warden.invoke(app, step.input, step.options)
      out(`${i + 1}. ${step.title}`)
      out(
        `   ${step.file}  ${app.digest.slice(0, 19)}…  imports: ${app.imports.join(', ') || 'none'}`,
      )
      out(`   ${describe(run)}`)
      out(
        `   fuel ${run.report.fuelUsed ?? '?'} / ${run.report.fuelLimit}, memory peak ${formatBytes(run.report.memoryPeakBytes)} / ${formatBytes(run.report.memoryLimitBytes)}, ${run.report.wallMs.toFixed(1)} ms\n`,
      )
      behaved &&= i === 0 ? run.ok : !run.ok && run.error !== undefined
    }
  } finally {
    await warden.close()
  }
  out('Try it yourself: npm run warden -- run examples/hello/hello.wat --input \'{"a":1}\' --json')
  return behaved
}

function describe(run: Invocation): string {
  if (run.ok) {
    const logs = run.logs.map((l) => `[${l.level}] ${l.message}`).join('; ')
    return `ok → ${String(run.output)}${logs ? `   logs: ${logs}` : ''}`
  }
  if (run.error) {
    return `stopped: ${run.error.code} (${run.error.message})`
  }
  return `guest error → ${String(run.guestError)}`
}

function formatBytes(bytes: number | null): string {
  if (bytes === null) {
    return '?'
  }
  return bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(1)} MiB`
    : `${(bytes / 1024).toFixed(0)} KiB`
}
