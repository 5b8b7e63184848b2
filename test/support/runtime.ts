import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime, DEFAULT_TRANSPILE_BUDGET } from '../../runtime/index.js'
import type { RuntimeOptions, WardenRuntime } from '../../runtime/index.js'

/** A runtime on a fresh temporary data dir, for one test file. */
export interface TestRuntime {
  warden: WardenRuntime
  dataDir: string
  close(): Promise<void>
}

/** Start a runtime with a small pool on a temporary data dir. */
export async function startTestRuntime(
  options: Partial<RuntimeOptions> = {},
): Promise<TestRuntime> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'warden-test-')))
  const warden = await createRuntime({
    poolSize: 2,
    // A loaded 2-vCPU CI machine can take longer than the default 20 s to transpile a 12 MB
    // componentize-js build; tests of the budget itself set their own.
    transpileBudget: { ...DEFAULT_TRANSPILE_BUDGET, timeoutMs: 120_000 },
    ...options,
    dataDir,
  })
  await warden.pool.warm()
  return {
    warden,
    dataDir,
    async close() {
      await warden.close()
      if (!options.dataDir) {
        await rm(dataDir, { recursive: true, force: true })
      }
    },
  }
}
