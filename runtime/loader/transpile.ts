/**
 * Transpile and instrument components outside the host process, in a small pool of child
 * processes, each job under a time and heap budget, uploaders served fairly.
 */
import type { ChildProcess } from 'node:child_process'
import { channel } from 'node:diagnostics_channel'
import { randomUUID } from 'node:crypto'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WARDEN_ERROR_CODES, WardenError } from '../errors.js'
import type { WardenErrorCode } from '../errors.js'
import { forkChild } from '../internal/child.js'
import type { ModuleManifest } from '../transpile-cache/cache.js'

/** Job folders in the OS temp folder: `warden-transpile-<host pid>-<uuid>`. */
export const JOB_DIR_PREFIX = 'warden-transpile-'

/**
 * Remove from `dir` the job folders of hosts that died mid-job (their pid is gone). Folders of
 * live hosts are left alone, whoever they are; a pid reused by another process only keeps a
 * folder longer.
 */
export async function sweepStaleJobDirs(dir: string = tmpdir()): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[])
  await Promise.all(
    names.map(async (name) => {
      const pid = Number(/^warden-transpile-(\d+)-/.exec(name)?.[1])
      if (Number.isSafeInteger(pid) && pid > 0 && !isAlive(pid)) {
        await rm(join(dir, name), { recursive: true, force: true }).catch(() => undefined)
      }
    }),
  )
}

let swept = false

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Budget for one transpilation. */
export interface TranspileBudget {
  /**
   * Deadline, from the moment a worker takes the job. Default 20 s (a 12 MiB componentize-js
   * app takes about 10 s on a loaded two-core machine).
   */
  timeoutMs: number
  /** V8 old-generation heap of the child process, in MiB. Default 1024. */
  maxHeapMb: number
}

/** Default {@link TranspileBudget}. */
export const DEFAULT_TRANSPILE_BUDGET: Readonly<TranspileBudget> = Object.freeze({
  timeoutMs: 20_000,
  maxHeapMb: 1024,
})

/** Default number of transpile child processes. */
export const DEFAULT_TRANSPILE_WORKERS = 2

/** Default most jobs one uploader may have waiting; more are refused (`limit_exceeded`). */
export const DEFAULT_MAX_QUEUED_PER_UPLOADER = 8

/**
 * Default {@link TranspilerOptions.retireAfterBytes}: 8 MiB. jco's WebAssembly memory grows to
 * several times the largest upload a child has read, and never shrinks.
 */
export const DEFAULT_RETIRE_AFTER_BYTES = 8 * 1024 * 1024

/** Options of {@link Transpiler}. */
export interface TranspilerOptions {
  /** Budget of each job. Default {@link DEFAULT_TRANSPILE_BUDGET}. */
  budget?: TranspileBudget
  /** Child processes in the pool ("workers"), started on demand. Default 2. */
  workers?: number
  /**
   * Children one uploader may hold at once. Default `workers - 1` (at least 1): however many
   * slow uploads one uploader sends, a child is left for the others.
   */
  maxWorkersPerUploader?: number
  /** Jobs one uploader may have waiting for a child. Default 8. */
  maxQueuedPerUploader?: number
  /** A child that has read an upload of at least this many bytes is retired. Default 8 MiB. */
  retireAfterBytes?: number
}

/** @internal The child's input: a component to transpile, or WAT text to compile. */
export interface TranspileRequest {
  bytes: Uint8Array
  maxMemoryPages: number
  maxTableElements: number
  /** Whose upload this is (a publisher, `cli`): the unit of fairness. Default `anonymous`. */
  uploader?: string
}

/** @internal The child's output. */
export type TranspileResponse =
  | {
      ok: true
      wit: string
      glue: string
      modules: (ModuleManifest & { bytes: Uint8Array<ArrayBuffer> })[]
    }
  | { ok: false; code: WardenErrorCode; message: string }

