/**
 * The module boundary (issue 8, docs/modules.md): `core/` is a leaf that imports nothing of
 * Warden's; capabilities depend on `core/` and each other, never on the runtime or the SDK.
 * Our own sources are read here (not guest input), so a regex over import lines is enough.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '..')
const IMPORT = /(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/g

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name))
}

function importsOf(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => m[1]!)
}

function target(file: string, specifier: string): string {
  return relative(ROOT, resolve(file, '..', specifier))
}

/** Every relative import of the sources under `dir` resolves to a path matching `allowed`. */
function expectImportsWithin(dir: string, allowed: RegExp): void {
  const files = sources(dir)
  expect(files.length).toBeGreaterThan(10)
  for (const file of files) {
    for (const spec of importsOf(file).filter((s) => s.startsWith('.'))) {
      const to = target(file, spec)
      expect({ file: relative(ROOT, file), to }).toEqual({
        file: relative(ROOT, file),
        to: expect.stringMatching(allowed),
      })
    }
  }
}

describe('module boundaries', () => {
  it('core/ imports nothing of ours', () => {
    for (const file of sources('core')) {
      for (const spec of importsOf(file).filter((s) => s.startsWith('.'))) {
        expect({ file: relative(ROOT, file), spec }).toEqual({
          file: relative(ROOT, file),
          spec: expect.stringMatching(/^\.\/[^/]+$/),
        })
      }
    }
  })

  it('host-capabilities/ never imports the runtime or the SDK', () => {
    expectImportsWithin('host-capabilities', /^(core|host-capabilities)\//)
  })

  it('control-plane/ reaches the runtime through its front door only', () => {
    expectImportsWithin('control-plane', /^(control-plane\/|runtime\/index\.js$)/)
  })

  it('the import scan sees imports at all', () => {
    expect(importsOf(join(ROOT, 'host-capabilities', 'types.ts')).length).toBeGreaterThan(0)
  })
})
