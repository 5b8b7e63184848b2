/**
 * Issue 7, uploads and loading: a component must implement the world it claims, with the
 * exports' types; its imports are type-checked against `wit/`; core features Warden does not
 * meter or isolate are refused by name; loaded components are kept in memory up to a size cap.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_CAPABILITIES } from '../host-capabilities/index.js'
import { REFUSED_FEATURES } from '../runtime/limits/instrument.js'
import { ComponentLoader } from '../runtime/loader/load.js'
import type { ComponentLoaderOptions } from '../runtime/loader/load.js'
import { actionWat, compileWat, guestFile } from './support/wat.js'
import { refusal } from './support/refusal.js'

let dataDir: string
let loader: ComponentLoader

function newLoader(options: Partial<ComponentLoaderOptions> = {}): ComponentLoader {
  return new ComponentLoader({
    dataDir,
    capabilities: DEFAULT_CAPABILITIES,
    maxMemoryPages: 1024,
    ...options,
  })
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-issue-7-'))
  loader = newLoader()
})

afterAll(async () => {
  await loader.close()
  await rm(dataDir, { recursive: true, force: true })
})

async function load(wat: string) {
  return loader.load(await compileWat(wat))
}

/** An action that echoes its input, with `imports` declared (and unused) before it. */
function runWith(imports: string, run = '(result (result string (error string)))'): string {
  return `(component
  ${imports}
  (core module $m
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param i32 i32) (result i32)
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (local.get 0))
      (i32.store (i32.const 24) (local.get 1))
      (i32.const 16)))
  (core instance $i (instantiate $m))
  (func $run (param "input" string) ${run}
    (canon lift (core func $i "run") (memory $i "memory") (realloc (func $i "cabi_realloc"))))
  (export "run" (func $run)))`
}

/** A component exporting `handle` of the given type, as the interface `name`. */
function handlerWith(type: string, name = 'warden:platform/handler@0.1.0', extra = ''): string {
  return `(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "handle") (param i32 i32) (result i32) (i32.const 16)))
  (core instance $i (instantiate $m))
  (func $handle ${type}
    (canon lift (core func $i "handle") (memory $i "memory") (realloc (func $i "cabi_realloc"))))
  (instance $h (export "handle" (func $handle)))
  (export "${name}" (instance $h))
  ${extra})`
}

const LEVEL = `(type $level-def (enum "debug" "info" "warn" "error"))
    (export $level "level" (type (eq $level-def)))`

describe('a component implements the world it claims', () => {
  it.each([
    ['an empty component', '(component)'],
    [
      'a component with imports only',
      `(component (import "warden:platform/log@0.1.0" (instance ${LEVEL}
        (export "write" (func (param "level" $level) (param "message" string))))))`,
    ],
    ['run returning a string', runWith('', '(result string)')],
    ['run taking a u32', runWith('').replace('(param "input" string)', '(param "input" u32)')],
    ['run under another name', runWith('').replace('(export "run" (func', '(export "go" (func')],
    ['handle of another type', handlerWith('(param "req" string) (result string)')],
    [
      'the handler at another version',
      handlerWith('(param "req" string) (result string)', 'warden:platform/handler@0.2.0'),
    ],
    [
      'run and a handler both',
      handlerWith(
        '(param "req" string) (result string)',
        undefined,
        '(export "run" (func $handle))',
      ),
    ],
  ])('refuses %s with invalid_component', async (_what, wat) => {
    expect((await refusal(load(wat))).code).toBe('invalid_component')
  })

  it('names what is mistyped', async () => {
    const error = await refusal(load(runWith('', '(result string)')))
    expect(error.message).toContain('run: func(input: string) -> string')
    expect(error.message).toContain('run: func(input: string) -> result<string, string>')
  })

  it('still loads an action and reports its kind', async () => {
    expect((await load(runWith(''))).kind).toBe('action')
  })
})