/** @internal What a child answers to a WAT job. */
export type WatResponse =
  | { ok: true; bytes: Uint8Array<ArrayBuffer> }
  | { ok: false; code: WardenErrorCode; message: string }

/**
 * @internal A message to a child. A component and its instrumented modules cross as files in
 * `dir` ({@link TRANSPILE_INPUT_FILE}, {@link transpiledModuleFile}), not through the channel:
 * Node's channel holds a message twice while it arrives (its chunks, then their concatenation),
 * and the host would hold both beside V8's own copy while it compiles.
 */
export type ToTranspileChild =
  | { id: number; kind: 'component'; dir: string; maxMemoryPages: number; maxTableElements: number }
  | { id: number; kind: 'wat'; text: string }

/** @internal A child's answer to a component job: module `i` is `dir/transpiledModuleFile(i)`. */
export type ChildTranspileResponse =
  | {
      ok: true
      wit: string
      glue: string
      modules: ModuleManifest[]
    }
  | { ok: false; code: WardenErrorCode; message: string }

/** @internal A message from a child: it has loaded jco, or the answer to job `id`. */
export type FromTranspileChild =
  | { ready: true }
  | { id: number; response: ChildTranspileResponse | WatResponse; maxRssBytes: number }

/** @internal The upload, in a job's folder. */
export const TRANSPILE_INPUT_FILE = 'input.wasm'

/** @internal The `i`th instrumented module, in a job's folder. */
export function transpiledModuleFile(i: number): string {
  return `module-${i}.wasm`
}

/**
 * What `warden.transpile.job` publishes when a job ends (only while it has subscribers).
 *
 * @example
 * diagnostics_channel.subscribe('warden.transpile.job', (m) => console.log((m as TranspileJobEvent).maxRssBytes))
 */
export interface TranspileJobEvent {
  /** The child process that ran the job. */
  pid: number | undefined
  uploader: string
  kind: 'component' | 'wat'
  /** Bytes of the input. */
  inputBytes: number
  /** Time from the child taking the job (or being ready for it) to its end. */
  durationMs: number
  /** The failure's code; undefined for a success. */
  code: WardenErrorCode | undefined
  /** The child's peak resident set, as it reported with its answer; undefined if it died. */
  maxRssBytes: number | undefined
}

const jobChannel = channel('warden.transpile.job')

interface Job {
  id: number
  uploader: string
  message: ToTranspileChild
  /** Settles once the child may read the job's files. */
  prepared: Promise<unknown> | undefined
  /** Bytes the child will read, for the retirement rule. */
  size: number
  resolve: (value: unknown) => void
  reject: (error: WardenError) => void
}

interface Slot {
  child: ChildProcess
  /** The child has loaded jco; a job's budget starts only then. */
  ready: boolean
  job: (Job & { timer: NodeJS.Timeout | undefined; startedAt: number }) | undefined
  /** The end of the child's stderr, for the cause of a crash. */
  stderr: string
  exited: Promise<void>
}

/** Longest wait for a new transpile child to load jco: 60 s (the host's problem, not the upload's). */
const CHILD_START_TIMEOUT_MS = 60_000
const STDERR_TAIL_CHARS = 4096

