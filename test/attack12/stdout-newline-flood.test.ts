/**
 * Attack 12: stdout writes full of newlines are host work the fuel does not pace.
 *
 * A WASI `output-stream.write` may carry 64 KiB (the `check-write` permit). The worker's line
 * sink splits it on `\n` and hands every line to `keepLogLine`, which drops and counts each
 * line past `logLines`: a write of 65,536 newlines is 65,536 line emits, a few ms of the
 * worker's CPU, yet costs the guest one host call, a few instructions and no fuel (resource
 * methods are not charged `WASI_CALL_FUEL`). Within the default 1,000 host calls and the
 * 64 MiB lift budget, one run does ~1,000 such writes, ~60 M line emits, seconds of work
 * during which no fuel check calls `refuel`: the deadline is never read, the run is not back
 * within the pool's 500 ms grace, and its worker is terminated and replaced on every run (the
 * class of problem the seventh, ninth and eleventh rounds fixed for other host work).
 *
 * Fixed: once the run's log budget is spent, a write's lines are counted, never made
 * (`lineSink` in `host-capabilities/wasi/worker.ts`).
 *
 * Deterministic check: no worker replaced across four runs with a 100 ms deadline (the same
 * check as test/unpaced-random-u64.test.ts); the figures printed are for the report.
 */
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRuntime } from '../support/runtime.js'
import type { TestRuntime } from '../support/runtime.js'
import { guestFile } from '../support/wat.js'

const WIT = `
package test:app;

world app {
  import wasi:cli/stdout@0.2.0;
  export run: func(input: string) -> result<string, string>;
}

package wasi:io@0.2.0 {
  interface error {
    resource error { to-debug-string: func() -> string; }
  }
  interface streams {
    use error.{error};
    variant stream-error { last-operation-failed(error), closed }
    resource output-stream {
      check-write: func() -> result<u64, stream-error>;
      write: func(contents: list<u8>) -> result<_, stream-error>;
    }
  }
}

package wasi:cli@0.2.0 {
  interface stdout {
    use wasi:io/streams@0.2.0.{output-stream};
    get-stdout: func() -> output-stream;
  }
}
`

/** Writes 64 KiB of newlines to stdout, forever (until a limit ends it). */
const WAT = `(module
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.check-write"
    (func $check (param i32 i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.write"
    (func $write (param i32 i32 i32 i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (local.get $p))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (local $h i32)
    (memory.fill (i32.const 65536) (i32.const 10) (i32.const 65536))
    (local.set $h (call $get_stdout))
    (loop $l
      (call $check (local.get $h) (i32.const 64))
      (call $write (local.get $h) (i32.const 65536) (i32.const 65536) (i32.const 96))
      (br $l))
    (i32.const 32))
)`

async function floodApp(): Promise<Uint8Array> {
  const embedded = await componentEmbed({
    binary: await parse(WAT),
    witSource: WIT,
    world: 'test:app/app',
    stringEncoding: 'utf8',
  })
  return componentNew(embedded, [])
}

let rt: TestRuntime
beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
}, 60_000)
afterAll(() => rt?.close())

describe('a stdout write of 64 KiB of newlines', () => {
  it('a run past its deadline ends in the guest, and its worker serves the next run', async () => {
    const app = await rt.warden.load(await floodApp())
    const echo = await rt.warden.load(await guestFile('echo'))
    const before = rt.warden.pool.replacements
    const runs: (string | undefined)[] = []
    const waits: number[] = []
    for (let i = 0; i < 4; i++) {
      const run = await rt.warden.invoke(app, 'x', { limits: { timeoutMs: 100 } })
      runs.push(run.error?.code)
      // The next tenant's run, on the only worker.
      const t = performance.now()
      const other = await rt.warden.invoke(echo, 'hello', {
        interfaces: ['warden:platform/log'],
        limits: { timeoutMs: 30_000 },
      })
      waits.push(performance.now() - t)
      expect(other.error).toBeUndefined()
    }
    console.log(
      `attacker runs ${runs.join(',')}; next tenant's run took ${waits.map((w) => w.toFixed(0)).join(', ')} ms; workers replaced ${rt.warden.pool.replacements - before}`,
    )
    // One untimed run for the figures: how long 1,000 writes take, and what they cost.
    const long = await rt.warden.invoke(app, 'x', { limits: { timeoutMs: 30_000 } })
    console.log(
      `unbounded deadline: ${long.error?.code}, wallMs ${long.report.wallMs}, fuelUsed ${long.report.fuelUsed}, hostCalls ${long.report.hostCalls}, logsDropped ${long.report.logsDropped}`,
    )
    expect(runs).toEqual(['timeout', 'timeout', 'timeout', 'timeout'])
    // Ended in the guest within the grace: no worker terminated.
    expect(rt.warden.pool.replacements - before).toBe(0)
  }, 120_000)
})
