/**
 * Install-time preparation of the built-in JS agent: build the component (cached by input
 * hash, see `build.ts`) and transpile + instrument it into its shared transpile cache, so a
 * server start, or a test, only reads and compiles it. `npm run build:agent` runs it (part of
 * `prepare`, so `npm install` / `npm ci` do it once); the test suite's global setup too.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_CEILINGS } from '../limits/limits.js'
import type { LimitCeilings } from '../limits/limits.js'
import { DEFAULT_TRANSPILE_BUDGET } from '../loader/transpile.js'
import { createRuntime } from '../runtime.js'
import { agentCacheDir, agentComponent } from './build.js'

/**
 * Build (when its cache is cold) and prepare the agent component for hosts with `ceilings`.
 * Returns its digest and whether anything had to be done.
 *
 * @example
 * await prepareAgentComponent({ log: console.error })
 */
export async function prepareAgentComponent(
  options: { ceilings?: LimitCeilings; log?: (message: string) => void; cacheDir?: string } = {},
): Promise<{ digest: string; cached: boolean }> {
  const cacheDir = options.cacheDir ?? agentCacheDir()
  const bytes = await agentComponent({
    cacheDir,
    ...(options.log ? { onBuild: options.log } : {}),
  })
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-agent-prepare-'))
  const runtime = await createRuntime({
    dataDir,
    poolSize: 1,
    ceilings: options.ceilings ?? DEFAULT_CEILINGS,
    // Warden's own component, prepared once: no upload budget applies (a loaded host took 30 s).
    transpileBudget: { ...DEFAULT_TRANSPILE_BUDGET, timeoutMs: 300_000 },
  })
  try {
    const component = await runtime.load(bytes, { cacheDir })
    return { digest: component.digest, cached: component.cached }
  } finally {
    await runtime.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}
