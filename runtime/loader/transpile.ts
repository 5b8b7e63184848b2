/**
 * Transpile and instrument components off the main thread, in a small pool of workers, each
 * job under a time and heap budget, uploaders served fairly.
 */
import { WardenError } from '../errors.js'
import { startWorker } from '../internal/worker.js'
import type { Worker } from 'node:worker_threads'
import type { WardenErrorCode } from '../errors.js'

/** Budget for one transpilation. */
export interface TranspileBudget {
  /**
   * Deadline, from the moment a worker takes the job. Default 20 s (a 12 MiB componentize-js
   * app takes about 10 s on a loaded two-core machine).
   */
  timeoutMs: number
  /** V8 old-generation heap of the worker, in MiB. Default 1024. */
  maxHeapMb: number
}

/** Default {@link TranspileBudget}. */
export const DEFAULT_TRANSPILE_BUDGET: Readonly<TranspileBudget> = Object.freeze({
  timeoutMs: 20_000,
  maxHeapMb: 1024,
})

/** Default number of transpile workers. */
export const DEFAULT_TRANSPILE_WORKERS = 2

/** Default most jobs one uploader may have waiting; more are refused (`limit_exceeded`). */
export const DEFAULT_MAX_QUEUED_PER_UPLOADER = 8

/**
 * Default {@link TranspilerOptions.retireAfterBytes}: 8 MiB. jco's WebAssembly memory grows to
 * several times the largest upload a worker has read, and never shrinks.
 */
export const DEFAULT_RETIRE_AFTER_BYTES = 8 * 1024 * 1024

/** Options of {@link Transpiler}. */
export interface TranspilerOptions {
  /** Budget of each job. Default {@link DEFAULT_TRANSPILE_BUDGET}. */
  budget?: TranspileBudget
  /** Workers in the pool, started on demand. Default 2. */
  workers?: number
  /**
   * Workers one uploader may hold at once. Default `workers - 1` (at least 1): however many
   * slow uploads one uploader sends, a worker is left for the others.
   */
  maxWorkersPerUploader?: number
  /** Jobs one uploader may have waiting for a worker. Default 8. */
  maxQueuedPerUploader?: number
  /** A worker that has read an upload of at least this many bytes is retired. Default 8 MiB. */
  retireAfterBytes?: number
}

/** @internal The worker's input: a component to transpile, or WAT text to compile. */
export interface TranspileRequest {
  bytes: Uint8Array
  maxMemoryPages: number
  maxTableElements: number
  /** Whose upload this is (a publisher, `cli`): the unit of fairness. Default `anonymous`. */
  uploader?: string
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

/** @internal What a worker answers to a WAT job. */
export type WatResponse =
  | { ok: true; bytes: Uint8Array<ArrayBuffer> }
  | { ok: false; code: WardenErrorCode; message: string }

/** @internal A message to a worker. */
export type ToTranspileWorker =
  | { id: number; kind: 'component'; request: Omit<TranspileRequest, 'uploader'> }
  | { id: number; kind: 'wat'; text: string }

interface Job {
  id: number
  uploader: string
  message: ToTranspileWorker
  /** Bytes the worker will read, for the retirement rule. */
  size: number
  resolve: (value: unknown) => void
  reject: (error: WardenError) => void
}

interface Slot {
  worker: Worker
  /** The worker has loaded jco; a job's budget starts only then. */
  ready: boolean
  job: (Job & { timer: NodeJS.Timeout | undefined }) | undefined
}

/** Longest wait for a new transpile worker to load jco: 60 s (the host's problem, not the upload's). */
const WORKER_START_TIMEOUT_MS = 60_000

/**
 * Runs jco and the instrumenter in a pool of budgeted workers. Workers start on demand and are
 * kept between jobs (jco's start-up costs about a second), except after a job that failed or
 * broke its budget (a trap inside jco can poison every later job in that worker) or that read
 * a large upload: then the worker is replaced. An uploader may hold at most
 * `maxWorkersPerUploader` workers; waiting jobs are served fewest-running-uploader first, then
 * in order of arrival.
 *
 * @example
 * const transpiler = new Transpiler({ workers: 2 })
 * const out = await transpiler.transpile({
 *   bytes,
 *   maxMemoryPages: 16384,
 *   maxTableElements: 1e6,
 *   uploader: 'cli',
 * })
 */
export class Transpiler {
  readonly #budget: TranspileBudget
  readonly #workers: number
  readonly #perUploader: number
  readonly #maxQueued: number
  readonly #retireAfter: number
  readonly #queue: Job[] = []
  readonly #slots: Slot[] = []
  readonly #running = new Map<string, number>()
  #nextId = 1
  #started = 0
  #closed = false

