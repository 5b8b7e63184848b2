/**
 * Question: how many tiny runs per second does one host get through with 8 runs in flight?
 * One task is a batch of 64 echo runs issued by 8 concurrent callers; runs/s = 64 / median
 * batch time. The pool has one worker per vCPU, and the app's queue admits 8 at once (the
 * default `maxQueuedPerApp` would refuse some on a 1-worker pool).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime } from '../runtime/index.js'
import type { LoadedComponent, WardenRuntime } from '../runtime/index.js'
import { guestFile } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'tiny runs per second, 8 in flight (echo, 1 log call)'

/** Runs in one batch. */
export const BATCH = 64
/** Callers issuing runs at once. */
export const IN_FLIGHT = 8

/** A batch of {@link BATCH} echo runs, {@link IN_FLIGHT} at a time. */
export function batch(warden: WardenRuntime, app: LoadedComponent): () => Promise<void> {
  const one = async () => {
    const r = await warden.invoke(app, 'x', { interfaces: ['warden:platform/log'] })
    if (!r.ok) {
      throw new Error(JSON.stringify(r.error))
    }
  }
  return async () => {
    let left = BATCH
    const caller = async () => {
      while (left-- > 0) {
        await one()
      }
    }
    await Promise.all(Array.from({ length: IN_FLIGHT }, caller))
  }
}

/** Options of a runtime that admits {@link IN_FLIGHT} runs of one app. */
export function throughputOptions(poolSize: number) {
  // One app on the whole pool: the default share (all workers but one) is for shared hosts.
  return { poolSize, maxRunningPerApp: poolSize, maxQueuedPerApp: 2 * IN_FLIGHT }
}

export async function run(): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  const one = await createRuntime({ dataDir: dir, ...throughputOptions(1) })
  const two = await createRuntime({ dataDir: dir, ...throughputOptions(2) })
  try {
    const bytes = await guestFile('echo')
    const appOne = await one.load(bytes)
    const appTwo = await two.load(bytes)
    await Promise.all([one.pool.warm(), two.pool.warm()])
    const m = await medians({ one: batch(one, appOne), two: batch(two, appTwo) }, { time: 3000 })
    const row = (name: string, key: string): Row => ({
      question: QUESTION,
      name,
      medianUs: m[key]! / BATCH,
      target: '≥ 6,000 runs/s',
      note: `${Math.round((BATCH * 1e6) / m[key]!).toLocaleString('en')} runs/s`,
    })
    return [row('1 worker: µs per run', 'one'), row('2 workers: µs per run', 'two')]
  } finally {
    await Promise.all([one.close(), two.close()])
    await rm(dir, { recursive: true, force: true })
  }
}
