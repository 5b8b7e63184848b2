/**
 * The SDK's module boundaries (docs/modules.md): the guest library imports nothing but itself
 * (it runs inside the component); the toolchain and the test helpers reach the runtime and the
 * control plane through their front doors only. Our own sources: a regex is enough here.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '../..')
const IMPORT = /(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/g

/** Every import of the non-test sources under `dir`, as paths from the root (packages as is). */
function importsOf(dir: string): { file: string; to: string }[] {
  const files = readdirSync(join(ROOT, dir)).filter(
    (f) => f.endsWith('.ts') && !f.endsWith('.test.ts'),
  )
  expect(files.length).toBeGreaterThan(0)
  return files.flatMap((f) =>
    [...readFileSync(join(ROOT, dir, f), 'utf8').matchAll(IMPORT)].map((m) => ({
      file: `${dir}/${f}`,
      to: m[1]!.startsWith('.') ? relative(ROOT, resolve(ROOT, dir, m[1]!)) : m[1]!,
    })),
  )
}

describe('SDK module boundaries', () => {
  it('sdk/guest/ imports only itself: it is bundled into the component', () => {
    for (const { file, to } of importsOf('sdk/guest')) {
      expect({ file, to }).toEqual({ file, to: expect.stringMatching(/^sdk\/guest\/[a-z-]+\.js$/) })
    }
  })

  it('sdk/author/ reaches the runtime and control plane by their front doors', () => {
    // `warden:app`, `vitest` and `warden/testing` are in the scaffold's templates (text).
    for (const { file, to } of importsOf('sdk/author')) {
      expect({ file, to }).toEqual({
        file,
        to: expect.stringMatching(
          /^(node:.*|zod|esbuild|warden:app|vitest|warden\/testing|@bytecodealliance\/componentize-js|sdk\/author\/[a-z-]+\.js|runtime\/index\.js|control-plane\/index\.js)$/,
        ),
      })
    }
  })

  it('sdk/testing/ uses the toolchain and the runtime front door', () => {
    for (const { file, to } of importsOf('sdk/testing')) {
      expect({ file, to }).toEqual({
        file,
        to: expect.stringMatching(/^(node:.*|sdk\/author\/[a-z-]+\.js|runtime\/index\.js)$/),
      })
    }
  })
})
