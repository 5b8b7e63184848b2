/**
 * The host-call bridge, end to end, from inside a real componentize-js guest
 * (`test/guests/js/bridge.js`) calling the test-only `warden:test/echo` capability: every WIT
 * shape crosses worker → broker → worker intact, payloads past the shared channel take the
 * message path, `err` variants reach the guest, denials are recorded, and a guest stuck in a
 * host call is ended by its deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createTestEchoCapability,
  ECHO_INTERFACE,
  echoPatternByte,
} from '../host-capabilities/test-echo/index.js'
import { HostCallError } from '../host-capabilities/types.js'
import type { BrokerCapability, RunContext } from '../host-capabilities/types.js'
import type { Invocation, InvokeOptions, LoadedComponent } from '../runtime/index.js'
import { DEFAULT_CHANNEL_BYTES } from '../runtime/sandbox/protocol.js'
import { fakeRunContext } from './support/context.js'
import { buildJsGuest } from './support/js-guest.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'

const LOG = 'warden:platform/log'
const GRANT_ALL = [LOG, ECHO_INTERFACE]
/** Limits of the heavy runs (1000 items, MiBs of bytes): room to spare on a slow machine. */
const BIG_RUN = { fuel: 1e10, timeoutMs: 30_000 }

/** An item as the guest's JSON carries it: `score: null` is the absent option. */
interface JsonItem {
  name: string
  tags: string[]
  score: number | null
  blob: number[]
}

/** One call the broker received, seen through {@link spy}. */
interface BrokerCall {
  fn: string
  args: unknown[]
  ctx: RunContext
}

const brokerCalls: BrokerCall[] = []

/** The capability, recording what the broker hands it (what crossed worker → main). */
function spy(capability: BrokerCapability): BrokerCapability {
  return {
    descriptor: capability.descriptor,
    handle(fn, args, ctx) {
      brokerCalls.push({ fn, args, ctx })
      return capability.handle(fn, args, ctx)
    },
  }
}

let rt: TestRuntime
let app: LoadedComponent

beforeAll(async () => {
  const [bytes, runtime] = await Promise.all([
    buildJsGuest('bridge'),
    startTestRuntime({ brokerCapabilities: [spy(createTestEchoCapability())] }),
  ])
  rt = runtime
  app = await rt.warden.load(bytes)
}, 180_000)

afterAll(async () => {
  await rt?.close()
})

function invoke(request: object, options: InvokeOptions = {}): Promise<Invocation> {
  return rt.warden.invoke(app, JSON.stringify(request), { interfaces: GRANT_ALL, ...options })
}

/** The guest's JSON answer of a successful run. */
function reply(run: Invocation): unknown {
  expect(run.error).toBeUndefined()
  expect(run.guestError).toBeUndefined()
  return JSON.parse(run.output as string)
}

function callsOf(run: Invocation): BrokerCall[] {
  return brokerCalls.filter((c) => c.ctx.invocationId === run.report.invocationId)
}

/** The item as the broker must receive it from the worker: jco's shapes. */
function asWit(item: JsonItem) {
  return {
    name: item.name,
    tags: item.tags,
    score: item.score ?? undefined,
    blob: Uint8Array.from(item.blob),
  }
}

function fnv1a(data: Uint8Array): number {
  let hash = 0x811c9dc5
  for (const byte of data) {
    hash = Math.imul(hash ^ byte, 0x01000193)
  }
  return hash >>> 0
}

/** The guest's checksum: FNV-1a over 32-bit words of the FNV-1a of each 4 KiB chunk. */
function checksum(data: Uint8Array): number {
  let hash = 0x811c9dc5
  for (let start = 0; start < data.length; start += 4096) {
    hash = Math.imul(hash ^ fnv1a(data.subarray(start, start + 4096)), 0x01000193)
  }
  return hash >>> 0
}

function pattern(size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => echoPatternByte(i))
}

