/**
 * Question: what does the second layer cost? The same runs with `isolation: 'thread'` (worker
 * threads of the host) and `isolation: 'process'` (those threads in a child process under the
 * permission model, host calls over a pipe): the tiny WAT action of instantiate.bench.ts, and
 * the bridged host call of host-calls.bench.ts.
 *
 * The child runs from `dist/`: run `npm run build` first when the sources changed.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BrokerCapability } from '../host-capabilities/types.js'
import { createRuntime } from '../runtime/index.js'
import type { Isolation, WardenRuntime } from '../runtime/index.js'
import { compileWat, guestFile } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'isolation: worker threads in the host vs in a child process'
const CALLS = 200

/** `ping(n) = n + 1`, as in host-calls.bench.ts: the bridge with nothing behind it. */
const ping: BrokerCapability = {
  descriptor: {
    interface: 'warden:bench/ping',
    versions: ['0.1.0'],
    functions: ['ping'],
    side: 'broker',
  },
  handle: (_fn, args) => (args[0] as number) + 1,
}

/** Parses its input as a decimal N, then calls `ping` N times. */
const PINGER = `(component
  (import "warden:bench/ping@0.1.0" (instance $ping
    (export "ping" (func (param "n" u32) (result u32)))))
  (core module $memory (memory (export "memory") 1))
  (core instance $memory-i (instantiate $memory))
  (core func $g (canon lower (func $ping "ping")))
  (core module $main
    (import "env" "memory" (memory 1))
    (import "host" "g" (func $g (param i32) (result i32)))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param $ptr i32) (param $len i32) (result i32)
      (local $n i32) (local $i i32) (local $end i32)
      (local.set $end (i32.add (local.get $ptr) (local.get $len)))
      (block $done (loop $digits
        (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
          (i32.sub (i32.load8_u (local.get $ptr)) (i32.const 48))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
        (br $digits)))
      (block $out (loop $calls
        (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
        (drop (call $g (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $calls)))
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.const 512))
      (i32.store (i32.const 24) (i32.const 0))
      (i32.const 16)))
  (core instance $main-i (instantiate $main
    (with "env" (instance $memory-i))
    (with "host" (instance (export "g" (func $g))))))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $main-i "run") (memory $memory-i "memory")
      (realloc (func $main-i "cabi_realloc")) string-encoding=utf8))
)`

export async function run(): Promise<Row[]> {
  const echoBytes = await guestFile('echo')
  const pingerBytes = await compileWat(PINGER)
  const dirs: string[] = []
  const runtimes: WardenRuntime[] = []
  const start = async (isolation: Isolation) => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
    dirs.push(dir)
    const warden = await createRuntime({
      dataDir: dir,
      poolSize: 1,
      brokerCapabilities: [ping],
      isolation,
    })
    runtimes.push(warden)
    await warden.pool.warm()
    return warden
  }
  try {
    const thread = await start('thread')
    const proc = await start('process')
    const limits = { hostCalls: CALLS + 10 }
    const task = (warden: WardenRuntime, bytes: Uint8Array, input: string, grant: string[]) => {
      const app = warden.load(bytes)
      return async () => {
        const r = await warden.invoke(await app, input, { interfaces: grant, limits })
        if (!r.ok) {
          throw new Error(JSON.stringify(r.error))
        }
      }
    }
    const LOG = ['warden:platform/log']
    const PING = ['warden:bench/ping']
    const m = await medians(
      {
        tinyThread: task(thread, echoBytes, 'x', LOG),
        tinyProcess: task(proc, echoBytes, 'x', LOG),
        pingBaseThread: task(thread, pingerBytes, '0', PING),
        pingThread: task(thread, pingerBytes, String(CALLS), PING),
        pingBaseProcess: task(proc, pingerBytes, '0', PING),
        pingProcess: task(proc, pingerBytes, String(CALLS), PING),
      },
      { time: 3000, iterations: 50 },
    )
    const tinyThread = m.tinyThread!
    const tinyProcess = m.tinyProcess!
    const perThread = (m.pingThread! - m.pingBaseThread!) / CALLS
    const perProcess = (m.pingProcess! - m.pingBaseProcess!) / CALLS
    const tiny = 'tiny WAT run (echo, 1 log call)'
    const call = 'bridged host call (ping), per call'
    return [
      { question: QUESTION, name: `${tiny}, thread`, medianUs: tinyThread },
      {
        question: QUESTION,
        name: `${tiny}, process`,
        medianUs: tinyProcess,
        ratio: tinyProcess / tinyThread,
        baseline: 'thread',
        target: '≤ ×1.5',
        note: proc.isolation.networkIsolated ? 'network namespace' : 'no network namespace',
      },
      { question: QUESTION, name: `${call}, thread`, medianUs: perThread },
      {
        question: QUESTION,
        name: `${call}, process`,
        medianUs: perProcess,
        ratio: perProcess / perThread,
        baseline: 'thread',
      },
    ]
  } finally {
    await Promise.all(runtimes.map((r) => r.close()))
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
  }
}
