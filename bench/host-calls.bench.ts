/**
 * Question: what does one host call cost the guest? Two paths:
 * - answered in the worker (a log line; a denial of an ungranted capability), no round trip;
 * - crossing to the broker on the main thread (SharedArrayBuffer + Atomics.wait + waitAsync).
 * Per-call cost = (median run with N calls − median run with 0 calls) / N, same guest.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BrokerCapability } from '../host-capabilities/types.js'
import { createRuntime } from '../runtime/index.js'
import { compileWat } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'host call cost, per call'
const CALLS = 2000

/** A broker capability that answers `ping(n) = n + 1`: the bridge with nothing behind it. */
export const ping: BrokerCapability = {
  descriptor: {
    interface: 'warden:bench/ping',
    versions: ['0.1.0'],
    functions: ['ping'],
    side: 'broker',
  },
  handle: (_fn, args) => (args[0] as number) + 1,
}

/** Parses its input as a decimal N, then calls `target` N times. */
export function caller(importDecl: string, lower: string, call: string): string {
  return `(component
  ${importDecl}
  (core module $memory (memory (export "memory") 1))
  (core instance $memory-i (instantiate $memory))
  ${lower}
  (core module $main
    (import "env" "memory" (memory 1))
    (import "host" "f" (func $f (param i32 i32 i32)))
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
        ${call}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $calls)))
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.const 512))
      (i32.store (i32.const 24) (i32.const 0))
      (i32.const 16)))
  (core instance $main-i (instantiate $main
    (with "env" (instance $memory-i))
    (with "host" (instance (export "f" (func $f)) (export "g" (func $g))))))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $main-i "run") (memory $memory-i "memory")
      (realloc (func $main-i "cabi_realloc")) string-encoding=utf8))
)`
}

export const LOG_IMPORT = `(import "warden:platform/log@0.1.0" (instance $log
    (type $level-def (enum "debug" "info" "warn" "error"))
    (export $level "level" (type (eq $level-def)))
    (export "write" (func (param "level" $level) (param "message" string)))))
  (import "warden:bench/ping@0.1.0" (instance $ping
    (export "ping" (func (param "n" u32) (result u32)))))`
export const LOWER = `(core func $f (canon lower (func $log "write") (memory $memory-i "memory") string-encoding=utf8))
  (core func $g (canon lower (func $ping "ping")))`

/** The ping guest: its input is a decimal N, and it calls the broker's `ping` N times. */
export async function pingGuest(): Promise<Uint8Array> {
  return compileWat(caller(LOG_IMPORT, LOWER, '(drop (call $g (local.get $i)))'))
}

export async function run(): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  const warden = await createRuntime({ dataDir: dir, poolSize: 1, brokerCapabilities: [ping] })
  try {
    const logger = await warden.load(
      await compileWat(
        caller(LOG_IMPORT, LOWER, '(call $f (i32.const 1) (i32.const 512) (i32.const 5))'),
      ),
    )
    const pinger = await warden.load(await pingGuest())
    await warden.pool.warm()
    const limits = { hostCalls: CALLS + 10, logLines: CALLS + 10, logBytes: 1 << 20 }
    const invoke = (app: typeof logger, n: number, grant: string[]) => async () => {
      const r = await warden.invoke(app, String(n), { interfaces: grant, limits })
      if (!r.ok) {
        throw new Error(JSON.stringify(r.error))
      }
    }
    const LOG = 'warden:platform/log'
    const PING = 'warden:bench/ping'
    const m = await medians(
      {
        base: invoke(logger, 0, [LOG]),
        logKept: invoke(logger, CALLS, [LOG]),
        logDenied: invoke(logger, CALLS, []),
        pingBase: invoke(pinger, 0, [PING]),
        ping: invoke(pinger, CALLS, [PING]),
      },
      { time: 3000, iterations: 30 },
    )
    const per = (name: string, base: string) => (m[name]! - m[base]!) / CALLS
    return [
      {
        question: QUESTION,
        name: 'log line, kept (answered in the worker)',
        medianUs: per('logKept', 'base'),
        target: '≤ 5 µs',
      },
      {
        question: QUESTION,
        name: 'early denial of an ungranted capability (worker)',
        medianUs: per('logDenied', 'base'),
        target: '≤ 5 µs',
      },
      {
        question: QUESTION,
        name: 'bridge to the broker and back (ping)',
        medianUs: per('ping', 'pingBase'),
        target: '≤ 40 µs',
      },
    ]
  } finally {
    await warden.close()
    await rm(dir, { recursive: true, force: true })
  }
}
