import { describe, expect, it } from 'vitest'
import { createGlueRealm } from './glue-realm.js'

const decoder = new TextDecoder()
const encoder = new TextEncoder()
let charged = 0
const realm = () =>
  createGlueRealm({
    chargeElements: (n) => {
      charged += n
      if (charged > 1000) {
        throw new RangeError('over budget')
      }
    },
    decode: (_label, input) => decoder.decode(input as Uint8Array),
    byteLength: (text) => encoder.encode(text).length,
    encodeInto: (text, into) => encoder.encodeInto(text, into),
  })

describe('the glue realm', () => {
  it('names nothing of Node', () => {
    const r = realm()
    for (const name of [
      'process',
      'require',
      'module',
      'Buffer',
      'fetch',
      'setTimeout',
      'console',
      'Atomics',
      'SharedArrayBuffer',
      'eval',
    ]) {
      expect({ name, type: r.evaluate(`return typeof ${name}`, 'probe.js') }).toEqual({
        name,
        type: 'undefined',
      })
    }
  })

  it('refuses code generation from strings in every form', () => {
    const r = realm()
    for (const code of [
      'return Function("return 1")()',
      'return (() => 1).constructor("return 1")()',
      'return (async () => 1).constructor("return 1")',
      'return (function* () {}).constructor("return 1")',
      'return (async function* () {}).constructor("return 1")',
    ]) {
      expect(() => r.evaluate(code, 'probe.js')).toThrow()
    }
  })

  it('has no WebAssembly compiler', () => {
    const r = realm()
    expect(
      r.evaluate('return typeof WebAssembly.compile + typeof WebAssembly.Module', 'probe.js'),
    ).toBe('undefinedundefined')
  })

  it('refuses dynamic import', async () => {
    const r = realm()
    const pending = r.evaluate('return import("node:fs")', 'probe.js') as Promise<unknown>
    await expect(pending).rejects.toMatchObject({ code: 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING' })
  })

  it('keeps its built-ins frozen, so nothing a glue changes outlives it', () => {
    const r = realm()
    expect(() => r.evaluate(`'use strict'; Object.prototype.polluted = 1`, 'probe.js')).toThrow(
      /not extensible|read.only|frozen/,
    )
    expect(() => r.evaluate(`'use strict'; Array.prototype.push = null`, 'probe.js')).toThrow(
      /not extensible|read.only|frozen/,
    )
    expect(() => r.evaluate(`'use strict'; Error.prepareStackTrace = () => 1`, 'probe.js')).toThrow(
      /not extensible|read.only|frozen/,
    )
    expect(r.evaluate('return ({}).polluted', 'probe.js')).toBeUndefined()
  })

  it('gives each component its own built-ins', () => {
    const a = realm()
    const b = realm()
    expect(a.intrinsics.Object).not.toBe(b.intrinsics.Object)
  })

  it('encodes and decodes UTF-8 through the host codec, into the realm own arrays', () => {
    const r = realm()
    const out = r.evaluate(
      'const b = new TextEncoder().encode("héllo ✓"); return [b instanceof Uint8Array, new TextDecoder().decode(b)]',
      'probe.js',
    )
    expect(out).toEqual([true, 'héllo ✓'])
  })

  it('charges every element pushed onto an array, and can stop a lift', () => {
    const r = realm()
    charged = 0
    expect(
      r.evaluate(
        'const a = []; for (let i = 0; i < 10; i++) { a.push(i) }; return a.length',
        'p.js',
      ),
    ).toBe(10)
    expect(charged).toBe(10)
    expect(() => r.evaluate('const a = []; for (;;) { a.push(0) }', 'p.js')).toThrow(/over budget/)
  })
})
