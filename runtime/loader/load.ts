/**
 * Loading a component: size and magic checks, digest, world and import policy, transpile and
 * instrument (off the main thread, budgeted, cached on disk), compile.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { CapabilityDescriptor } from '../../host-capabilities/types.js'
import { WardenError } from '../errors.js'
import { COST_MODEL_VERSION } from '../limits/instrument.js'
import { readCacheEntry, writeCacheEntry } from '../transpile-cache/cache.js'
import type { CacheEntry } from '../transpile-cache/cache.js'
import type { LoadedComponentMessage } from '../sandbox/protocol.js'
import { checkComponentStructure } from './component-binary.js'
import { checkComponentBytes, componentDigest, DEFAULT_MAX_COMPONENT_BYTES } from './component-bytes.js'
import { Transpiler } from './transpile.js'
import type { TranspileBudget } from './transpile.js'
import { glueFunctionBody } from './glue.js'
import { checkImports, parseWorld } from './world.js'
import type { ComponentWorld } from './world.js'

/** The transpiler, pinned: see README "Why jco 1.11.2". Part of every cache key. */
export const TRANSPILER = `jco@${packageVersion('@bytecodealliance/jco')}`

function packageVersion(name: string): string {
  // NB: jco's `exports` hides its package.json, so find it from the entry point.
  const entry = createRequire(import.meta.url).resolve(name)
  const root = entry.slice(0, entry.lastIndexOf(`/node_modules/${name}/`) + `/node_modules/${name}`.length)
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version
}

/** What a world exports decides how Warden calls it. */
export type ComponentKind = 'action' | 'micro-app' | 'other'

/** A component ready to run. */
export interface LoadedComponent {
  digest: string
  kind: ComponentKind
  /** The component's world as WIT text (jco `componentWit`). */
  wit: string
  world: ComponentWorld
  /** Imported interfaces, unversioned, as jco keys them. These are the declared capabilities. */
  imports: readonly string[]
  /** Whether this load was served from the on-disk cache. */
  cached: boolean
  /** What the sandbox pool needs. */
  sandbox: LoadedComponentMessage
}

/** Options of {@link ComponentLoader}. */
export interface ComponentLoaderOptions {
  /** Root of the on-disk cache. */
  dataDir: string
  /** Interfaces this host provides; any other import is refused. */
  capabilities: readonly CapabilityDescriptor[]
  /** Memory ceiling written into every module, in 64 KiB pages. */
  maxMemoryPages: number
  /** Table ceiling written into every module. Default 1,000,000. */
  maxTableElements?: number
  /** Upload cap in bytes. Default 64 MiB. */
  maxComponentBytes?: number
  /** Transpile budget. */
  budget?: TranspileBudget
  /**
   * Keep each instrumented core module's bytes in `sandbox.moduleBytes`, for a sandbox in
   * another process (modules cannot cross one). Default false: the thread pool would copy them
   * to every worker for nothing.
   */
  keepModuleBytes?: boolean
}

/**
 * Loads components, memoising by digest in memory and on disk.
 *
 * @example
 * const loader = new ComponentLoader({ dataDir, capabilities: DEFAULT_CAPABILITIES, maxMemoryPages: 16384 })
 * const app = await loader.load(bytes)
 */
export class ComponentLoader {
  readonly #options: ComponentLoaderOptions
  readonly #variant: string
  readonly #memo = new Map<string, Promise<LoadedComponent>>()
  readonly #transpiler: Transpiler

  constructor(options: ComponentLoaderOptions) {
    this.#options = options
    this.#transpiler = new Transpiler(options.budget)
    this.#variant = createHash('sha256')
      .update(
        JSON.stringify([
          TRANSPILER,
          COST_MODEL_VERSION,
          options.maxMemoryPages,
          options.maxTableElements ?? 1_000_000,
        ]),
      )
      .digest('hex')
      .slice(0, 16)
  }

  /** Load bytes. Throws a WardenError with a stable code on any refusal. */
  async load(bytes: Uint8Array): Promise<LoadedComponent> {
    checkComponentBytes(bytes, this.#options.maxComponentBytes ?? DEFAULT_MAX_COMPONENT_BYTES)
    // Every name jco would paste into the glue, and the nesting and counts jco's time grows
    // with, are checked before anything else reads the bytes (issue 6).
    checkComponentStructure(bytes)
    const digest = componentDigest(bytes)
    let pending = this.#memo.get(digest)
    if (!pending) {
      pending = this.#loadUncached(bytes, digest)
      this.#memo.set(digest, pending)
      pending.catch(() => this.#memo.delete(digest))
    }
    return pending
  }

  /** Stop the transpile worker. */
  close(): Promise<void> {
    return this.#transpiler.close()
  }

  /** Forget a component (after decommission). The disk cache stays until pruned. */
  forget(digest: string): void {
    this.#memo.delete(digest)
  }

  async #loadUncached(bytes: Uint8Array, digest: string): Promise<LoadedComponent> {
    const { dataDir } = this.#options
    let entry = await readCacheEntry(dataDir, digest, this.#variant)
    const cached = entry !== undefined
    if (!entry) {
      entry = await this.#transpile(bytes, digest)
    }
    const world = parseWorld(entry.manifest.wit)
    const imports = checkImports(world, this.#options.capabilities)
    const modules: Record<string, WebAssembly.Module> = {}
    for (const m of entry.modules) {
      try {
        modules[m.name] = await WebAssembly.compile(m.bytes)
      } catch (error) {
        throw new WardenError('invalid_component', `core module ${m.name} does not compile`, {
          cause: error,
        })
      }
    }
    return {
      digest,
      kind: kindOf(world),
      wit: entry.manifest.wit,
      world,
      imports,
      cached,
      sandbox: {
        key: `${digest}/${this.#variant}`,
        glueSource: glueFunctionBody(entry.glue),
        glueFile: entry.gluePath,
        modules,
        ...(this.#options.keepModuleBytes
          ? { moduleBytes: Object.fromEntries(entry.modules.map((m) => [m.name, m.bytes])) }
          : {}),
        minMemoryPages: entry.modules.reduce((sum, m) => sum + m.minMemoryPages, 0),
      },
    }
  }

  async #transpile(bytes: Uint8Array, digest: string): Promise<CacheEntry> {
    const out = await this.#transpiler.transpile({
      bytes,
      maxMemoryPages: this.#options.maxMemoryPages,
      maxTableElements: this.#options.maxTableElements ?? 1_000_000,
    })
    // Check the world before anything reaches the disk or a worker.
    checkImports(parseWorld(out.wit), this.#options.capabilities)
    glueFunctionBody(out.glue)
    return writeCacheEntry(
      this.#options.dataDir,
      {
        digest,
        variant: this.#variant,
        wit: out.wit,
        modules: out.modules.map(({ name, minMemoryPages }) => ({ name, minMemoryPages })),
      },
      out.glue,
      out.modules,
    )
  }
}

function kindOf(world: ComponentWorld): ComponentKind {
  if (world.exports.some((e) => e.name === 'run' && e.kind === 'function')) {
    return 'action'
  }
  if (world.exports.some((e) => e.name.startsWith('warden:platform/handler@'))) {
    return 'micro-app'
  }
  return 'other'
}
