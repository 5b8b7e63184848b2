/**
 * `warden build` as a function: manifest → generated WIT world and types → type-check (tsc) →
 * bundle (esbuild) → component (componentize-js, cached by input hash) → validated by Warden's
 * own loader → size, digest, declared capabilities and the risk tier the control plane will
 * compute (its own `assessRisk`).
 *
 * The cache key is the SHA-256 of everything that decides the component's bytes: the bundled
 * JavaScript (so every imported file counts), the world, the platform WIT, the componentize-js
 * version and its features. An unchanged app is a cache hit: no componentize (~25 s), and no
 * second validation either (its result is kept beside the bytes).
 *
 * componentize-js runs with every WASI feature off except the platform's baseline: `random`
 * and `clocks` stay (Math.random, crypto.getRandomValues, Date.now); `stdio` goes (it makes
 * the engine import wasi:filesystem, which Warden refuses), and `http` and `fetch-event` go
 * (egress is the `http` capability only).
 */
import { execFile } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { assessRisk } from '../../control-plane/index.js'
import type { RiskAssessment } from '../../control-plane/index.js'
import { createRuntime, DEFAULT_TRANSPILE_BUDGET, WardenError } from '../../runtime/index.js'
import {
  APP_MODULE,
  appDeclarations,
  appModuleSource,
  contractSource,
  entrySource,
  WORLD_NAME,
  worldWit,
} from './generate.js'
import type { GuestLibrary } from './generate.js'
import { declaredInterfaces, readManifest } from './manifest.js'
import type { Manifest } from './manifest.js'

/** WASI features of the engine that are off: all but the platform's baseline. */
export const DISABLED_FEATURES = ['stdio', 'http', 'fetch-event'] as const

/** Bumped when the SDK changes what it generates in a way the other inputs do not show. */
const BUILD_FORMAT = '1'

/** One step of a build, for progress output. */
export type BuildStep =
  | 'generate'
  | 'typecheck'
  | 'bundle'
  | 'cache-hit'
  | 'componentize'
  | 'validate'
  | 'done'

/** Options of {@link buildApp}. */
export interface BuildOptions {
  /** The app folder (holds warden.json). */
  dir: string
  /** Where `app.wasm` and `app.json` go. Default `<dir>/.warden/build`. */
  outDir?: string
  /** Built components by input hash. Default `<dir>/.warden/cache`. */
  cacheDir?: string
  /** Run the type-check. Default true. */
  typecheck?: boolean
  /** Told when a step starts. */
  onStep?: (step: BuildStep, detail?: string) => void
}

/** What a build produced. */
export interface BuildResult {
  manifest: Manifest
  /** The component file. */
  wasmPath: string
  bytes: Uint8Array
  sizeBytes: number
  /** `sha256:<hex>`: what the registry and tokens name the build by. */
  digest: string
  /** The declared capabilities (platform imports, unversioned), as Warden's loader read them. */
  capabilities: string[]
  /** Every import, WASI baseline included. */
  imports: string[]
  /** The tier the control plane computes at upload (data: `high` if a collection has PII). */
  risk: RiskAssessment
  /** True when the component came from the cache. */
  cached: boolean
  /** The cache key. */
  inputHash: string
  durationMs: number
}

/** Where the generated files of an app live, under `<dir>/.warden/`. */
export function generatedPaths(dir: string) {
  const root = join(dir, '.warden')
  return {
    root,
    wit: join(root, 'wit'),
    types: join(root, 'types'),
    declarations: join(root, 'types', 'warden-app.d.ts'),
    contract: join(root, 'types', 'contract.ts'),
    tsconfig: join(root, 'tsconfig.json'),
    build: join(root, 'build'),
    cache: join(root, 'cache'),
    runtime: join(root, 'runtime'),
  }
}

const here = dirname(fileURLToPath(import.meta.url))
const packageRoot = resolve(here, here.split(sep).includes('dist') ? '../../..' : '../..')

