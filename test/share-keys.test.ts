/**
 * A run counts against the share named by its `shareKey` (the built-in JS sandbox is one app
 * for every tenant, shared per token family), in the thread pool and the sandbox process
 * alike: one tenant filling its share of an app does not refuse another's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LoadedComponent } from '../runtime/index.js'
import { infiniteLoop } from './support/guests.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { compileWat } from './support/wat.js'

const runtimes: Record<'thread' | 'process', TestRuntime | undefined> = {
  thread: undefined,
  process: undefined,
}
const loops: Partial<Record<'thread' | 'process', LoadedComponent>> = {}

beforeAll(async () => {
  // One running and one waiting per share: the third run of a share is refused at once.
  const options = { poolSize: 2, maxRunningPerApp: 1, maxQueuedPerApp: 1 }
  const [thread, processes] = await Promise.all([
    startTestRuntime(options),
    startTestRuntime({ ...options, isolation: 'process' }),
  ])
  runtimes.thread = thread
  runtimes.process = processes
  const bytes = await compileWat(infiniteLoop)
  loops.thread = await thread.warden.load(bytes)
  loops.process = await processes.warden.load(bytes)
}, 60_000)

afterAll(async () => {
  await Promise.all([runtimes.thread?.close(), runtimes.process?.close()])
})

describe.each(['thread', 'process'] as const)('shares in the %s sandbox', (mode) => {
  it('are counted per shareKey, not per app', async () => {
    const warden = runtimes[mode]!.warden
    const app = loops[mode]!
    const run = (shareKey: string) =>
      warden.invoke(app, '', { shareKey, limits: { fuel: 1e12, timeoutMs: 400 } })
    const first = [run('tenant-a'), run('tenant-a')]
    const third = await run('tenant-a')
    expect(third.error?.code).toBe('limit_exceeded')
    const other = await run('tenant-b')
    expect(other.error?.code).toBe('timeout')
    for (const r of await Promise.all(first)) {
      expect(r.error?.code).toBe('timeout')
    }
  })
})
