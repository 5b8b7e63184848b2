/**
 * Each `warden:platform` world, built with jco's WIT tools from core WAT and loaded; a guest
 * output too large to lift; and a worker that dies mid-run (its V8 heap exhausted by millions
 * of lifted records) is replaced while the host stays up.
 */
import { readFile } from 'node:fs/promises'
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'

const PLATFORM_WIT = new URL('../wit/platform.wit', import.meta.url)

/** A core module built into a component against `world` of the platform package. */
async function build(world: string, wat: string): Promise<Uint8Array> {
  const embedded = await componentEmbed({
    binary: await parse(wat),
    witSource: await readFile(PLATFORM_WIT, 'utf8'),
    world,
    stringEncoding: 'utf8',
  })
  return componentNew(embedded, [])
}

/** `handler.handle`: answers 200 with the request's path as the body. */
const MICRO_APP = `(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "warden:platform/handler@0.1.0#handle")
    (param $mp i32) (param $ml i32) (param $pp i32) (param $pl i32) (param $qp i32) (param $ql i32)
    (param $hp i32) (param $hl i32) (param $bp i32) (param $bl i32) (result i32)
    ;; outgoing-response { status: u16 @0, headers: list @4, body: list<u8> @12 } at 64
    (i32.store16 (i32.const 64) (i32.const 200))
    (i32.store (i32.const 68) (i32.const 0))
    (i32.store (i32.const 72) (i32.const 0))
    (i32.store (i32.const 76) (local.get $pp))
    (i32.store (i32.const 80) (local.get $pl))
    (i32.const 64)))`

/** `run`: grows memory to 48 MiB and returns all of it as its output string. */
const HUGE_OUTPUT = `(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i32)
    (drop (memory.grow (i32.const 767)))
    (memory.fill (i32.const 0) (i32.const 97) (i32.const 50331648))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 0))
    (i32.store (i32.const 24) (i32.const 50331648))
    (i32.const 16)))`

let rt: TestRuntime

beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1, workerHeapMb: 32 })
})

afterAll(async () => {
  await rt?.close()
})

describe('worlds', () => {
  it('loads a micro-app and calls its handler', async () => {
    const app = await rt.warden.load(await build('micro-app', MICRO_APP))
    expect(app.kind).toBe('micro-app')
    const request = {
      method: 'GET',
      path: '/hello/world',
      query: '',
      headers: [],
      body: new Uint8Array(),
    }
    const run = await rt.warden.call(app, 'handler.handle', [request])
    expect(run.ok).toBe(true)
    const response = run.output as { status: number; body: Uint8Array }
    expect(response.status).toBe(200)
    expect(new TextDecoder().decode(response.body)).toBe('/hello/world')
    await expect(async () => rt.warden.invoke(app, '{}')).rejects.toMatchObject({
      code: 'invalid_request',
    })
  })

  it('loads an action (the action world is exercised throughout the suite)', async () => {
    const app = await rt.warden.load(
      await build(
        'action',
        `(module
      (memory (export "memory") 1)
      (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
      (func (export "run") (param i32 i32) (result i32)
        (i32.store (i32.const 16) (i32.const 0))
        (i32.store (i32.const 20) (local.get 0))
        (i32.store (i32.const 24) (local.get 1))
        (i32.const 16)))`,
      ),
    )
    expect(app.kind).toBe('action')
    expect((await rt.warden.invoke(app, 'same')).output).toBe('same')
  })
})

/** `handler.handle`: answers with `n` headers, every one `ab: ab`: n records to lift. */
function manyHeaders(n: number): string {
  return `(module
  (memory (export "memory") 1)
  (data (i32.const 64) "ab")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "warden:platform/handler@0.1.0#handle")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (local $i i32) (local $p i32)
    (drop (memory.grow (i32.const ${Math.ceil((n * 16) / 65536) + 20})))
    (local.set $p (i32.const 1048576))
    (loop $l
      (i32.store (local.get $p) (i32.const 64))
      (i32.store offset=4 (local.get $p) (i32.const 2))
      (i32.store offset=8 (local.get $p) (i32.const 64))
      (i32.store offset=12 (local.get $p) (i32.const 2))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const ${n}))))
    (i32.store16 (i32.const 128) (i32.const 200))
    (i32.store (i32.const 132) (i32.const 1048576))
    (i32.store (i32.const 136) (i32.const ${n}))
    (i32.store (i32.const 140) (i32.const 0))
    (i32.store (i32.const 144) (i32.const 0))
    (i32.const 128)))`
}

const REQUEST = { method: 'GET', path: '/after', query: '', headers: [], body: new Uint8Array() }

describe('payloads larger than the shared channel', () => {
  it('carries a 1.2 MB input in and back out', async () => {
    const app = await rt.warden.load(
      await build(
        'action',
        `(module
      (memory (export "memory") 40)
      (global $bump (mut i32) (i32.const 1024))
      (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
        (local $p i32)
        (local.set $p (global.get $bump))
        (global.set $bump (i32.add (global.get $bump) (local.get 3)))
        (local.get $p))
      (func (export "run") (param i32 i32) (result i32)
        (i32.store (i32.const 16) (i32.const 0))
        (i32.store (i32.const 20) (local.get 0))
        (i32.store (i32.const 24) (local.get 1))
        (i32.const 16)))`,
      ),
    )
    const input = `"${'x'.repeat(1_200_000)}"`
    const before = rt.warden.pool.replacements
    const run = await rt.warden.invoke(app, input)
    expect(run.error).toBeUndefined()
    expect(run.output).toBe(input)
    expect(rt.warden.pool.replacements).toBe(before)
  })
})

describe('outputs too large for the host', () => {
  it('refuses to lift a 48 MiB output string: limit_exceeded, and the worker lives on', async () => {
    const huge = await rt.warden.load(await build('action', HUGE_OUTPUT))
    const before = rt.warden.pool.replacements
    const run = await rt.warden.invoke(huge, '', { limits: { memoryMb: 64 } })
    expect(run.error?.code).toBe('limit_exceeded')
    expect(rt.warden.pool.replacements).toBe(before)
  })
})

describe('a crashed worker', () => {
  it('ends its run with internal, is replaced, and the next run succeeds', async () => {
    // 1.5 M lifted header records exhaust the 32 MiB worker heap of this test runtime.
    const flood = await rt.warden.load(await build('micro-app', manyHeaders(1_500_000)))
    const before = rt.warden.pool.replacements
    const run = await rt.warden.call(flood, 'handler.handle', [REQUEST], {
      limits: { memoryMb: 64, timeoutMs: 60_000 },
    })
    expect(run.error?.code).toBe('internal')
    expect(rt.warden.pool.replacements).toBe(before + 1)
    const app = await rt.warden.load(await build('micro-app', MICRO_APP))
    const next = await rt.warden.call(app, 'handler.handle', [REQUEST])
    expect(next.ok).toBe(true)
  })
})