/**
 * The guest library's modules. Always the TypeScript sources (the package ships them; esbuild
 * bundles them), also when the CLI runs from dist/: `api.ts` is read as text for the types.
 */
const GUEST_DIR = join(packageRoot, 'sdk', 'guest')

function guestLibrary(): GuestLibrary {
  return {
    core: join(GUEST_DIR, 'core.ts'),
    capabilities: join(GUEST_DIR, 'capabilities.ts'),
    entry: join(GUEST_DIR, 'entry.ts'),
  }
}

/** The TypeScript options of the type-check (also what `warden init` writes for editors). */
export const GUEST_COMPILER_OPTIONS = {
  strict: true,
  noEmit: true,
  target: 'ES2022',
  module: 'ESNext',
  moduleResolution: 'Bundler',
  lib: ['ES2022'],
  types: [],
  skipLibCheck: true,
  allowImportingTsExtensions: true,
  verbatimModuleSyntax: true,
} as const

/**
 * Write what the build generates from the manifest: the WIT world (and the platform WIT beside
 * it), the declaration of `warden:app`, the contract check and the type-check's tsconfig.
 * `warden init` calls it too, so an editor sees the types before the first build.
 */
export async function writeGenerated(dir: string, manifest: Manifest): Promise<void> {
  const paths = generatedPaths(dir)
  await mkdir(join(paths.wit, 'deps', 'platform'), { recursive: true })
  await mkdir(paths.types, { recursive: true })
  const platform = await readFile(join(packageRoot, 'wit', 'platform.wit'), 'utf8')
  let entryFromTypes = relative(paths.types, join(dir, manifest.entry)).split(sep).join('/')
  if (!entryFromTypes.startsWith('.')) {
    entryFromTypes = `./${entryFromTypes}`
  }
  await Promise.all([
    writeFile(join(paths.wit, 'world.wit'), worldWit(manifest)),
    writeFile(join(paths.wit, 'deps', 'platform', 'platform.wit'), platform),
    writeFile(
      paths.declarations,
      appDeclarations(manifest, await readFile(join(GUEST_DIR, 'api.ts'), 'utf8')),
    ),
    writeFile(paths.contract, contractSource(manifest, entryFromTypes)),
    writeFile(
      paths.tsconfig,
      `${JSON.stringify(
        {
          compilerOptions: GUEST_COMPILER_OPTIONS,
          files: ['types/warden-app.d.ts', 'types/contract.ts'],
        },
        null,
        2,
      )}\n`,
    ),
  ])
}

const run = promisify(execFile)

/**
 * Type-check the app: its entry and everything it imports, against this app's `warden:app`.
 * `invalid_component` with the compiler's diagnostics when it fails.
 */
