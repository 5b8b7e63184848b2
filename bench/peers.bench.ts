/**
 * Question: what does the same tiny action (fresh instance, tiny input, one call, one log line)
 * cost in a peer sandbox, measured in the same run as Warden's figure?
 *
 * Warden: the echo component of `instantiate.bench.ts`, `warden.invoke` through a 1-worker pool.
 * Extism (`@extism/extism`, the JS SDK): a core module speaking the Extism ABI that does what
 * echo does (reads its input, logs it at info, returns it). The fair comparison to a fresh
 * instance per run is one plugin per run: `createPlugin` + `call` + `close`, with the module
 * compiled once beforehand (as `warden.load` compiles once). With `runInWorker: true` the SDK
 * starts one worker thread per plugin, so that row pays for a thread start each run; two
 * context rows show the same-thread plugin and a kept worker plugin (no fresh instance).
 *
 * isolated-vm is not here: its releases for Node 20 (≤ 5.0.4) ship no binaries and need their
 * install script (prebuild-install, else node-gyp); 6.x/7.x require Node ≥ 22/24.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import workerThreads from 'node:worker_threads'
import { parse } from '@bytecodealliance/jco'
import createPlugin from '@extism/extism'
import { createRuntime } from '../runtime/index.js'
import { guestFile } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'peers: the tiny action (fresh instance, 1-byte input, 1 call, 1 log line)'

/** Echo over the Extism ABI: copy the input into a block, log it at info, make it the output. */
const EXTISM_ECHO = `(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (local $len i64) (local $buf i64) (local $i i64)
    (local.set $len (call $input_length))
    (local.set $buf (call $alloc (local.get $len)))
    (block $done
      (loop $copy
        (br_if $done (i64.ge_u (local.get $i) (local.get $len)))
        (call $store_u8 (i64.add (local.get $buf) (local.get $i))
          (call $input_load_u8 (local.get $i)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $copy)))
    (call $log_info (local.get $buf))
    (call $output_set (local.get $buf) (local.get $len))
    (i32.const 0)))`

/**
 * Extism starts its worker from a `data:` URL whose code ends in `//# sourceMappingURL=worker.js.map`.
 * Under tsx the worker inherits tsx's loader, which turns source maps on, and Node 20 then fails
 * to resolve that map against a `data:` URL (ERR_INVALID_URL, the worker dies). So while this
 * file runs, workers started from `data:` URLs get no tsx loader (as in production, where nothing
 * is transpiled) and `--no-warnings` (each would print WASI's experimental warning). Warden's pool
 * workers are untouched.
 */
function withPlainDataWorkers(): () => void {
  const original = workerThreads.Worker
  workerThreads.Worker = class extends original {
    constructor(url: string | URL, options?: workerThreads.WorkerOptions) {
      super(
        url,
        String(url).startsWith('data:') ? { ...options, execArgv: ['--no-warnings'] } : options,
      )
    }
  }
  syncBuiltinESMExports()
  return () => {
    workerThreads.Worker = original
    syncBuiltinESMExports()
  }
}

/** Warden's median over a peer's; the note keeps the digits `×0.00` would lose. */
function ratioRow(peer: string, baseline: string, warden: number, other: number): Row {
  const ratio = warden / other
  const note =
    ratio < 0.1
      ? `warden ÷ peer = ${ratio.toPrecision(2)}; the peer takes ×${(1 / ratio).toFixed(0)} Warden's time`
      : undefined
  return {
    question: QUESTION,
    name: `warden ÷ ${peer}`,
    medianUs: warden,
    ratio,
    baseline,
    ...(note ? { note } : {}),
  }
}

export async function run(): Promise<Row[]> {
  const restoreWorker = withPlainDataWorkers()
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  const warden = await createRuntime({ dataDir: dir, poolSize: 1 })
  const module = new WebAssembly.Module((await parse(EXTISM_ECHO)) as Uint8Array<ArrayBuffer>)
  let lines = 0
  const logger = {
    info: () => void lines++,
    debug: () => {},
    warn: () => {},
    error: () => {},
    trace: () => {},
    log: () => {},
  } as unknown as Console
  const manifest = () => ({ wasm: [{ module }] })
  const check = (text: string | undefined) => {
    if (text !== 'x') {
      throw new Error(`extism echo returned ${JSON.stringify(text)}`)
    }
  }
  const kept = await createPlugin(manifest(), { runInWorker: true, logger })
  try {
    // Warden: the same setup as instantiate.bench.ts's `pooled`.
    const app = await warden.load(await guestFile('echo'))
    await warden.pool.warm()
    const pooled = async () => {
      const r = await warden.invoke(app, 'x', { interfaces: ['warden:platform/log'] })
      if (!r.ok) {
        throw new Error(JSON.stringify(r.error))
      }
    }
    const fresh = (runInWorker: boolean) => async () => {
      const plugin = await createPlugin(manifest(), { runInWorker, logger })
      try {
        check((await plugin.call('run', 'x'))?.text())
      } finally {
        await plugin.close()
      }
    }
    const extismWorker = fresh(true)
    const extismSameThread = fresh(false)
    const extismKept = async () => check((await kept.call('run', 'x'))?.text())
    // Prove the log line arrives before measuring (the worker posts it back to this thread).
    await extismWorker()
    await new Promise((resolve) => setTimeout(resolve, 50))
    if (lines === 0) {
      throw new Error('extism worker plugin logged nothing')
    }
    const m = await medians({ pooled, extismWorker, extismSameThread, extismKept })
    const w = m.pooled!
    return [
      { question: QUESTION, name: 'warden.invoke through the pool (end to end)', medianUs: w },
      {
        question: QUESTION,
        name: 'extism: fresh plugin in a worker, create+call+close',
        medianUs: m.extismWorker!,
      },
      {
        question: QUESTION,
        name: 'extism: fresh plugin, same thread, create+call+close',
        medianUs: m.extismSameThread!,
        note: 'context',
      },
      {
        question: QUESTION,
        name: 'extism: one worker plugin kept, call only',
        medianUs: m.extismKept!,
        note: 'context: no fresh instance',
      },
      ratioRow('extism fresh worker plugin', 'extism worker', w, m.extismWorker!),
      ratioRow('extism fresh same-thread plugin', 'extism same thread', w, m.extismSameThread!),
      ratioRow('extism kept worker plugin', 'extism kept', w, m.extismKept!),
    ]
  } finally {
    await kept.close()
    await warden.close()
    restoreWorker()
    await rm(dir, { recursive: true, force: true })
  }
}
