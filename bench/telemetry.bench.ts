/**
 * Question: what does OpenTelemetry cost the run path? A tokened `Warden.run` (verify, run,
 * redact, audit: the path the API takes) of a guest making 10 broker calls (`ping`) and writing
 * 10 log lines, one run at a time on a pool of 1, three ways in one process:
 *
 * - before: the tree in `WARDEN_BENCH_BASELINE` (a checkout without telemetry, with its
 *   node_modules), if set;
 * - off: this tree, telemetry off (the default: no OTLP endpoint);
 * - on: this tree, telemetry on, exporting OTLP/HTTP (protobuf, the SDK's defaults: batches,
 *   60 s metric interval) to a receiver in a child process on loopback that drops everything.
 *
 * Before and off run call by call in turn, `WARDEN_BENCH_RUNS` (200) each per round, so that
 * whatever else the machine does hits both alike; on registers process-wide globals (and async
 * hooks), so it runs in its own block after them, and is shut down before the next round.
 * `WARDEN_BENCH_ROUNDS` rounds (5). Figures: the median wall time per run, and the CPU this
 * process (every thread) spent per run, which other processes' load disturbs less.
 *
 * @example
 * git archive <commit before telemetry> | tar -x -C /tmp/warden-base
 * ln -s "$PWD/node_modules" /tmp/warden-base/node_modules
 * WARDEN_BENCH_BASELINE=/tmp/warden-base npx tsx bench/index.ts telemetry
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { flagGrant } from '../host-capabilities/grant.js'
import { openWarden, startTelemetry } from '../runtime/index.js'
import type { Telemetry, Warden } from '../runtime/index.js'
import { compileWat } from '../test/support/wat.js'
import { caller, LOG_IMPORT, LOWER, ping } from './host-calls.bench.js'
import { load1, median } from './support.js'
import type { Row } from './support.js'

const QUESTION =
  'OpenTelemetry on the run path (tokened Warden.run, 10 broker calls + 10 log lines)'
const CALLS = 10

type Variant = 'before' | 'off' | 'on'

/** The parts of a Warden tree this bench uses, from this tree or the baseline's. */
interface Tree {
  openWarden: typeof openWarden
  flagGrant: typeof flagGrant
}

/** A receiver that answers every OTLP export with 200 and keeps nothing, in a child process. */
async function startReceiver(): Promise<{ url: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:http').createServer((q, r) => { q.resume(); q.on('end', () => { r.writeHead(200, { 'content-type': 'application/x-protobuf' }); r.end() }) });
       s.listen(0, '127.0.0.1', () => console.log(s.address().port))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const port = await new Promise<string>((resolvePort, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => resolvePort(chunk.toString().trim()))
    child.once('error', reject)
  })
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') }
}

