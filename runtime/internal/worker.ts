/**
 * Start a worker from a module next to the caller, in both layouts Warden runs in: compiled
 * JavaScript (`dist/`, production) and TypeScript sources (vitest, `tsx`).
 */
import { Worker } from 'node:worker_threads'
import type { WorkerOptions } from 'node:worker_threads'

/**
 * `new Worker` for the sibling module `name` (without extension) of `callerUrl`.
 *
 * @example
 * const worker = startWorker(import.meta.url, './worker', { workerData })
 */
export function startWorker(callerUrl: string, name: string, options: WorkerOptions): Worker {
  if (!callerUrl.endsWith('.ts')) {
    return new Worker(new URL(`${name}.js`, callerUrl), options)
  }
  // NB: `--import tsx` in a worker's execArgv does not reach the worker's entry module on
  // Node 20, so register tsx from a tiny bootstrap and import the TypeScript entry after it.
  const tsx = import.meta.resolve('tsx/esm/api')
  const entry = new URL(`${name}.ts`, callerUrl).href
  const bootstrap = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}) })`
  return new Worker(bootstrap, { ...options, eval: true })
}
