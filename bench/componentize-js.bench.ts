/**
 * Question: what does a fresh-instance run of a componentize-js guest cost? Its core module
 * is SpiderMonkey (~12 MB), so each fresh instance pays for the engine's start. Reported,
 * not targeted: instance pooling / snapshots come later.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestEchoCapability } from '../host-capabilities/test-echo/index.js'
import { createRuntime } from '../runtime/index.js'
import { buildJsGuest } from '../test/support/js-guest.js'
import { guestFile } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'fresh-instance run of a componentize-js guest (SpiderMonkey)'

export async function run(): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  const warden = await createRuntime({
    dataDir: dir,
    poolSize: 1,
    brokerCapabilities: [createTestEchoCapability()],
  })
  try {
    const started = performance.now()
    const js = await warden.load(await buildJsGuest('bridge'))
    const loadMs = performance.now() - started
    const wat = await warden.load(await guestFile('echo'))
    await warden.pool.warm()
    const grant = ['warden:platform/log', 'warden:test/echo']
    const once = (app: typeof js, input: string) => async () => {
      const r = await warden.invoke(app, input, { interfaces: grant })
      if (!r.ok) {
        throw new Error(JSON.stringify(r.error ?? r.guestError))
      }
    }
    const m = await medians(
      {
        wat: once(wat, 'x'),
        js: once(js, JSON.stringify({ op: 'log', text: 'hi' })),
      },
      { time: 4000, iterations: 10 },
    )
    return [
      { question: QUESTION, name: 'WAT echo through the pool (baseline)', medianUs: m.wat! },
      {
        question: QUESTION,
        name: 'componentize-js guest, one log call',
        medianUs: m.js!,
        ratio: m.js! / m.wat!,
        baseline: 'WAT echo',
      },
      {
        question: QUESTION,
        name: 'first load of the JS guest (transpile + instrument + compile)',
        medianUs: loadMs * 1000,
        note: 'one sample',
      },
    ]
  } finally {
    await warden.close()
    await rm(dir, { recursive: true, force: true })
  }
}