/** One Warden on a fresh data dir with the guest loaded and a token for it. */
async function open(tree: Tree, telemetry: Telemetry | undefined) {
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-otel-'))
  const capability = {
    descriptor: ping.descriptor,
    grant: tree.flagGrant('ping'),
    broker: () => ping,
  }
  const warden: Warden = await tree.openWarden({
    dataDir: dir,
    ceilings: { maxMemoryMb: 1024, maxTimeoutMs: 300_000, maxFuel: 1e12 },
    masterKey: undefined,
    maxTokenLifetimeSeconds: 3600,
    poolSize: 1,
    extraCapabilities: [capability],
    ...(telemetry ? { telemetry } : {}),
  })
  const app = await warden.load(
    await compileWat(
      caller(
        LOG_IMPORT,
        LOWER,
        '(call $f (i32.const 1) (i32.const 512) (i32.const 5)) (drop (call $g (local.get $i)))',
      ),
    ),
  )
  const { token } = await warden.grantToken({
    appId: 'bench',
    digest: app.digest,
    grants: { log: true, ping: true } as never,
    lifetimeSeconds: 3600,
  })
  await warden.runtime.pool.warm()
  const once = async () => {
    const r = await warden.run(app, String(CALLS), { token })
    if (!r.ok) {
      throw new Error(JSON.stringify(r.error))
    }
  }
  await once()
  return {
    once,
    async close() {
      await warden.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Per-run wall time (µs) and CPU of this whole process (µs), of each call in turn. */
interface Samples {
  wall: number[]
  cpu: number[]
}

/** Time one call: its wall time and the CPU this process (every thread) spent meanwhile. */
async function sample(into: Samples, once: () => Promise<void>): Promise<void> {
  const cpu = process.cpuUsage()
  const start = performance.now()
  await once()
  into.wall.push((performance.now() - start) * 1000)
  const used = process.cpuUsage(cpu)
  into.cpu.push(used.user + used.system)
}

export async function run(): Promise<Row[]> {
  const here: Tree = { openWarden, flagGrant }
  const baseDir = process.env.WARDEN_BENCH_BASELINE
  let before: Tree | undefined
  if (baseDir) {
    const at = (path: string) => pathToFileURL(resolve(baseDir, path)).href
    before = {
      openWarden: (await import(at('runtime/index.ts'))).openWarden,
      flagGrant: (await import(at('host-capabilities/grant.ts'))).flagGrant,
    }
  }
  const rounds = Number(process.env.WARDEN_BENCH_ROUNDS ?? 5)
  const runs = Number(process.env.WARDEN_BENCH_RUNS ?? 200)
  const receiver = await startReceiver()
  const saved = { ...process.env }
  const samples: Record<Variant, Samples> = {
    before: { wall: [], cpu: [] },
    off: { wall: [], cpu: [] },
    on: { wall: [], cpu: [] },
  }
  const loads: string[] = []
  try {
    for (let round = 0; round < rounds; round++) {
      loads.push(load1())
      // Before and off in one process, call by call in turn: whatever the machine does hits both.
      const off = await open(here, undefined)
      const base = before ? await open(before, undefined) : undefined
      try {
        for (let i = 0; i < runs; i++) {
          if (base) {
            await sample(samples.before, base.once)
          }
          await sample(samples.off, off.once)
        }
      } finally {
        await off.close()
        await base?.close()
      }
      // On registers process-wide globals (and async hooks): its own block, shut down after.
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url
      const telemetry = await startTelemetry({ enabled: true })
      const on = await open(here, telemetry)
      try {
        for (let i = 0; i < runs; i++) {
          await sample(samples.on, on.once)
        }
      } finally {
        await on.close()
        await telemetry.shutdown()
        process.env = { ...saved }
      }
    }
  } finally {
    receiver.stop()
  }
  const note = (v: Variant) =>
    `CPU ${(mean(samples[v].cpu) / 1000).toFixed(2)} ms/run${v === 'before' ? `; ${rounds} × ${runs} runs, load ${loads.join(' ')}` : ''}`
  const wall = (v: Variant) => median(samples[v].wall)
  const cpuRatio = (v: Variant, b: Variant) =>
    (mean(samples[v].cpu) / mean(samples[b].cpu)).toFixed(2)
  const reference: Variant = before ? 'before' : 'off'
  const rows: Row[] = []
  if (before) {
    rows.push({
      question: QUESTION,
      name: 'before telemetry (baseline tree)',
      medianUs: wall('before'),
      note: note('before'),
    })
  }
  rows.push({
    question: QUESTION,
    name: 'telemetry off',
    medianUs: wall('off'),
    ...(before ? { ratio: wall('off') / wall('before'), baseline: 'before' } : {}),
    target: 'no measurable cost',
    note: `${note('off')}${before ? `, ×${cpuRatio('off', 'before')}` : ''}`,
  })
  rows.push({
    question: QUESTION,
    name: 'telemetry on (OTLP/HTTP to loopback)',
    medianUs: wall('on'),
    ratio: wall('on') / wall(reference),
    baseline: reference,
    note: `${note('on')}, ×${cpuRatio('on', reference)}`,
  })
  return rows
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(values.length, 1)
}