/**
 * Runs jco and the instrumenter in a pool of budgeted child processes ("workers"), so that
 * jco's memory, which grows to many times a large upload, is never the host's. Each child has
 * an empty environment, a V8 heap cap, and exits when the host goes. Children start on demand
 * and are kept between jobs (jco's start-up costs about a second), except after a job that
 * failed, crashed or broke its budget (a trap inside jco can poison every later job in that
 * process) or that read a large upload: then the child is killed and replaced. An uploader may
 * hold at most `maxWorkersPerUploader` children; waiting jobs are served fewest-running-uploader
 * first, then in order of arrival.
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
    if (!swept) {
      swept = true
      void sweepStaleJobDirs()
    }
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
  async transpile(request: TranspileRequest): Promise<TranspileResponse & { ok: true }> {
    const { uploader = 'anonymous', bytes, maxMemoryPages, maxTableElements } = request
    const refused = this.#refusal(uploader)
    if (refused) {
      throw refused
    }
    // The job's folder: the upload goes in, written from the caller's buffer (no copy), and
    // the instrumented modules come out, each read into one buffer of its own size. The job
    // is queued at once (arrival order is the fairness order) and sent once the file is there.
    // NB: where the OS temp folder is a tmpfs, these files (about 2.5 times the upload while a
    // job runs) are memory too, though not the host's resident set.
    const dir = join(tmpdir(), `${JOB_DIR_PREFIX}${process.pid}-${randomUUID()}`)
    const prepared = mkdir(dir, { mode: 0o700 }).then(() =>
      writeFile(join(dir, TRANSPILE_INPUT_FILE), bytes),
    )
    // Reported through the job; never an unhandled rejection.
    prepared.catch(() => undefined)
    try {
      const out = await this.#submit<ChildTranspileResponse & { ok: true }>(
        uploader,
        bytes.byteLength,
        (id) => ({ id, kind: 'component', dir, maxMemoryPages, maxTableElements }),
        prepared,
      )
      const modules: (TranspileResponse & { ok: true })['modules'] = []
      for (const [i, m] of out.modules.entries()) {
        const content = await readFile(join(dir, transpiledModuleFile(i)))
        modules.push({
          name: m.name,
          // A file this large is read into a buffer of its own, never Node's shared pool.
          bytes: new Uint8Array(content.buffer, content.byteOffset, content.byteLength),
          minMemoryPages: m.minMemoryPages,
          ...(m.providedMemory ? { providedMemory: m.providedMemory } : {}),
        })
      }
      return { ok: true, wit: out.wit, glue: out.glue, modules }
    } catch (error) {
      if (error instanceof WardenError) {
        throw error
      }
      throw new WardenError('internal', 'a transpile job folder could not be used', {
        cause: error,
      })
    } finally {
      await prepared.catch(() => undefined)
      await rm(dir, { recursive: true, force: true })
    }
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

  /**
   * Transpile child processes started so far: one per busy slot, plus one after every
   * replacement.
   */
  get workersStarted(): number {
    return this.#started
  }

  /** Process ids of the live transpile children (for health checks and tests). */
  get pids(): number[] {
    return this.#slots.flatMap((s) => (s.child.pid === undefined ? [] : [s.child.pid]))
  }

  /** Stop every child; jobs still waiting or running fail with `internal`. */
  async close(): Promise<void> {
    this.#closed = true
    for (const job of this.#queue.splice(0)) {
      job.reject(new WardenError('internal', 'the transpiler was closed'))
    }
    const slots = this.#slots.splice(0)
    await Promise.all(
      slots.map((slot) => {
        this.#end(slot, new WardenError('internal', 'the transpiler was closed'))
        // Held until the child is gone, or the host's event loop could end before `exited`.
        ref(slot.child, true)
        slot.child.kill('SIGKILL')
        return slot.exited
      }),
    )
  }

  #submit<T>(
    uploader: string,
    size: number,
    message: (id: number) => ToTranspileChild,
    prepared?: Promise<unknown>,
  ): Promise<T> {
    const refused = this.#refusal(uploader)
    if (refused) {
      return Promise.reject(refused)
    }
    return new Promise<T>((resolve, reject) => {
      const id = this.#nextId++
      this.#queue.push({
        id,
        uploader,
        message: message(id),
        prepared,
        size,
        resolve: resolve as (value: unknown) => void,
        reject,
      })
      this.#dispatch()
    })
  }

  /** Why a new job of `uploader` is refused now, if it is. */
  #refusal(uploader: string): WardenError | undefined {
    if (this.#closed) {
      return new WardenError('internal', 'the transpiler was closed')
    }
    const waiting = this.#queue.filter((j) => j.uploader === uploader).length
    if (waiting >= this.#maxQueued) {
      return new WardenError(
        'limit_exceeded',
        `${waiting} uploads of this uploader are already waiting to be transpiled`,
      )
    }
    return undefined
  }

  /** Hand waiting jobs to idle children, or to new ones while the pool has room. */
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
        slot = this.#spawn()
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

  /** Start the budget of the slot's job (once its child has loaded jco). */
  #startBudget(slot: Slot): void {
    const job = slot.job
    if (!job) {
      return
    }
    clearTimeout(job.timer)
    job.startedAt = performance.now()
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
    slot.job = { ...job, timer: undefined, startedAt: performance.now() }
    if (slot.ready) {
      this.#startBudget(slot)
    } else {
      // NB: a cold child spends about a second loading jco; that is not the upload's time.
      slot.job.timer = setTimeout(
        () => this.#fail(slot, new WardenError('internal', 'a transpile child did not start')),
        CHILD_START_TIMEOUT_MS,
      )
    }
    this.#running.set(job.uploader, (this.#running.get(job.uploader) ?? 0) + 1)
    ref(slot.child, true)
    const current = () => slot.job?.id === job.id
    const send = () =>
      slot.child.send(job.message, (error) => {
        if (error && current()) {
          this.#fail(slot, new WardenError('internal', 'a transpile child did not take its job'))
        }
      })
    if (!job.prepared) {
      send()
      return
    }
    job.prepared.then(
      () => current() && send(),
      (error: unknown) => {
        if (current()) {
          // The host's disk, not the child: the child stays.
          this.#end(
            slot,
            new WardenError('internal', 'a transpile job could not be written', { cause: error }),
          )
          this.#dispatch()
        }
      },
    )
  }

  #spawn(): Slot {
    this.#started++
    const child = forkChild(import.meta.url, './transpile-child', {
      // Nothing of the host's environment (secrets, tokens, the data dir): jco needs none.
      env: {},
      execArgv: [`--max-old-space-size=${this.#budget.maxHeapMb}`],
    })
    const slot: Slot = {
      child,
      ready: false,
      job: undefined,
      stderr: '',
      exited: new Promise((resolve) => child.once('exit', () => resolve())),
    }
    ref(child, false)
    const own = () => this.#slots.includes(slot)
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      slot.stderr = (slot.stderr + chunk).slice(-STDERR_TAIL_CHARS)
    })
    child.on('message', (raw: unknown) => {
      if (!own()) {
        return
      }
      const answer = parseAnswer(raw)
      if (!answer) {
        this.#fail(slot, new WardenError('internal', 'a transpile child sent a malformed answer'))
        return
      }
      if ('ready' in answer) {
        slot.ready = true
        this.#startBudget(slot)
        return
      }
      const { id, response, maxRssBytes } = answer
      const job = slot.job
      if (!job || job.id !== id) {
        return
      }
      if (!response.ok) {
        // A component that made jco fail may have left its wasm state broken (a trap inside
        // jco poisons every later job in that instance): never reuse the child after one.
        this.#fail(slot, new WardenError(response.code, response.message), maxRssBytes)
        return
      }
      this.#end(slot, undefined, maxRssBytes)
      job.resolve(response)
      if (job.size >= this.#retireAfter) {
        this.#retire(slot)
      }
      this.#dispatch()
    })
    child.on('error', (error) => {
      // Fork failed, or the channel broke: the child is of no further use.
      if (own()) {
        this.#fail(slot, new WardenError('internal', 'a transpile child failed', { cause: error }))
      }
    })
    child.on('exit', (code, signal) => {
      if (!own()) {
        return
      }
      const cause = new Error(
        `transpile child exited (code ${code}, signal ${signal}): ${slot.stderr.trim()}`,
      )
      if (!slot.ready) {
        this.#fail(slot, new WardenError('internal', 'a transpile child did not start', { cause }))
        return
      }
      // A crash mid-job (V8's fatal out-of-memory, a kill) is the job's failure, as a trap is.
      const heap = /heap limit|out of memory/i.test(slot.stderr)
      this.#fail(
        slot,
        new WardenError(
          'invalid_component',
          heap
            ? 'transpiling the component ran out of its memory budget'
            : 'transpiling the component failed',
          { cause },
        ),
      )
    })
    return slot
  }

  /** Clear a slot's job (rejecting it with `error` if given) and count it off its uploader. */
  #end(slot: Slot, error?: WardenError, maxRssBytes?: number): void {
    const job = slot.job
    if (!job) {
      return
    }
    slot.job = undefined
    clearTimeout(job.timer)
    ref(slot.child, false)
    const running = (this.#running.get(job.uploader) ?? 1) - 1
    if (running > 0) {
      this.#running.set(job.uploader, running)
    } else {
      this.#running.delete(job.uploader)
    }
    if (jobChannel.hasSubscribers) {
      jobChannel.publish({
        pid: slot.child.pid,
        uploader: job.uploader,
        kind: job.message.kind,
        inputBytes: job.size,
        durationMs: performance.now() - job.startedAt,
        code: error?.code,
        maxRssBytes,
      } satisfies TranspileJobEvent)
    }
    if (error) {
      job.reject(error)
    }
  }

  /** End the slot's job with `error`, retire its child, and hand out the next job. */
  #fail(slot: Slot, error: WardenError, maxRssBytes?: number): void {
    this.#end(slot, error, maxRssBytes)
    this.#retire(slot)
    this.#dispatch()
  }

  #retire(slot: Slot): void {
    const at = this.#slots.indexOf(slot)
    if (at >= 0) {
      this.#slots.splice(at, 1)
      slot.child.kill('SIGKILL')
    }
  }
}

