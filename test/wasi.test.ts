/**
 * The safe WASI baseline through the real sandbox: a component that prints to stdout gets
 * its lines in the run's logs; one that imports the filesystem is refused at load.
 */
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Decision } from '../runtime/index.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'

const WIT = `
package test:app;

world app {
  import wasi:cli/stdout@0.2.0;
  import wasi:random/random@0.2.0;
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
      blocking-write-and-flush: func(contents: list<u8>) -> result<_, stream-error>;
    }
  }
}

package wasi:cli@0.2.0 {
  interface stdout {
    use wasi:io/streams@0.2.0.{output-stream};
    get-stdout: func() -> output-stream;
  }
}

package wasi:random@0.2.0 {
  interface random {
    get-random-u64: func() -> u64;
  }
}
`

/** Prints its input (plus a newline) to stdout twice, and returns "printed". */
const WAT = `(module
  (import "wasi:cli/stdout@0.2.0" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/streams@0.2.0" "[method]output-stream.blocking-write-and-flush"
    (func $write (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.0" "[resource-drop]output-stream" (func $drop (param i32)))
  (import "wasi:random/random@0.2.0" "get-random-u64" (func $rand (result i64)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 512) "printed")
  (data (i32.const 520) "\\n")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (local.get $p))
  (func $print (param $ptr i32) (param $len i32)
    (local $h i32)
    (local.set $h (call $get_stdout))
    (call $write (local.get $h) (local.get $ptr) (local.get $len) (i32.const 16))
    (call $write (local.get $h) (i32.const 520) (i32.const 1) (i32.const 16))
    (call $drop (local.get $h)))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (drop (call $rand))
    (call $print (local.get $ptr) (local.get $len))
    (call $print (local.get $ptr) (local.get $len))
    (i32.store (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 512))
    (i32.store (i32.const 40) (i32.const 7))
    (i32.const 32))
)`

let rt: TestRuntime

/** The printing guest above, built into a component. */
async function stdoutApp(): Promise<Uint8Array> {
  const embedded = await componentEmbed({
    binary: await parse(WAT),
    witSource: WIT,
    world: 'test:app/app',
    stringEncoding: 'utf8',
  })
  return componentNew(embedded, [])
}

beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
})

afterAll(async () => {
  await rt?.close()
})

describe('WASI baseline in the sandbox', () => {
  it('turns stdout into log lines and provides random, with no grant needed', async () => {
    const app = await rt.warden.load(await stdoutApp())
    expect(app.imports).toEqual(
      expect.arrayContaining(['wasi:cli/stdout', 'wasi:io/streams', 'wasi:random/random']),
    )
    const run = await rt.warden.invoke(app, 'hello stdout')
    expect(run.ok).toBe(true)
    expect(run.output).toBe('printed')
    expect(run.logs).toEqual([
      { level: 'info', message: 'hello stdout' },
      { level: 'info', message: 'hello stdout' },
    ])
    // Four writes (text and newline, twice): four host calls and four decisions, not per line.
    expect(run.report.hostCalls).toBe(4)
    expect(run.decisions.filter((d) => d.capability === 'wasi:cli/stdout')).toHaveLength(4)
  })

  it('tells a run listener of each stdout write as the worker makes it', async () => {
    const app = await rt.warden.load(await stdoutApp())
    const heard: Decision[] = []
    const run = await rt.warden.invoke(app, 'hello stdout', { onDecision: (d) => heard.push(d) })
    expect(heard).toHaveLength(4)
    expect(heard).toEqual(run.decisions)
    expect(heard[0]).toMatchObject({ capability: 'wasi:cli/stdout', fn: 'write', bytesOut: 12 })
  })

  it('counts stdout writes against the host-call budget, however many lines they carry', async () => {
    const app = await rt.warden.load(await stdoutApp())
    const flood = await rt.warden.invoke(app, '\n'.repeat(4000), {
      limits: { hostCalls: 3, logLines: 10 },
    })
    expect(flood.error?.code).toBe('limit_exceeded')
    expect(flood.logs.length).toBeLessThanOrEqual(10)
    expect(flood.decisions.length).toBeLessThanOrEqual(4)
  })
})
