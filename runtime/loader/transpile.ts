/**
 * Transpile and instrument a component off the main thread, under a time and heap budget.
 */
import { WardenError } from '../errors.js'
import { startWorker } from '../internal/worker.js'
import type { Worker } from 'node:worker_threads'
import type { WardenErrorCode } from '../errors.js'

/** Budget for one transpilation. */
export interface TranspileBudget {
  /** Deadline. Default 120 s (a 12 MiB componentize-js app takes a few seconds). */
  timeoutMs: number
  /** V8 old-generation heap of the worker, in MiB. Default 1024. */
  maxHeapMb: number
}

/** Default {@link TranspileBudget}. */
export const DEFAULT_TRANSPILE_BUDGET: Readonly<TranspileBudget> = Object.freeze({
  timeoutMs: 120_000,
  maxHeapMb: 1024,
})

/** @internal The worker's input. */
export interface TranspileRequest {
  bytes: Uint8Array
  maxMemoryPages: number
  maxTableElements: number
}

/** @internal The worker's output. */
export type TranspileResponse =
  | {
      ok: true
      wit: string
      glue: string
      modules: { name: string; bytes: Uint8Array<ArrayBuffer>; minMemoryPages: number }[]
    }
  | { ok: false; code: WardenErrorCode; message: string }


interface Job {
  id: number
  request: TranspileRequest
  resolve: (value: TranspileResponse & { ok: true }) => void
  reject: (error: WardenError) => void
}

/**
 * Runs jco and the instrumenter in a budgeted worker, one job at a time. The worker is kept
 * between jobs (jco's start-up costs about a second) and replaced after any job that broke
 * its budget.
 *
 * @example
 * const transpiler = new Transpiler()
 * const out = await transpiler.transpile({ bytes, maxMemoryPages: 16384, maxTableElements: 1e6 })
 */
export class Transpiler {
  readonly #budget: TranspileBudget
  readonly #queue: Job[] = []
  #worker: Worker | undefined
  #current: (Job & { timer: NodeJS.Timeout }) | undefined
  #nextId = 1
  #started = 0

  constructor(budget: TranspileBudget = DEFAULT_TRANSPILE_BUDGET) {
    this.#budget = budget
  }

  /** Transpile one component. Fails with `invalid_component` past the budget. */
  transpile(request: TranspileRequest): Promise<TranspileResponse & { ok: true }> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, request, resolve, reject })
      this.#next()
    })
  }

  /** Transpile workers started so far: one, plus one after every failed or broken job. */
  get workersStarted(): number {
    return this.#started
  }

  /** Stop the worker. */
  async close(): Promise<void> {
    const worker = this.#worker
    this.#worker = undefined
    await worker?.terminate()
  }

  #next(): void {
    if (this.#current || this.#queue.length === 0) {
      return
    }
    const job = this.#queue.shift()!
    const worker = (this.#worker ??= this.#spawn())
    const timer = setTimeout(
      () =>
        this.#fail(
          new WardenError(
            'invalid_component',
            `transpiling the component took longer than ${this.#budget.timeoutMs} ms`,
          ),
        ),
      this.#budget.timeoutMs,
    )
    this.#current = { ...job, timer }
    worker.ref()
    worker.postMessage({ id: job.id, request: job.request })
  }

  #spawn(): Worker {
    this.#started++
    const worker = startWorker(import.meta.url, './transpile-worker', {
      env: {},
      resourceLimits: { maxOldGenerationSizeMb: this.#budget.maxHeapMb },
    })
    worker.unref()
    worker.on('message', ({ id, response }: { id: number; response: TranspileResponse }) => {
      const job = this.#current
      if (!job || job.id !== id) {
        return
      }
      clearTimeout(job.timer)
      this.#current = undefined
      worker.unref()
      if (response.ok) {
        job.resolve(response)
      } else {
        // A component that made jco fail may have left its wasm state broken (a trap inside
        // jco poisons every later job in that instance): never reuse the worker after one.
        this.#worker = undefined
        void worker.terminate()
        job.reject(new WardenError(response.code, response.message))
      }
      this.#next()
    })
    worker.on('error', (error) =>
      this.#fail(
        new WardenError(
          'invalid_component',
          /heap|memory/i.test(String(error))
            ? 'transpiling the component ran out of its memory budget'
            : 'transpiling the component failed',
          { cause: error },
        ),
        worker,
      ),
    )
    worker.on('exit', () =>
      this.#fail(new WardenError('invalid_component', 'transpiling the component failed'), worker),
    )
    return worker
  }

  /** End the current job with `error` and replace the worker. */
  #fail(error: WardenError, from?: Worker): void {
    if (from && from !== this.#worker) {
      return
    }
    const worker = this.#worker
    this.#worker = undefined
    void worker?.terminate()
    const job = this.#current
    this.#current = undefined
    if (job) {
      clearTimeout(job.timer)
      job.reject(error)
    }
    this.#next()
  }
}