  constructor(options: TranspilerOptions = {}) {
    this.#budget = options.budget ?? DEFAULT_TRANSPILE_BUDGET
    this.#workers = positive(options.workers ?? DEFAULT_TRANSPILE_WORKERS, 'workers')
    this.#perUploader = positive(
      options.maxWorkersPerUploader ?? Math.max(1, this.#workers - 1),
      'maxWorkersPerUploader',
    )
    this.#maxQueued = positive(
      options.maxQueuedPerUploader ?? DEFAULT_MAX_QUEUED_PER_UPLOADER,
      'maxQueuedPerUploader',
    )
    this.#retireAfter = positive(
      options.retireAfterBytes ?? DEFAULT_RETIRE_AFTER_BYTES,
      'retireAfterBytes',
    )
  }

  /** Transpile one component. Fails with `invalid_component` past the budget. */
  transpile(request: TranspileRequest): Promise<TranspileResponse & { ok: true }> {
    const { uploader = 'anonymous', ...rest } = request
    return this.#submit(uploader, request.bytes.byteLength, (id) => ({
      id,
      kind: 'component',
      request: rest,
    }))
  }

  /**
   * Compile component-model WAT text to bytes, under the same budget. Fails with
   * `invalid_component` for text jco's parser refuses or past the budget.
   */
  async parseWat(text: string, uploader = 'anonymous'): Promise<Uint8Array<ArrayBuffer>> {
    const out = await this.#submit<WatResponse & { ok: true }>(uploader, text.length, (id) => ({
      id,
      kind: 'wat',
      text,
    }))
    return out.bytes
  }

  /** Transpile workers started so far: one per busy slot, plus one after every replacement. */
  get workersStarted(): number {
    return this.#started
  }

  /** Stop every worker; jobs still waiting or running fail with `internal`. */
  async close(): Promise<void> {
    this.#closed = true
    for (const job of this.#queue.splice(0)) {
      job.reject(new WardenError('internal', 'the transpiler was closed'))
    }
    const slots = this.#slots.splice(0)
    await Promise.all(
      slots.map((slot) => {
        this.#end(slot, new WardenError('internal', 'the transpiler was closed'))
        return slot.worker.terminate()
      }),
    )
  }

  #submit<T>(
    uploader: string,
    size: number,
    message: (id: number) => ToTranspileWorker,
  ): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new WardenError('internal', 'the transpiler was closed'))
    }
    const waiting = this.#queue.filter((j) => j.uploader === uploader).length
    if (waiting >= this.#maxQueued) {
      return Promise.reject(
        new WardenError(
          'limit_exceeded',
          `${waiting} uploads of this uploader are already waiting to be transpiled`,
        ),
      )
    }
    return new Promise<T>((resolve, reject) => {
      const id = this.#nextId++
      this.#queue.push({
        id,
        uploader,
        message: message(id),
        size,
        resolve: resolve as (value: unknown) => void,
        reject,
      })
      this.#dispatch()
    })
  }

  /** Hand waiting jobs to idle workers, or to new ones while the pool has room. */
  #dispatch(): void {
    for (;;) {
      let slot = this.#slots.find((s) => !s.job)
      if (!slot && this.#slots.length >= this.#workers) {
        return
      }
      const job = this.#pick()
      if (!job) {
        return
      }
      if (!slot) {
        slot = { worker: this.#spawn(), ready: false, job: undefined }
        this.#slots.push(slot)
      }
      this.#start(slot, job)
    }
  }

  /** The next job: of the uploader running the fewest jobs, below its share; oldest first. */
  #pick(): Job | undefined {
    let best: number | undefined
    let bestRunning = Infinity
    for (let i = 0; i < this.#queue.length; i++) {
      const running = this.#running.get(this.#queue[i]!.uploader) ?? 0
      if (running < this.#perUploader && running < bestRunning) {
        best = i
        bestRunning = running
      }
    }
    return best === undefined ? undefined : this.#queue.splice(best, 1)[0]
  }

  /** Start the budget of the slot's job (once its worker has loaded jco). */
  #startBudget(slot: Slot): void {
    const job = slot.job
    if (!job) {
      return
    }
    clearTimeout(job.timer)
    job.timer = setTimeout(
      () =>
        this.#fail(
          slot,
          new WardenError(
            'invalid_component',
            `transpiling the component took longer than ${this.#budget.timeoutMs} ms`,
          ),
        ),
      this.#budget.timeoutMs,
    )
  }

  #start(slot: Slot, job: Job): void {
    slot.job = { ...job, timer: undefined }
    if (slot.ready) {
      this.#startBudget(slot)
    } else {
      // NB: a cold worker spends about a second loading jco; that is not the upload's time.
      slot.job.timer = setTimeout(
        () => this.#fail(slot, new WardenError('internal', 'a transpile worker did not start')),
        WORKER_START_TIMEOUT_MS,
      )
    }
    this.#running.set(job.uploader, (this.#running.get(job.uploader) ?? 0) + 1)
    slot.worker.ref()
    const { message } = job
    if (message.kind === 'component') {
      // NB: the caller keeps its bytes; the worker gets its own copy, moved rather than cloned,
      // so no serialised third copy exists even for a moment. A copy in a buffer of its own:
      // `Buffer#slice` is a view, and moving its memory would empty the caller's bytes.
      const bytes = new Uint8Array(message.request.bytes)
      slot.worker.postMessage({ ...message, request: { ...message.request, bytes } }, [
        bytes.buffer,
      ])
    } else {
      slot.worker.postMessage(message)
    }
  }

  #spawn(): Worker {
    this.#started++
    const worker = startWorker(import.meta.url, './transpile-worker', {
      env: {},
      resourceLimits: { maxOldGenerationSizeMb: this.#budget.maxHeapMb },
    })
    worker.unref()
    const slotOf = () => this.#slots.find((s) => s.worker === worker)
    type Answer = { id: number; response: TranspileResponse | WatResponse } | { ready: true }
    worker.on('message', (answer: Answer) => {
      const slot = slotOf()
      if ('ready' in answer) {
        if (slot) {
          slot.ready = true
          this.#startBudget(slot)
        }
        return
      }
      const { id, response } = answer
      const job = slot?.job
      if (!slot || !job || job.id !== id) {
        return
      }
      if (!response.ok) {
        // A component that made jco fail may have left its wasm state broken (a trap inside
        // jco poisons every later job in that instance): never reuse the worker after one.
        this.#fail(slot, new WardenError(response.code, response.message))
        return
      }
      this.#end(slot)
      job.resolve(response)
      if (job.size >= this.#retireAfter) {
        this.#retire(slot)
      }
      this.#dispatch()
    })
    worker.on('error', (error) => {
      const slot = slotOf()
      if (slot) {
        const heap = /heap|memory/i.test(String(error))
        this.#fail(
          slot,
          new WardenError(
            'invalid_component',
            heap
              ? 'transpiling the component ran out of its memory budget'
              : 'transpiling the component failed',
            { cause: error },
          ),
        )
      }
    })
    worker.on('exit', () => {
      const slot = slotOf()
      if (slot) {
        this.#fail(slot, new WardenError('invalid_component', 'transpiling the component failed'))
      }
    })
    return worker
  }

  /** Clear a slot's job (rejecting it with `error` if given) and count it off its uploader. */
  #end(slot: Slot, error?: WardenError): void {
    const job = slot.job
    if (!job) {
      return
    }
    slot.job = undefined
    clearTimeout(job.timer)
    slot.worker.unref()
    const running = (this.#running.get(job.uploader) ?? 1) - 1
    if (running > 0) {
      this.#running.set(job.uploader, running)
    } else {
      this.#running.delete(job.uploader)
    }
    if (error) {
      job.reject(error)
    }
  }

  /** End the slot's job with `error`, retire its worker, and hand out the next job. */
  #fail(slot: Slot, error: WardenError): void {
    this.#end(slot, error)
    this.#retire(slot)
    this.#dispatch()
  }

  #retire(slot: Slot): void {
    const at = this.#slots.indexOf(slot)
    if (at >= 0) {
      this.#slots.splice(at, 1)
      void slot.worker.terminate()
    }
  }
}

function positive(n: number, name: string): number {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new TypeError(`Transpiler: ${name} must be a positive integer, got ${String(n)}`)
  }
  return n
}
