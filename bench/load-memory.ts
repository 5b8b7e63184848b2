/**
 * Question: how much memory does the HOST process take, above its baseline, while it loads a
 * large upload (the ~11.5 MB componentize-js guest), as a multiple of the upload's size? The
 * requirement: at most 3×, on the first (uncached) load and on a cached one.
 *
 * `npx tsx bench/load-memory.ts` builds the guest (cached under node_modules/.cache), then
 * measures each load in a fresh process (`node --expose-gc --import tsx`): first with an empty
 * data dir (jco runs), then again with the same data dir (served from the disk cache). Linux
 * only: it reads `/proc/self/status`.
 *
 * Host figures: the peak resident set above the baseline taken just before `load()` (the bytes
 * already read), from three sources: `VmHWM` after resetting it (`/proc/self/clear_refs`),
 * `process.resourceUsage().maxRSS` (not resettable: only meaningful above the baseline), and
 * `process.memoryUsage().rss` sampled every 2 ms (misses peaks inside synchronous work). The
 * transpile child's own peak comes from the `warden.transpile.job` diagnostics channel.
 */
import { execFileSync } from 'node:child_process'
import { subscribe } from 'node:diagnostics_channel'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const MB = 1024 * 1024

interface Measurement {
  uploadBytes: number
  cached: boolean
  baselineRss: number
  /** Peak RSS above the baseline, per source, in bytes. */
  hwm: number | undefined
  maxRss: number
  sampled: number
  afterRss: number
  /** The transpile child's own peak RSS, when one ran and reported it. */
  childMaxRss: number | undefined
  loadMs: number
}

/** `VmHWM` of this process, in bytes. */
async function readHwm(): Promise<number | undefined> {
  try {
    const status = await readFile('/proc/self/status', 'utf8')
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
}

/** Reset `VmHWM` to the current RSS (Linux ≥ 4.0); false when not allowed. */
async function resetHwm(): Promise<boolean> {
  try {
    await writeFile('/proc/self/clear_refs', '5')
    return true
  } catch {
    return false
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** One load in this (fresh) process. */
async function measure(file: string, dataDir: string): Promise<Measurement> {
  const { ComponentLoader } = await import('../runtime/loader/load.js')
  const { DEFAULT_CAPABILITIES } = await import('../host-capabilities/index.js')
  const { testEchoDescriptor } = await import('../host-capabilities/test-echo/index.js')
  let childMaxRss: number | undefined
  subscribe('warden.transpile.job', (message) => {
    const m = message as { maxRssBytes?: number }
    childMaxRss = Math.max(childMaxRss ?? 0, m.maxRssBytes ?? 0)
  })
  const loader = new ComponentLoader({
    dataDir,
    capabilities: [...DEFAULT_CAPABILITIES, testEchoDescriptor],
    maxMemoryPages: 4096,
  })
  try {
    const bytes = new Uint8Array(await readFile(file))
    await settle()
    const baselineRss = process.memoryUsage().rss
    const hwmReset = await resetHwm()
    let sampledPeak = baselineRss
    const sampler = setInterval(() => {
      sampledPeak = Math.max(sampledPeak, process.memoryUsage().rss)
    }, 2)
    const started = performance.now()
    const loaded = await loader.load(bytes, { uploader: 'bench' })
    const loadMs = performance.now() - started
    clearInterval(sampler)
    sampledPeak = Math.max(sampledPeak, process.memoryUsage().rss)
    const hwm = hwmReset ? await readHwm() : undefined
    const maxRss = process.resourceUsage().maxRSS * 1024
    await settle()
    const afterRss = process.memoryUsage().rss
    return {
      uploadBytes: bytes.byteLength,
      cached: loaded.cached,
      baselineRss,
      hwm: hwm === undefined ? undefined : hwm - baselineRss,
      maxRss: maxRss - baselineRss,
      sampled: sampledPeak - baselineRss,
      afterRss: afterRss - baselineRss,
      childMaxRss,
      loadMs,
    }
  } finally {
    await loader.close()
  }
}

function row(label: string, m: Measurement): string {
  const x = (n: number | undefined) =>
    n === undefined ? 'n/a' : `${(n / MB).toFixed(1)} MB (${(n / m.uploadBytes).toFixed(1)}×)`
  return [
    `${label} (cached: ${m.cached}, ${(m.loadMs / 1000).toFixed(1)} s, baseline ${(m.baselineRss / MB).toFixed(0)} MB)`,
    `  host peak above baseline, VmHWM:   ${x(m.hwm)}`,
    `  host peak above baseline, maxRSS:  ${x(m.maxRss)}`,
    `  host peak above baseline, sampled: ${x(m.sampled)}`,
    `  host after load (held):            ${x(m.afterRss)}`,
    `  transpile child's own peak RSS:    ${x(m.childMaxRss)}`,
  ].join('\n')
}

async function main(): Promise<void> {
  const [mode, file, dataDir] = process.argv.slice(2)
  if (mode === '--measure' && file && dataDir) {
    process.stdout.write(`${JSON.stringify(await measure(file, dataDir))}\n`)
    return
  }
  const { buildJsGuest } = await import('../test/support/js-guest.js')
  const dir = await mkdtemp(join(tmpdir(), 'warden-load-memory-'))
  try {
    const file = join(dir, 'guest.wasm')
    await writeFile(file, await buildJsGuest('bridge'))
    const data = join(dir, 'data')
    const self = fileURLToPath(import.meta.url)
    const fresh = () =>
      JSON.parse(
        execFileSync(
          process.execPath,
          ['--expose-gc', '--import', 'tsx', self, '--measure', file, data],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
        ),
      ) as Measurement
    const first = fresh()
    const cached = fresh()
    console.log(`upload: ${(first.uploadBytes / MB).toFixed(1)} MB`)
    console.log(row('first load', first))
    console.log(row('cached load', cached))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
