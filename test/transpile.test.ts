/**
 * The transpile worker is never reused after a job that failed: a component that makes jco
 * trap can leave jco's own wasm state broken for every later upload (found in issue 6).
 */
import { afterAll, describe, expect, it } from 'vitest'
import { Transpiler } from '../runtime/loader/transpile.js'
import { guestFile, compileWat } from './support/wat.js'

const transpiler = new Transpiler()
afterAll(() => transpiler.close())

// Passes the name and structure checks, but its lift does not type-check: jco refuses it.
const MISTYPED = `(component
  (core module $m (func (export "run") (param i32) (result i32) (local.get 0)))
  (core instance $i (instantiate $m))
  (func (export "run") (param "input" string) (result string) (canon lift (core func $i "run"))))`

const request = (bytes: Uint8Array) => ({ bytes, maxMemoryPages: 1024, maxTableElements: 1000 })

describe('the transpile worker', () => {
  it('is replaced after a refused component, and the next upload transpiles', async () => {
    await transpiler.transpile(request(await guestFile('echo')))
    expect(transpiler.workersStarted).toBe(1)
    await expect(transpiler.transpile(request(await compileWat(MISTYPED)))).rejects.toMatchObject({
      code: 'invalid_component',
    })
    const out = await transpiler.transpile(request(await guestFile('echo')))
    expect(out.ok).toBe(true)
    expect(transpiler.workersStarted).toBe(2)
  })
})
