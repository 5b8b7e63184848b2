/**
 * Attack 12: the million-header flood of header-flood-response.test.ts through a host call.
 *
 * An action that imports `warden:platform/http` (medium risk: approved by an admin, as any app
 * that calls an API) calls `fetch` with 1,000,000 headers of two empty strings. The worker lifts
 * the list (within the 64 MiB lift budget; payloadBytes counts only string bytes: 0), posts the
 * request (over 1 MiB: message passing) and the main thread decodes a million objects before the
 * broker refuses the call, here as `not granted` (a token whose http grant allows nothing would
 * do; the refusal comes after the decode either way). Measured: ~1.5 s of lifting in the worker
 * with no fuel check (2.1–2.2 s per run for 1M × ~8 instructions of guest work) and 512–616 ms
 * of main-thread stall per run.
 *
 * Fixed: the worker reads the deadline every 256 KiB of lifting, and a host call's arguments
 * carry at most 16,384 values (`limit_exceeded`, in the worker). Deterministic checks: at a
 * long deadline the call is refused in the worker; with a 200 ms deadline the run answers
 * `timeout`, and its worker comes back within the grace (no worker replaced).
 */
import { readFile } from 'node:fs/promises'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRuntime } from '../support/runtime.js'
import type { TestRuntime } from '../support/runtime.js'

const N = 1_000_000

const WAT = `(module
  (import "warden:platform/http@0.1.0" "fetch" (func $fetch (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (memory (export "memory") 300)
  (data (i32.const 256) "GET")
  (data (i32.const 272) "https://api.example.com/")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (local $i i32) (local $at i32)
    (local.set $at (i32.const 65536))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const ${N})))
        (i32.store (local.get $at) (i32.const 256))
        (i32.store offset=8 (local.get $at) (i32.const 256))
        (local.set $at (i32.add (local.get $at) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $fetch (i32.const 256) (i32.const 3) (i32.const 272) (i32.const 24)
      (i32.const 65536) (i32.const ${N}) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 0) (i32.const 128))
    (i32.store (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 256))
    (i32.store (i32.const 40) (i32.const 3))
    (i32.const 32)))`

async function app(): Promise<Uint8Array> {
  const platform = await readFile(new URL('../../wit/platform.wit', import.meta.url), 'utf8')
  const embedded = await componentEmbed({
    binary: await parse(WAT),
    witSource: `${platform}
world flood {
  import http;
  export run: func(input: string) -> result<string, string>;
}
`,
    world: 'flood',
    stringEncoding: 'utf8',
  })
  return componentNew(embedded, [])
}

let rt: TestRuntime
beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
}, 60_000)
afterAll(() => rt?.close())

describe('http.fetch with a million headers', () => {
  it('ends at its deadline in the guest, and the main thread is not held', async () => {
    const loaded = await rt.warden.load(await app())
    for (let i = 0; i < 1; i++) {
      const stall = monitorEventLoopDelay({ resolution: 5 })
      stall.enable()
      const t = performance.now()
      const run = await rt.warden.invoke(loaded, 'x', {
        interfaces: ['warden:platform/http'],
        limits: { timeoutMs: 30_000 },
      })
      stall.disable()
      console.log(
        `host call with ${N} headers: ${run.error?.code ?? run.output} in ${(performance.now() - t).toFixed(0)} ms, main-thread max stall ${(stall.max / 1e6).toFixed(0)} ms, ${JSON.stringify(run.decisions).slice(0, 200)}`,
      )
      // Refused in the worker before it was posted: the main thread decodes none of it.
      expect(run.error).toMatchObject({
        code: 'limit_exceeded',
        message: expect.stringContaining('16384 values'),
      })
    }
    const before = rt.warden.pool.replacements
    const codes: (string | undefined)[] = []
    for (let i = 0; i < 3; i++) {
      const run = await rt.warden.invoke(loaded, 'x', {
        interfaces: ['warden:platform/http'],
        limits: { timeoutMs: 200 },
      })
      codes.push(run.error?.code)
      await new Promise((resolve) => setTimeout(resolve, 1500))
    }
    console.log(
      `200 ms deadline: ${codes.join(',')}; workers replaced ${rt.warden.pool.replacements - before}`,
    )
    expect(codes).toEqual(['timeout', 'timeout', 'timeout'])
    expect(rt.warden.pool.replacements - before).toBe(0)
  }, 120_000)
})
