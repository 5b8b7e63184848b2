import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_CEILINGS } from '../../runtime/limits/limits.js'
import { openWarden } from '../../runtime/warden.js'
import type { Warden, WardenOptions } from '../../runtime/warden.js'

/** A Warden host on a fresh temporary data dir, for one test file. */
export interface TestWarden {
  warden: Warden
  dataDir: string
  close(): Promise<void>
}

/** Open Warden with default ceilings, a 1-hour token cap and a small pool on a temp dir. */
export async function openTestWarden(options: Partial<WardenOptions> = {}): Promise<TestWarden> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-test-'))
  const warden = await openWarden({
    dataDir,
    ceilings: DEFAULT_CEILINGS,
    masterKey: undefined,
    maxTokenLifetimeSeconds: 3600,
    poolSize: 1,
    ...options,
  })
  return {
    warden,
    dataDir,
    async close() {
      await warden.close()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}
