/**
 * Question: how many tiny runs per second does `openWarden` get through with 8 in flight, the
 * way the invoke route calls it (verifyToken, then run with the verified claims), against the
 * bare runtime's `invoke` of the same build in the same run? The gap is the per-run host work:
 * token and revocation checks, redaction, the audit records and their fsync. Less noisy than
 * the HTTP figure (no load generator on the same 2 vCPUs), so it is the proxy to compare
 * changes with.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_CEILINGS } from '../runtime/limits/limits.js'
import { openWarden } from '../runtime/warden.js'
import { guestFile } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'
import { BATCH, IN_FLIGHT, batch, throughputOptions } from './throughput.bench.js'

const QUESTION = 'warden.run with 8 in flight (verifyToken + run, echo, 1 log call, pool 2)'

export async function run(): Promise<Row[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-bench-run-'))
  const warden = await openWarden({
    dataDir,
    ceilings: DEFAULT_CEILINGS,
    masterKey: undefined,
    maxTokenLifetimeSeconds: 3600,
    ...throughputOptions(2),
  })
  try {
    const app = await warden.load(await guestFile('echo'))
    await warden.runtime.pool.warm()
    const { token } = await warden.grantToken({
      appId: 'echo',
      digest: app.digest,
      grants: { log: true },
      lifetimeSeconds: 3600,
    })
    const one = async () => {
      const verified = await warden.verifyToken(token)
      const r = await warden.run(app, '"x"', { token, appId: 'echo', verified })
      if (!r.ok) {
        throw new Error(JSON.stringify(r.error))
      }
    }
    const wardenBatch = async () => {
      let left = BATCH
      const caller = async () => {
        while (left-- > 0) {
          await one()
        }
      }
      await Promise.all(Array.from({ length: IN_FLIGHT }, caller))
    }
    const m = await medians(
      { runtime: batch(warden.runtime, app), warden: wardenBatch },
      { time: 3000 },
    )
    const perRun = (key: string) => m[key]! / BATCH
    const rate = (key: string) =>
      `${Math.round(1e6 / perRun(key)).toLocaleString('en')} runs/s (load ${loadNote()})`
    return [
      {
        question: QUESTION,
        name: 'runtime.invoke: µs per run (floor)',
        medianUs: perRun('runtime'),
        note: rate('runtime'),
      },
      {
        question: QUESTION,
        name: 'warden.run: µs per run',
        medianUs: perRun('warden'),
        ratio: perRun('warden') / perRun('runtime'),
        baseline: 'runtime.invoke',
        target: '≥ 3,000 runs/s (the API target)',
        note: rate('warden'),
      },
    ]
  } finally {
    await warden.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

function loadNote(): string {
  return loadavg()
    .map((l) => l.toFixed(1))
    .join('/')
}
