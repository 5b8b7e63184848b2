/**
 * The echo capability's broker half on its own: what it answers, and that it refuses every
 * malformed call (the worker's arguments are never trusted) with `HostCallError('invalid')`.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_CAPABILITIES } from '../index.js'
import { fakeRunContext } from '../../test/support/context.js'
import { HostCallError } from '../types.js'
import type { RunContext } from '../types.js'
import {
  createTestEchoCapability,
  ECHO_INTERFACE,
  echoPatternByte,
  MAX_ECHO_BYTES,
  testEchoDescriptor,
} from './index.js'

function context(signal: AbortSignal = new AbortController().signal): RunContext {
  return fakeRunContext({
    invocationId: 'unit',
    appId: 'unit',
    digest: 'unit',
    granted: new Set([ECHO_INTERFACE]),
    signal,
  })
}

function call(fn: string, args: unknown[], signal?: AbortSignal): unknown {
  return createTestEchoCapability().handle(fn, args, context(signal))
}

/** What `call` throws; fails the test when it returns. */
function thrownBy(fn: string, args: unknown[]): unknown {
  try {
    call(fn, args)
  } catch (error) {
    return error
  }
  throw new Error(`${fn} did not throw`)
}

const item = { name: 'n', tags: ['a'], score: 3, blob: new Uint8Array([1, 2]) }

describe('testEchoDescriptor', () => {
  it('is a broker capability that is never a default', () => {
    expect(testEchoDescriptor).toEqual({
      interface: 'warden:test/echo',
      versions: ['0.1.0'],
      functions: ['echoItem', 'echoList', 'bytes', 'fail', 'hang'],
      side: 'broker',
    })
    expect(DEFAULT_CAPABILITIES.map((d) => d.interface)).not.toContain(ECHO_INTERFACE)
  })
})

describe('createTestEchoCapability', () => {
  it('echoes an item as a fresh copy with exactly the WIT fields', () => {
    const back = call('echoItem', [item]) as typeof item
    expect(back).toStrictEqual(item)
    expect(back.blob).not.toBe(item.blob)
    expect(call('echoItem', [{ name: '', tags: [], blob: new Uint8Array() }])).toStrictEqual({
      name: '',
      tags: [],
      score: undefined,
      blob: new Uint8Array(),
    })
  })

  it('echoes a list of items', () => {
    expect(call('echoList', [[item, item]])).toStrictEqual([item, item])
    expect(call('echoList', [[]])).toEqual([])
  })

  it('answers bytes(size) with size bytes of the pattern', () => {
    const out = call('bytes', [300]) as Uint8Array
    expect(out).toBeInstanceOf(Uint8Array)
    expect(out.length).toBe(300)
    expect([out[0], out[1], out[256], out[299]]).toEqual([7, 38, 7, echoPatternByte(299)])
    expect(call('bytes', [0])).toEqual(new Uint8Array())
  })

  it('fails with the echo-error refused(reason)', () => {
    const error = thrownBy('fail', ['because'])
    expect(error).toBeInstanceOf(HostCallError)
    expect((error as HostCallError).payload).toEqual({ tag: 'refused', val: 'because' })
  })

  it('hangs until the run signal aborts', async () => {
    const abort = new AbortController()
    let settled = false
    const pending = Promise.resolve(call('hang', [], abort.signal)).then(() => {
      settled = true
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(settled).toBe(false)
    abort.abort()
    await pending
    expect(settled).toBe(true)
  })

  it.each([
    ['echoItem', []],
    ['echoItem', [item, item]],
    ['echoItem', [null]],
    ['echoItem', [[item]]],
    ['echoItem', [{ name: 1 }]],
    ['echoItem', [{ ...item, name: undefined }]],
    ['echoItem', [{ ...item, tags: 'a' }]],
    ['echoItem', [{ ...item, tags: ['a', 2] }]],
    ['echoItem', [{ ...item, score: -1 }]],
    ['echoItem', [{ ...item, score: 1.5 }]],
    ['echoItem', [{ ...item, score: 2 ** 32 }]],
    ['echoItem', [{ ...item, score: null }]],
    ['echoItem', [{ ...item, blob: [1, 2] }]],
    ['echoItem', [{ ...item, extra: true }]],
    ['echoList', [item]],
    ['echoList', [[item, { name: 'x' }]]],
    ['bytes', ['3']],
    ['bytes', [-1]],
    ['bytes', [MAX_ECHO_BYTES + 1]],
    ['fail', [42]],
    ['hang', ['now']],
    ['nope', []],
  ])('refuses %s(%o) with invalid', (fn, args) => {
    const error = thrownBy(fn, args)
    expect(error).toBeInstanceOf(HostCallError)
    expect((error as HostCallError).payload.tag).toBe('invalid')
  })
})
