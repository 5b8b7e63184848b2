/**
 * Regression tests for what the outside attack on issue 6 found in the sandbox: a memory per
 * instance instead of per run, and copies out of guest memory that no heap limit bounded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_RUN_LIFT_BYTES } from '../runtime/limits/limits.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { actionWat, compileWat } from './support/wat.js'

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
    const run = await rt.warden.invoke(app, 'x', { grant: ['warden:platform/log'] })
    expect(run.error?.code).toBe('limit_exceeded')
    // A run under the budget is untouched, and the budget is per run.
    const small = actionWat(`(func (export "run") (param i32 i32) (result i32)
      (call $ok (local.get 0) (local.get 1)))`)
    const ok = await rt.warden.invoke(await rt.warden.load(await compileWat(small)), 'fine')
    expect(ok.output).toBe('fine')
  })
})
