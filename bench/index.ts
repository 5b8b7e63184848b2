/**
 * `npm run bench`: every question in bench/, measured in one run on this machine, printed as
 * medians and ratios against a baseline measured in the same run.
 */
import { arch, cpus, totalmem } from 'node:os'
import { printRows } from './support.js'
import type { Row } from './support.js'
import { run as auditReads } from './audit-reads.bench.js'
import { run as componentizeJs } from './componentize-js.bench.js'
import { run as fuel } from './fuel.bench.js'
import { run as hostCalls } from './host-calls.bench.js'
import { run as hostile } from './hostile.bench.js'
import { run as instantiate } from './instantiate.bench.js'
import { run as isolation } from './isolation.bench.js'
import { run as jsRuns } from './js-runs.bench.js'
import { run as latency } from './latency.bench.js'
import { run as memoryReset } from './memory-reset.bench.js'
import { run as microApp } from './micro-app.bench.js'
import { run as peers } from './peers.bench.js'
import { run as redis } from './redis.bench.js'
import { run as server } from './server.bench.js'
import { run as telemetry } from './telemetry.bench.js'
import { run as throughput } from './throughput.bench.js'
import { run as timeout } from './timeout.bench.js'
import { run as wardenRun } from './warden-run.bench.js'

const questions: [string, () => Promise<Row[]>][] = [
  ['instantiate', instantiate],
  ['memory-reset', memoryReset],
  ['host-calls', hostCalls],
  ['fuel', fuel],
  ['timeout', timeout],
  ['componentize-js', componentizeJs],
  ['js-runs', jsRuns],
  ['isolation', isolation],
  ['throughput', throughput],
  ['latency', latency],
  ['peers', peers],
  ['warden-run', wardenRun],
  ['hostile', hostile],
  ['server', server],
  ['micro-app', microApp],
  ['telemetry', telemetry],
  ['redis', redis],
  ['audit-reads', auditReads],
]

const only = process.argv.slice(2)
console.log(
  `# Warden benchmarks — node ${process.version}, ${arch()}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
)
for (const [name, run] of questions) {
  if (only.length > 0 && !only.includes(name)) {
    continue
  }
  printRows(await run())
}