describe('values cross the bridge both ways', () => {
  const everyShape: JsonItem = {
    name: 'Ada Lovelace — 🦀 中文 ñ\u0000end',
    tags: ['', 'ü', '👩‍💻', 'tab\there'],
    // The largest u32 a componentize-js 0.23 guest can send: it passes u32 values ≥ 2^31 to
    // its imports as the low 32 bits of their f64 (2^32 - 1 arrives as 4292870144), a guest
    // toolchain bug, not the bridge's.
    score: 2_147_483_647,
    blob: Array.from({ length: 256 }, (_, i) => i),
  }
  const absent: JsonItem = { name: '', tags: [], score: null, blob: [] }
  const zero: JsonItem = { name: 'zero', tags: ['only'], score: 0, blob: [0] }

  it.each([
    ['every field set, unicode, all 256 byte values', everyShape],
    ['an absent option and empty lists', absent],
    ['a zero score and a single zero byte', zero],
  ])('round-trips a record exactly: %s', async (_, item) => {
    const run = await invoke({ op: 'echoItem', item })
    expect(reply(run)).toEqual({ ok: item })
    const [call, ...more] = callsOf(run)
    expect(more).toEqual([])
    expect(call!.fn).toBe('echoItem')
    // What the broker saw: `option` none is `undefined`, `list<u8>` a Uint8Array.
    expect(call!.args).toStrictEqual([asWit(item)])
  })

  it('round-trips a list of 1000 items', async () => {
    const items: JsonItem[] = Array.from({ length: 1000 }, (_, i) => ({
      name: `item ${i} ✓`,
      tags: Array.from({ length: i % 4 }, (_, t) => `t${t}`),
      score: i % 3 === 0 ? null : i * 1000,
      blob: Array.from({ length: i % 17 }, (_, b) => (i + b) & 0xff),
    }))
    // ~3e9 fuel: every loop iteration of the guest's interpreter costs thousands of units.
    const run = await invoke({ op: 'echoList', items }, { limits: BIG_RUN })
    expect(reply(run)).toEqual({ ok: items })
    expect(callsOf(run)[0]!.args).toStrictEqual([items.map(asWit)])
  })

  it('carries a 3 MiB answer over the large-payload path', async () => {
    const size = 3 * 1024 * 1024
    expect(size).toBeGreaterThan(DEFAULT_CHANNEL_BYTES)
    const run = await invoke({ op: 'bytes', size }, { limits: BIG_RUN })
    expect(reply(run)).toEqual({ ok: { length: size, checksum: checksum(pattern(size)) } })
  })

  it('carries a 2 MiB request and its echo over the large-payload path', async () => {
    const size = 2 * 1024 * 1024
    expect(size).toBeGreaterThan(DEFAULT_CHANNEL_BYTES)
    const run = await invoke({ op: 'echoBig', size }, { limits: BIG_RUN })
    expect(reply(run)).toEqual({ ok: { length: size, checksum: checksum(pattern(size)) } })
    const [call] = callsOf(run)
    const { blob, ...rest } = (call!.args as [{ blob: unknown }])[0]
    expect(rest).toStrictEqual({ name: 'big', tags: [], score: undefined })
    // Byte-wise, not toStrictEqual: vitest's deep diff of 2 MiB is slower than the run itself.
    expect(blob).toBeInstanceOf(Uint8Array)
    expect(Buffer.compare(blob as Uint8Array, pattern(size))).toBe(0)
  })
})

describe('errors and denials', () => {
  it('returns a capability error to the guest as its err variant; the run goes on', async () => {
    const run = await invoke({ op: 'fail', reason: 'not today ✋' })
    expect(run.ok).toBe(true)
    expect(reply(run)).toEqual({ err: { tag: 'refused', val: 'not today ✋' } })
    expect(run.decisions).toEqual([
      expect.objectContaining({ capability: ECHO_INTERFACE, fn: 'fail', decision: 'allow' }),
    ])
  })

  // Without the grant the worker denies the call itself (no round trip) by throwing the
  // platform's `host-error` `denied(...)` into jco's glue. What the guest then sees depends on
  // the function's WIT type:
  // - `echo-list`, `bytes`: no `result`, so no `err` to carry it; the throw unwinds the guest.
  // - `echo-item`: its `err` is `echo-error`, which has no `denied` case; the glue cannot lower
  //   `{ tag: 'denied' }` into it and throws a TypeError, which unwinds the guest too.
  // Either way the run ends with `capability_denied`: the host refused, the guest did not trap.
  it.each([
    ['echoItem', { op: 'echoItem', item: { name: 'x', tags: [], score: null, blob: [] } }],
    ['echoList', { op: 'echoList', items: [] }],
    ['bytes', { op: 'bytes', size: 3 }],
  ])('ends the run on %s without the grant, and records the denial', async (fn, req) => {
    const run = await invoke(req, { interfaces: [LOG] })
    expect(run.ok).toBe(false)
    expect(run.error?.code).toBe('capability_denied')
    expect(run.decisions).toEqual([
      expect.objectContaining({ capability: ECHO_INTERFACE, fn, decision: 'deny' }),
    ])
    expect(callsOf(run)).toEqual([])
  })

  it('ends a guest stuck in a host call at its deadline, and the runtime carries on', async () => {
    const replacements = rt.warden.pool.replacements
    const run = await invoke({ op: 'hang' }, { limits: { timeoutMs: 300 } })
    expect(run.error?.code).toBe('timeout')
    expect(run.report.outcome).toBe('timeout')
    // The broker's pending call is released: the run's signal aborted when the run ended.
    const [call] = callsOf(run)
    expect(call!.fn).toBe('hang')
    expect(call!.ctx.signal.aborted).toBe(true)
    // Released, the call answers and the guest returns within the pool's grace: the worker
    // comes back and is not replaced (test/deadline-in-guest.test.ts has one that never does).

    const after: JsonItem = { name: 'after', tags: [], score: 1, blob: [1] }
    const next = await invoke({ op: 'echoItem', item: after })
    expect(reply(next)).toEqual({ ok: after })
    expect(rt.warden.pool.replacements).toBe(replacements)
  })
})

describe('log', () => {
  it('keeps the line a JS guest writes in the run', async () => {
    const run = await invoke({ op: 'log', text: 'hello from JS — ✓' }, { interfaces: [LOG] })
    expect(reply(run)).toEqual({ ok: 'logged' })
    expect(run.logs).toEqual([{ level: 'info', message: 'hello from JS — ✓' }])
  })
})

describe('broker-side validation', () => {
  it('refuses a malformed call with HostCallError invalid, whatever the worker sends', () => {
    const ctx = fakeRunContext({ granted: new Set([ECHO_INTERFACE]) })
    let thrown: unknown
    try {
      createTestEchoCapability().handle('echoItem', [{ name: 1 }], ctx)
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(HostCallError)
    expect((thrown as HostCallError).payload.tag).toBe('invalid')
  })
})