export async function typecheckApp(dir: string): Promise<void> {
  const require = createRequire(import.meta.url)
  const tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc')
  try {
    await run(process.execPath, [tsc, '-p', generatedPaths(dir).tsconfig, '--pretty', 'false'], {
      cwd: dir,
      maxBuffer: 16 * 1024 * 1024,
    })
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    const output = `${stdout ?? ''}${stderr ?? ''}`.trim()
    if (!output) {
      throw error
    }
    // Paths relative to the app, as an author reads them.
    const lines = output
      .split('\n')
      .map((line) => line.replace(/^(?:\.\.\/)+|^\.warden\//, ''))
      .slice(0, 40)
    throw new WardenError('invalid_component', `type errors:\n${lines.join('\n')}`)
  }
}

/** Bundle the app into one ES module whose only imports are `warden:platform/*`. */
export async function bundleApp(dir: string, manifest: Manifest): Promise<string> {
  const { build } = await import('esbuild')
  const lib = guestLibrary()
  const entryPath = resolve(dir, manifest.entry)
  let result: Awaited<ReturnType<typeof build>>
  try {
    result = await build({
      entryPoints: ['warden:entry'],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      mainFields: ['module', 'main'],
      absWorkingDir: dir,
      logLevel: 'silent',
      legalComments: 'none',
      plugins: [
        {
          name: 'warden',
          setup(b) {
            b.onResolve({ filter: /^warden:platform\// }, (args) => ({
              path: args.path,
              external: true,
            }))
            b.onResolve({ filter: /^warden:(app|entry)$/ }, (args) => ({
              path: args.path,
              namespace: 'warden',
            }))
            b.onLoad({ filter: /.*/, namespace: 'warden' }, (args) => ({
              contents:
                args.path === APP_MODULE
                  ? appModuleSource(manifest, lib)
                  : entrySource(manifest, entryPath, lib),
              loader: 'js',
              resolveDir: dir,
            }))
          },
        },
      ],
    })
  } catch (error) {
    const errors = (
      error as { errors?: { text: string; location?: { file: string; line: number } }[] }
    ).errors
    if (!errors) {
      throw error
    }
    const lines = errors.slice(0, 20).map((e) => {
      const at = e.location
        ? `${relative(dir, e.location.file) || e.location.file}:${e.location.line}: `
        : ''
      return `${at}${e.text}`
    })
    throw new WardenError('invalid_component', `bundle failed:\n${lines.join('\n')}`)
  }
  return result.outputFiles![0]!.text
}

function componentizeVersion(): string {
  const main = fileURLToPath(import.meta.resolve('@bytecodealliance/componentize-js'))
  // NB: the package's `exports` hides package.json; it sits above src/.
  const pkg = readFileSync(join(dirname(main), '..', 'package.json'), 'utf8')
  return (JSON.parse(pkg) as { version: string }).version
}

/** The cache key of a bundle and world. */
export async function inputHash(bundle: string, world: string): Promise<string> {
  const platform = await readFile(join(packageRoot, 'wit', 'platform.wit'), 'utf8')
  const key = createHash('sha256')
  for (const part of [
    BUILD_FORMAT,
    bundle,
    world,
    platform,
    componentizeVersion(),
    DISABLED_FEATURES.join(','),
  ]) {
    // Length-prefixed, so moving text from one part to the next changes the key.
    key.update(`${part.length}:`).update(part)
  }
  return key.digest('hex')
}

/** What the cache keeps beside the bytes: the loader's answer, so a hit skips validation. */
interface Validated {
  digest: string
  kind: string
  imports: string[]
}

const inFlight = new Map<string, Promise<Uint8Array>>()

/**
 * Build the app in `options.dir`. Throws `invalid_request` for a bad manifest and
 * `invalid_component` for type errors, bundle errors, or a component Warden refuses.
 *
 * @example
 * const built = await buildApp({ dir: 'examples/report-builder' })
 * built.digest // 'sha256:…'
 */
export async function buildApp(options: BuildOptions): Promise<BuildResult> {
  const started = performance.now()
  const dir = resolve(options.dir)
  const step = options.onStep ?? (() => {})
  const paths = generatedPaths(dir)
  const outDir = options.outDir ?? paths.build
  const cacheDir = options.cacheDir ?? paths.cache

  step('generate')
  const manifest = await readManifest(dir)
  await writeGenerated(dir, manifest)
  if (options.typecheck !== false) {
    step('typecheck')
    await typecheckApp(dir)
  }
  step('bundle')
  const bundle = await bundleApp(dir, manifest)
  const world = worldWit(manifest)
  const hash = await inputHash(bundle, world)
  const cachedWasm = join(cacheDir, `${hash}.wasm`)
  const cachedFacts = join(cacheDir, `${hash}.json`)

  let bytes: Uint8Array
  let cached = true
  try {
    bytes = new Uint8Array(await readFile(cachedWasm))
    step('cache-hit', hash.slice(0, 12))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw error
    }
    cached = false
    step('componentize')
    let pending = inFlight.get(hash)
    if (!pending) {
      pending = componentizeBundle(bundle, paths.wit, cacheDir, cachedWasm)
      inFlight.set(hash, pending)
      pending.finally(() => inFlight.delete(hash)).catch(() => {})
    }
    bytes = await pending
  }

  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`
  let facts: Validated | undefined
  try {
    facts = JSON.parse(await readFile(cachedFacts, 'utf8')) as Validated
    if (facts.digest !== digest) {
      facts = undefined
    }
  } catch {
    facts = undefined
  }
  if (!facts) {
    step('validate')
    facts = await validate(bytes, paths.runtime)
    await writeAtomic(cachedFacts, JSON.stringify(facts))
  }
  checkAgainstManifest(manifest, facts)

  await mkdir(outDir, { recursive: true })
  const wasmPath = join(outDir, 'app.wasm')
  // `warden:platform/types` only carries types: never granted, never a capability.
  const capabilities = facts.imports.filter(
    (i) => i.startsWith('warden:platform/') && i !== 'warden:platform/types',
  )
  const risk = assessRisk(facts.imports, [])
  await writeAtomic(wasmPath, bytes)
  await writeAtomic(
    join(outDir, 'app.json'),
    `${JSON.stringify(
      {
        name: manifest.name,
        kind: manifest.kind,
        digest,
        sizeBytes: bytes.length,
        capabilities,
        riskTier: risk.tier,
        inputHash: hash,
      },
      null,
      2,
    )}\n`,
  )
  step('done')
  return {
    manifest,
    wasmPath,
    bytes,
    sizeBytes: bytes.length,
    digest,
    capabilities,
    imports: facts.imports,
    risk,
    cached,
    inputHash: hash,
    durationMs: Math.round(performance.now() - started),
  }
}

async function componentizeBundle(
  bundle: string,
  witDir: string,
  cacheDir: string,
  cachedWasm: string,
): Promise<Uint8Array> {
  const work = await mkdtemp(join(tmpdir(), 'warden-build-'))
  try {
    const source = join(work, 'app.js')
    await writeFile(source, bundle)
    // Imported lazily: a cache hit never loads the engine.
    const { componentize } = await import('@bytecodealliance/componentize-js')
    let component: Uint8Array
    try {
      ;({ component } = await componentize({
        sourcePath: source,
        witPath: witDir,
        worldName: WORLD_NAME,
        disableFeatures: [...DISABLED_FEATURES],
      }))
    } catch (error) {
      throw new WardenError(
        'invalid_component',
        `componentize-js failed: ${String((error as Error).message ?? error).slice(0, 2000)}`,
        { cause: error },
      )
    }
    await mkdir(cacheDir, { recursive: true })
    await writeAtomic(cachedWasm, component)
    return component
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

/** Load the bytes with Warden's own loader (the checks an upload gets) and keep its answer. */
async function validate(bytes: Uint8Array, dataDir: string): Promise<Validated> {
  // A generous transpile deadline: a build machine may be busy, and this is not a request path.
  const runtime = await createRuntime({
    dataDir,
    poolSize: 1,
    transpileBudget: { ...DEFAULT_TRANSPILE_BUDGET, timeoutMs: 300_000 },
  })
  try {
    const app = await runtime.load(bytes, { uploader: 'warden-build' })
    return { digest: app.digest, kind: app.kind, imports: [...app.imports] }
  } finally {
    await runtime.close()
  }
}

/** The component declares exactly the manifest's capabilities and is of its kind. */
function checkAgainstManifest(manifest: Manifest, facts: Validated): void {
  const declared = facts.imports.filter((i) => i.startsWith('warden:platform/')).sort()
  const wanted = declaredInterfaces(manifest).sort()
  const extra = declared.filter((i) => !wanted.includes(i) && i !== 'warden:platform/types')
  if (extra.length > 0) {
    throw new WardenError(
      'invalid_component',
      `the component imports ${extra.join(', ')}, which warden.json does not list`,
    )
  }
  if (facts.kind !== manifest.kind) {
    throw new WardenError(
      'invalid_component',
      `the component is a ${facts.kind}, warden.json says ${manifest.kind}`,
    )
  }
}

async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const partial = `${file}.${process.pid}.${randomUUID()}.tmp`
  await writeFile(partial, data)
  await rename(partial, file)
}
