/**
 * Regression tests for what the outside attack on issue 6 found in the sandbox: a memory per
 * instance instead of per run, and copies out of guest memory that no heap limit bounded.
 */
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_RUN_LIFT_BYTES } from '../runtime/limits/limits.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { infiniteLoop } from './support/guests.js'
import { actionWat, compileWat, guestFile } from './support/wat.js'

let rt: TestRuntime
beforeAll(async () => {
  rt = await startTestRuntime()
})
afterAll(() => rt.close())

describe('one memory per run', () => {
  it('refuses a component that instantiates a module with a memory twice', async () => {
    // Each memory is capped on its own: K instances of one would hold K times the cap.
    const wat = actionWat(
      `(func (export "run") (param i32 i32) (result i32) (call $ok (local.get 0) (local.get 1)))`,
      { extraModules: '(core instance $second-memory (instantiate $memory))' },
    )
    const app = await rt.warden.load(await compileWat(wat))
    const run = await rt.warden.invoke(app, 'x')
    expect(run.error?.code).toBe('invalid_component')
    // The host and the pool carry on.
    const again = await rt.warden.invoke(app, 'x')
    expect(again.error?.code).toBe('invalid_component')
  })
})

describe('copies out of guest memory', () => {
  it(`end the run with limit_exceeded past ${MAX_RUN_LIFT_BYTES} bytes in one run`, async () => {
    // Five 16 MiB log lines: each is a legal string, together they pass the run's budget.
    const line = 16 * 1024 * 1024
    const calls = Array.from(
      { length: 5 },
      () => `(call $log (i32.const 1) (i32.const 0) (i32.const ${line}))`,
    ).join('\n')
    const wat = actionWat(`(func (export "run") (param i32 i32) (result i32)
      (drop (memory.grow (i32.const 257)))
      ${calls}
      (call $ok (local.get 0) (local.get 1)))`)
    const app = await rt.warden.load(await compileWat(wat))
    const run = await rt.warden.invoke(app, 'x', { interfaces: ['warden:platform/log'] })
    expect(run.error?.code).toBe('limit_exceeded')
    // A run under the budget is untouched, and the budget is per run.
    const small = actionWat(`(func (export "run") (param i32 i32) (result i32)
      (call $ok (local.get 0) (local.get 1)))`)
    const ok = await rt.warden.invoke(await rt.warden.load(await compileWat(small)), 'fine')
    expect(ok.output).toBe('fine')
  })
})

/** A world with just enough WASI to hand the host a list of borrowed pollables. */
const POLL_WORLD = `package a:b;
world w {
  import wasi:io/poll@0.2.0;
  import wasi:clocks/monotonic-clock@0.2.0;
  export run: func(input: string) -> result<string, string>;
}
package wasi:io@0.2.0 { interface poll {
  resource pollable { ready: func() -> bool; block: func(); }
  poll: func(in: list<borrow<pollable>>) -> list<u32>; } }
package wasi:clocks@0.2.0 { interface monotonic-clock {
  use wasi:io/poll@0.2.0.{pollable}; type duration = u64;
  subscribe-duration: func(when: duration) -> pollable; } }
`

/** Core module: 16M copies of one pollable handle in a 64 MiB memory, handed to poll. */
const POLL_CORE = `(module
  (import "wasi:clocks/monotonic-clock@0.2.0" "subscribe-duration" (func $sub (param i64) (result i32)))
  (import "wasi:io/poll@0.2.0" "poll" (func $poll (param i32 i32 i32)))
  (memory (export "memory") 1024)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (param $ip i32) (param $il i32) (result i32)
    (local $h i32) (local $i i32) (local $n i32) (local $p i32)
    (local.set $h (call $sub (i64.const 1)))
    (local.set $n (i32.const 16000000))
    (local.set $p (i32.const 65536))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store (local.get $p) (local.get $h))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $poll (i32.const 65536) (local.get $n) (i32.const 300))
    (i32.store (i32.const 16) (i32.const 0)) (i32.store (i32.const 20) (i32.const 100))
    (i32.store (i32.const 24) (i32.const 0))
    (i32.const 16))
  (func (export "cabi_post_run") (param i32)))`

describe('lists lifted element by element', () => {
  it('end the run with limit_exceeded instead of ending the host (second outside attack)', async () => {
    // 16M borrowed handles cost no fuel and no bytes to lift; jco's glue pushed each into an
    // array, and V8 aborted the whole process near the worker's heap limit.
    const core = await parse(POLL_CORE)
    const embedded = await componentEmbed({
      binary: core,
      witSource: POLL_WORLD,
      world: 'w',
      stringEncoding: 'utf8',
    } as Parameters<typeof componentEmbed>[0])
    const app = await rt.warden.load(await componentNew(embedded, []))
    const run = await rt.warden.invoke(app, 'x', { limits: { timeoutMs: 60_000 } })
    expect(run.error?.code).toBe('limit_exceeded')
    expect(process.pid).toBeGreaterThan(0)
  })
})

describe('process isolation and tenants', () => {
  it("runs one app's run beside another app's runaway, as threads do (second outside attack)", async () => {
    // Every run in the sandbox process counted as one app, so tenants took turns.
    const processes = await startTestRuntime({ poolSize: 2, isolation: 'process' })
    try {
      const loop = await processes.warden.load(await compileWat(infiniteLoop))
      const echo = await processes.warden.load(await guestFile('echo'))
      let runawayDone = false
      const runaway = processes.warden
        .invoke(loop, '', { appId: 'attacker', limits: { fuel: 1e12, timeoutMs: 4_000 } })
        .then((r) => {
          runawayDone = true
          return r
        })
      const victim = await processes.warden.invoke(echo, 'hi', { appId: 'victim' })
      expect(victim.output).toBe('hi')
      expect(runawayDone).toBe(false)
      expect((await runaway).error?.code).toBe('timeout')
    } finally {
      await processes.close()
    }
  })
})
