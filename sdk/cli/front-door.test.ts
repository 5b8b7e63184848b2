import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { packageRoot } from './paths.js'

// Our own sources, not guest input: a regex over the module specifiers is enough here.
const SPECIFIER = /\bfrom\s+'([^']+)'|\bimport\s*\(\s*'([^']+)'\s*\)/g
const FRONT_DOOR = '../../runtime/index.js'

/** Every module specifier of `source`: `import … from`, `export … from` and `import()`. */
function specifiers(source: string): string[] {
  return [...source.matchAll(SPECIFIER)].map((m) => m[1] ?? m[2] ?? '')
}

describe('the runtime front door (STYLE.md §13)', () => {
  it('is the only runtime module the CLI imports', async () => {
    const dir = join(packageRoot(), 'sdk', 'cli')
    const files = (await readdir(dir)).filter((f) => f.endsWith('.ts'))
    expect(files.length).toBeGreaterThan(0)
    const deep: string[] = []
    for (const file of files) {
      const source = await readFile(join(dir, file), 'utf8')
      for (const spec of specifiers(source)) {
        if (/(^|\/)runtime(\/|$)/.test(spec) && spec !== FRONT_DOOR) {
          deep.push(`${file}: ${spec}`)
        }
      }
    }
    expect(deep).toEqual([])
  })

  it('only re-exports', async () => {
    const source = await readFile(join(packageRoot(), 'runtime', 'index.ts'), 'utf8')
    const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
    const statements = code
      .split(/(?<=')\s*\n/)
      .map((s) => s.trim())
      .filter((s) => s !== '')
    expect(statements.length).toBeGreaterThan(0)
    for (const statement of statements) {
      expect(statement).toMatch(/^export (type )?(\{[^}]*\}|\*( as \w+)?) from '\.\/[^']+\.js'$/)
    }
  })

  it('catches a deep import', () => {
    // Quotes spliced in, so that this file's own text holds no deep specifier.
    const q = "'"
    const source = [
      `import { WardenError } from ${q}../../runtime/errors.js${q}`,
      `import type { Warden } from ${q}${FRONT_DOOR}${q}`,
      `const m = await import(${q}../../runtime/loader/load.js${q})`,
    ].join('\n')
    expect(specifiers(source)).toEqual([
      '../../runtime/errors.js',
      FRONT_DOOR,
      '../../runtime/loader/load.js',
    ])
  })
})