describe('imports are type-checked against wit/', () => {
  it.each([
    [
      'log.write without its level',
      `(import "warden:platform/log@0.1.0" (instance
        (export "write" (func (param "message" string)))))`,
    ],
    [
      'log.write with a u8 level',
      `(import "warden:platform/log@0.1.0" (instance
        (export "write" (func (param "level" u8) (param "message" string)))))`,
    ],
    [
      'a log level with a fifth case',
      `(import "warden:platform/log@0.1.0" (instance
        (type $level-def (enum "debug" "info" "warn" "error" "fatal"))
        (export $level "level" (type (eq $level-def)))
        (export "write" (func (param "level" $level) (param "message" string)))))`,
    ],
    [
      'a log function the interface does not have',
      `(import "warden:platform/log@0.1.0" (instance ${LEVEL}
        (export "write" (func (param "level" $level) (param "message" string)))
        (export "erase" (func))))`,
    ],
    [
      'http.fetch returning a string',
      `(import "warden:platform/http@0.1.0" (instance
        (export "fetch" (func (param "url" string) (result string)))))`,
    ],
    [
      'wasi:random get-random-bytes with a u32 length',
      `(import "wasi:random/random@0.2.3" (instance
        (export "get-random-bytes" (func (param "len" u32) (result (list u8))))))`,
    ],
    [
      'a wasi:cli/stdout function Warden does not implement',
      `(import "wasi:cli/stdout@0.2.0" (instance (export "get-stdout-fd" (func (result u32)))))`,
    ],
    [
      'a wasi:io/streams method Warden does not implement',
      `(import "wasi:io/streams@0.2.0" (instance
        (export $os "output-stream" (type (sub resource)))
        (export "[method]output-stream.forward" (func (param "self" (borrow $os)) (result u64)))))`,
    ],
  ])('refuses %s with unsupported_import', async (_what, imports) => {
    expect((await refusal(load(runWith(imports)))).code).toBe('unsupported_import')
  })

  it('names the function and both signatures', async () => {
    const error = await refusal(
      load(
        runWith(`(import "warden:platform/log@0.1.0" (instance
          (export "write" (func (param "message" string)))))`),
      ),
    )
    expect(error.message).toContain('warden:platform/log@0.1.0')
    expect(error.message).toContain('write: func(message: string)')
    expect(error.message).toContain('write: func(level: level, message: string)')
  })

  it('accepts imports as wit/ declares them, at any WASI 0.2.x version', async () => {
    const app = await load(
      runWith(`(import "warden:platform/log@0.1.0" (instance ${LEVEL}
        (export "write" (func (param "level" $level) (param "message" string)))))
      (import "wasi:random/random@0.2.3" (instance
        (export "get-random-u64" (func (result u64)))))`),
    )
    expect(app.imports).toEqual(['warden:platform/log', 'wasi:random/random'])
  })
})

describe('core features Warden does not meter or isolate', () => {
  const run = `(func (export "run") (param i32 i32) (result i32)
    (call $ok (i32.const 0) (i32.const 0)))`
  const extra = (module: string) =>
    actionWat(run, {
      extraModules: `(core module $x ${module}) (core instance $xi (instantiate $x))`,
    })

  it.each([
    ['a shared memory', extra('(memory 1 1 shared)'), REFUSED_FEATURES.shared],
    ['a second memory in another module', extra('(memory 1)'), REFUSED_FEATURES.multiMemory],
    // jco refuses this one itself, in its own words.
    ['two memories in one module', extra('(memory 1) (memory 1)'), 'multiple memories'],
    ['memory64', extra('(memory i64 1)'), REFUSED_FEATURES.memory64],
    [
      'relaxed SIMD',
      actionWat(`${run}
        (func (result v128) (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0)))`),
      REFUSED_FEATURES.relaxedSimd,
    ],
    [
      'an extended constant expression',
      actionWat(`${run} (global i32 (i32.add (i32.const 1) (i32.const 2)))`),
      REFUSED_FEATURES.extendedConst,
    ],
    [
      'exception references',
      actionWat(`${run} (tag $t) (func (block $l (try_table (catch $t $l) (throw $t))))`),
      REFUSED_FEATURES.exnref,
    ],
  ])('refuses %s with invalid_component, naming it', async (_what, wat, feature) => {
    const error = await refusal(load(wat))
    expect(error.code).toBe('invalid_component')
    expect(error.message).toContain(feature)
  })

  it('refuses the atomic-wait guest, whose blocking wait needs a shared memory', async () => {
    expect((await refusal(loader.load(await guestFile('atomic-wait')))).code).toBe(
      'invalid_component',
    )
  })
})

describe('loaded components kept in memory', () => {
  /** A distinct action per `n`: the same code with another constant. */
  const variant = (n: number) =>
    actionWat(`(func (export "run") (param i32 i32) (result i32)
      (drop (i32.const ${n}))
      (call $ok (local.get 0) (local.get 1)))`)

  it('are bounded by size: least recently used out, served from disk again', async () => {
    const [a, b] = [await compileWat(variant(1)), await compileWat(variant(2))]
    const measure = newLoader()
    let sizeA: number
    let sizeB: number
    try {
      await measure.load(a)
      sizeA = measure.memoBytes
      await measure.load(b)
      sizeB = measure.memoBytes - sizeA
    } finally {
      await measure.close()
    }
    expect(sizeA).toBeGreaterThan(0)
    // Room for either one, not both.
    const small = newLoader({ maxMemoBytes: Math.max(sizeA, sizeB) + 1 })
    try {
      const firstA = await small.load(a)
      const firstB = await small.load(b)
      expect(small.memoBytes).toBeLessThanOrEqual(Math.max(sizeA, sizeB) + 1)
      expect(await small.load(b)).toBe(firstB)
      const againA = await small.load(a)
      expect(againA).not.toBe(firstA)
      expect(againA.cached).toBe(true)
      expect(againA.digest).toBe(firstA.digest)
    } finally {
      await small.close()
    }
  })
})
