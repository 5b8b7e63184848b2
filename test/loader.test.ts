/**
 * Loading hostile or malformed bytes: every refusal has its code, nothing half-loads, and
 * good components are cached on disk by digest.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_CAPABILITIES } from '../host-capabilities/index.js'
import { ComponentLoader } from '../runtime/loader/load.js'
import { actionWat, compileWat, guestFile } from './support/wat.js'
import { refusal } from './support/refusal.js'

let dataDir: string
let loader: ComponentLoader

function newLoader(options: Partial<ConstructorParameters<typeof ComponentLoader>[0]> = {}) {
  return new ComponentLoader({
    dataDir,
    capabilities: DEFAULT_CAPABILITIES,
    maxMemoryPages: 1024,
    ...options,
  })
}

/** A component that imports one interface with one nullary function, and exports nothing. */
function importing(name: string): string {
  return `(component (import "${name}" (instance (export "f" (func)))))`
}

/** An action of its own: `run` returns its input after dropping `n`. */
function action(n: number): string {
  return actionWat(`(func (export "run") (param i32 i32) (result i32)
    (drop (i32.const ${n}))
    (call $ok (local.get 0) (local.get 1)))`)
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-loader-'))
  loader = newLoader()
})

afterAll(async () => {
  await loader.close()
  await rm(dataDir, { recursive: true, force: true })
})

describe('bytes', () => {
  it('refuses a core module', async () => {
    const core = await compileWat('(module (func (export "f")))')
    expect((await refusal(loader.load(core))).code).toBe('invalid_component')
  })

  it.each([
    ['empty', new Uint8Array()],
    ['text', new TextEncoder().encode('#!/bin/sh\nrm -rf /\n')],
    ['magic only', new Uint8Array([0, 0x61, 0x73, 0x6d])],
    ['unknown layer', new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 0x07, 0])],
  ])('refuses garbage (%s)', async (_name, bytes) => {
    expect((await refusal(loader.load(bytes))).code).toBe('invalid_component')
  })

  it('refuses a truncated component', async () => {
    const good = await guestFile('echo')
    const cut = good.slice(0, Math.floor(good.length / 2))
    expect((await refusal(loader.load(cut))).code).toBe('invalid_component')
  })

  it('refuses bytes over the cap before parsing them', async () => {
    const small = newLoader({ maxComponentBytes: 100 })
    try {
      expect((await refusal(small.load(await guestFile('echo')))).code).toBe('payload_too_large')
    } finally {
      await small.close()
    }
  })
})

describe('imports', () => {
  it.each(['wasi:filesystem/preopens@0.2.0', 'wasi:sockets/tcp@0.2.0', 'acme:unknown/thing@1.0.0'])(
    'refuses %s, naming it',
    async (name) => {
      const error = await refusal(loader.load(await compileWat(importing(name))))
      expect(error.code).toBe('unsupported_import')
      expect(error.message).toContain(name)
    },
  )

  it('accepts the baseline and reports the declared capabilities', async () => {
    const app = await loader.load(await guestFile('echo'))
    expect(app.imports).toEqual(['warden:platform/log'])
    expect(app.kind).toBe('action')
    expect(app.digest).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(app.wit).toContain('import warden:platform/log@0.1.0;')
  })
})

describe('cache', () => {
  it('serves a second load of the same build from disk, without transpiling', async () => {
    const bytes = await compileWat(action(1))
    const first = await loader.load(bytes)
    expect(first.cached).toBe(false)
    const entries = await readdir(join(dataDir, 'cache', 'components'))
    expect(entries.some((e) => e.startsWith(first.digest.slice('sha256:'.length)))).toBe(true)
    // A new loader is a restarted host: it reads the cache.
    const restarted = newLoader()
    try {
      const second = await restarted.load(bytes)
      expect(second.cached).toBe(true)
      expect(second.digest).toBe(first.digest)
      expect(second.sandbox.key).toBe(first.sandbox.key)
    } finally {
      await restarted.close()
    }
  })

  it('keeps separate entries for separate host ceilings', async () => {
    const bytes = await guestFile('echo')
    const other = newLoader({ maxMemoryPages: 2048 })
    try {
      const a = await loader.load(bytes)
      const b = await other.load(bytes)
      expect(a.sandbox.key).not.toBe(b.sandbox.key)
    } finally {
      await other.close()
    }
  })
})

describe('budget', () => {
  it('fails with invalid_component when transpilation passes its deadline, and recovers', async () => {
    const strict = newLoader({ budget: { timeoutMs: 1, maxHeapMb: 512 } })
    try {
      const error = await refusal(strict.load(await compileWat(action(2))))
      expect(error.code).toBe('invalid_component')
    } finally {
      await strict.close()
    }
    // The shared loader is unaffected.
    expect((await loader.load(await guestFile('echo'))).kind).toBe('action')
  })

  it('answers the same refused bytes at once, without a transpile worker (outside attack)', async () => {
    const strict = newLoader({ budget: { timeoutMs: 1, maxHeapMb: 512 } })
    try {
      const bytes = await compileWat(action(3))
      expect((await refusal(strict.load(bytes))).code).toBe('invalid_component')
      const started = strict.workersStarted
      expect((await refusal(strict.load(bytes))).code).toBe('invalid_component')
      expect(strict.workersStarted).toBe(started)
    } finally {
      await strict.close()
    }
  })
})