/**
 * Keep the host's event loop alive for a child only while it has a job: an idle pool must not
 * hold the process open. The process handle, the message channel and the stderr pipe each
 * count.
 */
function ref(child: ChildProcess, on: boolean): void {
  const handles: ({ ref(): unknown; unref(): unknown } | null | undefined)[] = [
    child,
    child.channel,
    // A piped stdio stream is a socket.
    child.stderr as Socket | null,
  ]
  for (const handle of handles) {
    if (on) {
      handle?.ref()
    } else {
      handle?.unref()
    }
  }
}

const CODES: ReadonlySet<unknown> = new Set(WARDEN_ERROR_CODES)

/**
 * A child's message, or undefined when it is not one of ours. The child only runs our code on
 * hostile bytes, but whatever crosses a process boundary is checked before it is used.
 */
function parseAnswer(raw: unknown): FromTranspileChild | undefined {
  if (!isRecord(raw)) {
    return undefined
  }
  if (raw.ready === true) {
    return { ready: true }
  }
  const { id, response, maxRssBytes } = raw
  if (!Number.isSafeInteger(id) || typeof maxRssBytes !== 'number' || !isRecord(response)) {
    return undefined
  }
  const ok =
    response.ok === false
      ? CODES.has(response.code) && typeof response.message === 'string'
      : response.ok === true &&
        ('modules' in response
          ? typeof response.wit === 'string' &&
            typeof response.glue === 'string' &&
            Array.isArray(response.modules) &&
            response.modules.every(
              (m: unknown) =>
                isRecord(m) &&
                typeof m.name === 'string' &&
                Number.isSafeInteger(m.minMemoryPages) &&
                (m.providedMemory === undefined || isProvidedMemory(m.providedMemory)),
            )
          : response.bytes instanceof Uint8Array)
  return ok ? (raw as FromTranspileChild) : undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

function isProvidedMemory(value: unknown): boolean {
  return (
    isRecord(value) &&
    Number.isSafeInteger(value.minPages) &&
    Number.isSafeInteger(value.maxPages) &&
    (value.minPages as number) >= 0 &&
    (value.minPages as number) <= (value.maxPages as number) &&
    (value.maxPages as number) <= 65_536
  )
}

function positive(n: number, name: string): number {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new TypeError(`Transpiler: ${name} must be a positive integer, got ${String(n)}`)
  }
  return n
}
