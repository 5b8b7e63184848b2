/**
 * The fuzz child: one Warden runtime, fed inputs one at a time by `fuzz.ts` over IPC. A crash
 * of this process (or of the runtime inside it) is what the parent counts; the parent starts
 * a fresh child and carries on after the input that was in flight.
 *
 * Messages in: `init` (seed, count, corpus), `run` (an input index), `health`, `close`.
 * Messages out: `ready`, `done` (the outcome of one index), `health`, `fatal` (an uncaught
 * error, just before this process exits).
 */
import { createHash } from 'node:crypto'
import { rmSync } from 'node:fs'
import type { CorpusEntry } from './corpus.js'
import { fuzzOne, hostProblem, startFuzzRuntime } from './harness.js'
import type { FuzzOutcome, FuzzRuntime } from './harness.js'
import { buildInput, sampleInputs } from './mutate.js'
import type { FuzzInput } from './mutate.js'

/** Parent → child. */
export type ToChild =
  | { type: 'init'; seed: number; count: number; corpus: CorpusEntry[]; transpileMs: number }
  | { type: 'run'; index: number }
  | { type: 'health' }
  | { type: 'close' }

/** Child → parent. */
export type FromChild =
  | { type: 'ready'; dataDir: string; pid: number }
  | (FuzzOutcome & {
      type: 'done'
      index: number
      digest: string
      size: number
      /** Answered from this child's memo of slow inputs (a duplicate), not loaded again. */
      memo: boolean
      rss: number
    })
  | { type: 'health'; problem: string | undefined; rss: number }
  | { type: 'fatal'; error: string }

/** Loads slower than this are remembered by digest, so a duplicate input is not re-run. */
const MEMO_MS = 250

let rt: FuzzRuntime | undefined
let inputs: FuzzInput[] = []
let corpus: CorpusEntry[] = []
const memo = new Map<string, FuzzOutcome>()
let transpileMs = 0

function echoBytes(): Uint8Array {
  return corpus.find((c) => c.name === 'test/guests/echo.wat')!.bytes
}

function send(message: FromChild): Promise<void> {
  return new Promise((resolve) => process.send!(message, undefined, {}, () => resolve()))
}

function fatal(error: unknown): void {
  const text =
    error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ''}` : String(error)
  if (rt) {
    rmSync(rt.dataDir, { recursive: true, force: true })
  }
  // Tell the parent what happened, then die: a crash is a crash, however it is reported.
  void send({ type: 'fatal', error: text.slice(0, 4000) }).finally(() => process.exit(70))
  setTimeout(() => process.exit(70), 1000).unref()
}

process.on('uncaughtException', fatal)
process.on('unhandledRejection', fatal)
// The parent is gone (or done with us): leave nothing behind.
process.on('disconnect', () => {
  if (rt) {
    rmSync(rt.dataDir, { recursive: true, force: true })
  }
  process.exit(0)
})

async function handle(message: ToChild): Promise<void> {
  switch (message.type) {
    case 'init': {
      corpus = message.corpus.map((c) => ({ name: c.name, bytes: new Uint8Array(c.bytes) }))
      inputs = sampleInputs(message.seed, message.count)
      transpileMs = message.transpileMs
      rt = await startFuzzRuntime({ timeoutMs: transpileMs, maxHeapMb: 256 })
      // Health checks then run echo from the memo: they test the host, not the transpiler.
      // NB: the first transpile also starts jco, which under load can take the whole budget.
      for (let attempt = 1; ; attempt++) {
        try {
          await rt.warden.load(echoBytes())
          break
        } catch (error) {
          if (attempt === 3) {
            throw error
          }
        }
      }
      await send({ type: 'ready', dataDir: rt.dataDir, pid: process.pid })
      return
    }
    case 'run': {
      const bytes = buildInput(inputs[message.index]!, corpus)
      const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16)
      const seen = memo.get(digest)
      const outcome = seen ?? (await fuzzOne(rt!.warden, bytes, transpileMs))
      if (!seen && outcome.loadMs + outcome.runMs > MEMO_MS) {
        memo.set(digest, outcome)
      }
      const { detail: _detail, ...rest } = outcome
      await send({
        type: 'done',
        index: message.index,
        ...rest,
        digest,
        size: bytes.length,
        memo: seen !== undefined,
        rss: process.memoryUsage.rss(),
      })
      return
    }
    case 'health': {
      const problem = await hostProblem(rt!.warden, echoBytes())
      await send({ type: 'health', problem, rss: process.memoryUsage.rss() })
      return
    }
    case 'close':
      await rt?.close()
      process.disconnect()
      return
  }
}

// One message at a time, in order: the parent sends the next one only after an answer.
let chain = Promise.resolve()
process.on('message', (message: ToChild) => {
  chain = chain.then(() => handle(message)).catch(fatal)
})
