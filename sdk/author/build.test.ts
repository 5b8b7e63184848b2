/**
 * The build's generated world, types and bundle, without componentize-js (the examples' tests
 * build real components): a capability the manifest does not list is absent from the world,
 * a type error in `warden build`, and a bundle error even with the type-check off.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WardenError } from '../../runtime/index.js'
import { bundleApp, generatedPaths, typecheckApp, writeGenerated } from './build.js'
import { apiRegions, appModuleSource, worldWit } from './generate.js'
import { parseManifest } from './manifest.js'
import { scaffoldApp } from './scaffold.js'

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-build-test-'))
  await scaffoldApp({ dir: join(dir, 'app'), kind: 'action', wardenPackage: '/nowhere' })
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const manifestOf = (capabilities: string[], kind = 'action') =>
  parseManifest({ name: 'app', kind, owner: 'me', purpose: 'tests', capabilities })

const fails = async (promise: Promise<unknown>) => {
  try {
    await promise
  } catch (error) {
    return error as WardenError
  }
  throw new Error('expected a failure')
}

describe('the generated world', () => {
  it('imports exactly the listed capabilities', () => {
    const wit = worldWit(manifestOf(['log', 'http']))
    expect(wit.match(/import [^;]+;/g)).toEqual([
      'import warden:platform/http@0.1.0;',
      'import warden:platform/log@0.1.0;',
    ])
    expect(wit).toContain('export run: func(input: string) -> result<string, string>;')
    expect(worldWit(manifestOf([]))).not.toContain('import')
    expect(worldWit(manifestOf(['data'], 'micro-app'))).toContain(
      'export warden:platform/handler@0.1.0;',
    )
  })

  it('exports only the listed capabilities from warden:app', () => {
    const lib = { core: '/g/core.ts', capabilities: '/g/capabilities.ts', entry: '/g/entry.ts' }
    const source = appModuleSource(manifestOf(['secrets']), lib)
    expect(source).toContain("from 'warden:platform/secrets@0.1.0'")
    expect(source).not.toMatch(/warden:platform\/(http|data|log)/)
  })

  it('finds every region of the guest API', async () => {
    const api = await readFile(new URL('../guest/api.ts', import.meta.url), 'utf8')
    expect(Object.keys(apiRegions(api)).sort()).toEqual([
      'common',
      'data',
      'http',
      'log',
      'secrets',
    ])
  })
})

describe('the type-check', () => {
  it('passes the scaffolded app', async () => {
    await typecheckApp(join(dir, 'app'))
  })

  it('refuses a capability warden.json does not list, naming it', async () => {
    const app = join(dir, 'app')
    const source = join(app, 'src', 'index.ts')
    const original = await readFile(source, 'utf8')
    await writeFile(
      source,
      `${original.replace("import { log } from 'warden:app'", "import { log, secrets } from 'warden:app'")}\nexport const leak = () => secrets.reveal('k')\n`,
    )
    try {
      const error = await fails(typecheckApp(app))
      expect(error.code).toBe('invalid_component')
      expect(error.message).toMatch(/has no exported member 'secrets'/)
    } finally {
      await writeFile(source, original)
    }
  })

  it('refuses an entry without the export the world needs', async () => {
    const app = join(dir, 'app')
    const source = join(app, 'src', 'index.ts')
    const original = await readFile(source, 'utf8')
    await writeFile(source, original.replace('export function run', 'function run'))
    try {
      const error = await fails(typecheckApp(app))
      expect(error.code).toBe('invalid_component')
      expect(error.message).toMatch(/run/)
    } finally {
      await writeFile(source, original)
    }
  })
})

describe('the bundle', () => {
  it('imports only warden:platform interfaces the manifest lists', async () => {
    const app = join(dir, 'app')
    const manifest = manifestOf(['log'])
    await writeGenerated(app, manifest)
    const bundle = await bundleApp(app, manifest)
    const imports = [...bundle.matchAll(/from\s*"([^"]+)"/g)].map((m) => m[1])
    expect(imports).toEqual(['warden:platform/log@0.1.0'])
  })

  it('refuses an unlisted capability even with the type-check off', async () => {
    const app = join(dir, 'app')
    const source = join(app, 'src', 'index.ts')
    const original = await readFile(source, 'utf8')
    await writeFile(source, `import { http } from 'warden:app'\nexport const run = () => http\n`)
    try {
      const error = await fails(bundleApp(app, manifestOf(['log'])))
      expect(error.code).toBe('invalid_component')
      expect(error.message).toMatch(/No matching export .* "http"/)
    } finally {
      await writeFile(source, original)
    }
  })

  it('writes its generated files under .warden/', async () => {
    const paths = generatedPaths(join(dir, 'app'))
    expect(await readFile(paths.declarations, 'utf8')).toContain("declare module 'warden:app'")
    expect(await readFile(join(paths.wit, 'world.wit'), 'utf8')).toContain('package warden:app;')
  })
})
