/**
 * Tenth outside attack (held; kept as a guard): resource handles the fuel does not pace.
 * The glue's handle-table pushes are charged to the run's lift budget (64 B each, 64 MiB), so the
 * flood below ends with limit_exceeded after ~1M handles, ~0.4 s, with no worker replaced.
 *
 *
 * `[method]output-stream.subscribe` (and `input-stream.subscribe`) is a resource method, so it is
 * not charged `WASI_CALL_FUEL`: a call costs the guest ~2 fuel. Each call makes a new `Pollable`
 * and an own handle in the glue's resource table, in the sandbox worker's JS heap, which the
 * run's `memoryMb` cap does not see. A guest that never drops them grows the worker's heap by
 * tens of bytes per call, millions of calls per second.
 */
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { guestFile } from './support/wat.js'

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
  interface poll {
    resource pollable { ready: func() -> bool; }
  }
  interface streams {
    use error.{error};
    use poll.{pollable};
    variant stream-error { last-operation-failed(error), closed }
    resource output-stream {
      subscribe: func() -> pollable;
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

/** Subscribes to stdout forever (256 calls per iteration), never dropping a pollable. */
const WAT = `(module
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.subscribe" (func $sub (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (local.get $p))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (local $h i32)
    (local.set $h (call $get_stdout))
    (loop $l
      ${'(drop (call $sub (local.get $h)))\n'.repeat(256)}
      (br $l))
    (i32.const 32))
)`

async function flooder(): Promise<Uint8Array> {
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

describe('a guest that leaks pollable handles', () => {
  it('is ended by its own limits, and its worker serves the next run without being replaced', async () => {
    const app = await rt.warden.load(await flooder())
    const echo = await rt.warden.load(await guestFile('echo'))
    const before = rt.warden.pool.replacements
    const run = await rt.warden.invoke(app, 'x', { limits: { timeoutMs: 5_000 } })
    const other = await rt.warden.invoke(echo, 'hello', {
      interfaces: ['warden:platform/log'],
      limits: { timeoutMs: 30_000 },
    })
    expect(other.error).toBeUndefined()
    // The run used the default limits (64 MiB of memory, 5 s): it should end by one of them, in
    // the guest, and leave its worker for the next run.
    expect(rt.warden.pool.replacements - before).toBe(0)
    expect(run.error?.code).not.toBe('internal')
  }, 90_000)
})
