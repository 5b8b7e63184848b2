/**
 * Loading a component: size and magic checks, structure and names, the world it implements and
 * the types of its imports against `wit/`, digest, transpile and instrument (in a budgeted pool
 * of child processes, cached on disk), compile; kept in memory up to a size cap.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { CapabilityDescriptor } from '../../host-capabilities/types.js'
import { WardenError } from '../errors.js'
import { COST_MODEL_VERSION } from '../limits/instrument.js'
import { readCacheEntry, writeCacheEntry } from '../transpile-cache/cache.js'
import type { CacheEntry, ModuleManifest } from '../transpile-cache/cache.js'
import type { LoadedComponentMessage, ProvidedMemory } from '../sandbox/protocol.js'
import { checkComponentStructure } from './component-binary.js'
import {
  checkComponentBytes,
  componentDigest,
  DEFAULT_MAX_COMPONENT_BYTES,
} from './component-bytes.js'
import { readComponentSurface } from './component-types.js'
import { checkComponentContract } from './contract.js'
import type { ComponentKind } from './contract.js'
import { Transpiler } from './transpile.js'
import type { TranspileBudget } from './transpile.js'
import { glueFunctionBody } from './glue.js'
import { contractsWith } from './wit.js'
import type { Contracts } from './wit-types.js'
import { checkImports, parseWorld } from './world.js'
import type { ComponentWorld } from './world.js'

export type { ComponentKind } from './contract.js'

/** The transpiler, pinned: see README "Why jco 1.11.2". Part of every cache key. */
export const TRANSPILER = `jco@${packageVersion('@bytecodealliance/jco')}`

function packageVersion(name: string): string {
  // NB: jco's `exports` hides its package.json, so find it from the entry point.
  const entry = createRequire(import.meta.url).resolve(name)
  const root = entry.slice(
    0,
    entry.lastIndexOf(`/node_modules/${name}/`) + `/node_modules/${name}`.length,
  )
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string })
    .version
}

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
  /**
   * Cap on a component's instantiation work, in bytes of data, elements and tables over every
   * core instance (see `DEFAULT_MAX_INSTANTIATION_BYTES`). Default 128 MiB.
   */
  maxInstantiationBytes?: number
  /** Transpile budget. Default 20 s and 1 GiB of heap per job. */
  budget?: TranspileBudget
  /** Transpile child processes. Default 2. */
  transpileWorkers?: number
  /**
   * Loaded components kept in memory, in bytes of instrumented modules and glue; the least
   * recently loaded go first (the disk cache keeps them). Default 256 MiB.
   */
  maxMemoBytes?: number
  /**
   * WIT sources of interfaces beyond `wit/` that the capabilities provide (a test capability's
   * `echo.wit`). An interface without one is checked by function names only.
   */
  witSources?: readonly string[]
  /**
   * Keep each instrumented core module's bytes in `sandbox.moduleBytes`, for a sandbox in
   * another process (modules cannot cross one). Default false: the thread pool would copy them
   * to every worker for nothing.
   */
  keepModuleBytes?: boolean
}

/** Default {@link ComponentLoaderOptions.maxMemoBytes}: 256 MiB. */
export const DEFAULT_MAX_MEMO_BYTES = 256 * 1024 * 1024

/** Refusals remembered by digest, oldest dropped first. */
const MAX_REMEMBERED_REFUSALS = 1024
/** How long a refusal is remembered: 10 minutes (a budget refusal may pass on a quiet host). */
const REFUSAL_MEMORY_MS = 10 * 60 * 1000

/** Options of one {@link ComponentLoader.load}. */
export interface LoadOptions {
  /**
   * Whose upload this is: the publisher, or `cli`. Transpile child processes are shared fairly between
   * uploaders. Default `anonymous`.
   */
  uploader?: string
  /**
   * Root of the on-disk transpile cache for this load, instead of the data dir: Warden's own
   * built-in components are prepared once per install (`runtime/agent/build.ts`), not per data
   * dir. Only for components Warden ships, never for uploads.
   */
  cacheDir?: string
}

interface MemoEntry {
  loaded: Promise<LoadedComponent>
  /** Bytes counted against the cap; 0 while loading. */
  size: number
  settled: boolean
}

/**
 * Loads components, memoising by digest in memory (least recently used first out, past a size
 * cap) and on disk.
 *
 * @example
 * const loader = new ComponentLoader({ dataDir, capabilities: DEFAULT_CAPABILITIES, maxMemoryPages: 16384 })
 * const app = await loader.load(bytes)
 */
export class ComponentLoader {
  readonly #options: ComponentLoaderOptions
  readonly #variant: string
  /** In order of last use, oldest first. */
  readonly #memo = new Map<string, MemoEntry>()
  /**
   * Digests refused lately, with the refusal: the same bytes sent again are answered at once
   * instead of holding a transpile child for its whole budget each time.
   */
  readonly #refused = new Map<string, { error: WardenError; until: number }>()
  #memoBytes = 0
  readonly #transpiler: Transpiler
  readonly #contracts: Contracts

  constructor(options: ComponentLoaderOptions) {
    this.#options = options
    this.#contracts = contractsWith(options.witSources ?? [])
    this.#transpiler = new Transpiler({
      ...(options.budget ? { budget: options.budget } : {}),
      ...(options.transpileWorkers ? { workers: options.transpileWorkers } : {}),
    })
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
  async load(bytes: Uint8Array, options: LoadOptions = {}): Promise<LoadedComponent> {
    checkComponentBytes(bytes, this.#options.maxComponentBytes ?? DEFAULT_MAX_COMPONENT_BYTES)
    // Every name jco would paste into the glue, and the nesting and counts jco's time grows
    // with, are checked before anything else reads the bytes (issue 6).
    checkComponentStructure(bytes, { maxInstantiationBytes: this.#options.maxInstantiationBytes })
    // The world it implements and what it imports, with their types, against wit/; for
    // cached builds too, so a contract change applies to them (issue 7).
    const kind = checkComponentContract(
      readComponentSurface(bytes),
      this.#contracts,
      this.#options.capabilities,
    )
    const digest = componentDigest(bytes)
    const refused = this.#refused.get(digest)
    if (refused && refused.until > Date.now()) {
      throw new WardenError(refused.error.code, `${refused.error.message} (refused earlier)`)
    }
    this.#refused.delete(digest)
    const hit = this.#memo.get(digest)
    if (hit) {
      this.#memo.delete(digest)
      this.#memo.set(digest, hit)
      return hit.loaded
    }
    const entry: MemoEntry = { loaded: undefined as never, size: 0, settled: false }
    entry.loaded = this.#loadUncached(
      bytes,
      digest,
      kind,
      options.uploader ?? 'anonymous',
      options.cacheDir ?? this.#options.dataDir,
    ).then(({ component, size }) => {
      this.#settle(digest, entry, size)
      return component
    })
    this.#memo.set(digest, entry)
    entry.loaded.catch((error: unknown) => {
      if (this.#memo.get(digest) === entry) {
        this.#memo.delete(digest)
      }
      if (error instanceof WardenError && error.code !== 'internal') {
        this.#rememberRefusal(digest, error)
      }
    })
    return entry.loaded
  }

  /**
   * The component of `digest` if it is loaded (or loading) in memory, else undefined: a caller
   * that stores builds by digest (the app registry) skips reading and hashing the bytes again.
   */
  loaded(digest: string): Promise<LoadedComponent> | undefined {
    const hit = this.#memo.get(digest)
    if (!hit) {
      return undefined
    }
    this.#memo.delete(digest)
    this.#memo.set(digest, hit)
    return hit.loaded
  }

  #rememberRefusal(digest: string, error: WardenError): void {
    if (this.#refused.size >= MAX_REMEMBERED_REFUSALS) {
      this.#refused.delete(this.#refused.keys().next().value!)
    }
    this.#refused.set(digest, { error, until: Date.now() + REFUSAL_MEMORY_MS })
  }

  /** Stop the transpile child processes. */
  close(): Promise<void> {
    return this.#transpiler.close()
  }

  /** Forget a component (after decommission). The disk cache stays until pruned. */
  forget(digest: string): void {
    const entry = this.#memo.get(digest)
    if (entry) {
      this.#memo.delete(digest)
      this.#memoBytes -= entry.size
    }
  }

  /** Transpile child processes started so far (see {@link Transpiler.workersStarted}). */
  get workersStarted(): number {
    return this.#transpiler.workersStarted
  }

  /** Bytes of the components kept in memory. */
  get memoBytes(): number {
    return this.#memoBytes
  }

  /** Count a loaded component against the cap and drop the least recently used past it. */
  #settle(digest: string, entry: MemoEntry, size: number): void {
    if (this.#memo.get(digest) !== entry) {
      return
    }
    entry.size = size
    entry.settled = true
    this.#memoBytes += size
    const cap = this.#options.maxMemoBytes ?? DEFAULT_MAX_MEMO_BYTES
    for (const [d, e] of this.#memo) {
      if (this.#memoBytes <= cap) {
        break
      }
      if (e.settled && e !== entry) {
        this.#memo.delete(d)
        this.#memoBytes -= e.size
      }
    }
    if (this.#memoBytes > cap) {
      // Larger than the whole cap on its own: served, not kept.
      this.#memo.delete(digest)
      this.#memoBytes -= size
    }
  }

  async #loadUncached(
    bytes: Uint8Array,
    digest: string,
    kind: ComponentKind,
    uploader: string,
    cacheDir: string,
  ): Promise<{ component: LoadedComponent; size: number }> {
    let entry = await readCacheEntry(cacheDir, digest, this.#variant)
    const cached = entry !== undefined
    if (!entry) {
      entry = await this.#transpile(bytes, digest, uploader, cacheDir)
    }
    const world = parseWorld(entry.manifest.wit)
    const imports = checkImports(world, this.#options.capabilities)
    const modules: Record<string, WebAssembly.Module> = {}
    for (const m of entry.modules) {
      try {
        modules[m.name] = await WebAssembly.compile(m.bytes)
      } catch (error) {
        // A refused build leaves nothing on disk: its instrumented modules can be ten times
        // the upload (found by npm run fuzz).
        await rm(entry.dir, { recursive: true, force: true })
        throw new WardenError('invalid_component', `core module ${m.name} does not compile`, {
          cause: error,
        })
      }
    }
    const size = entry.modules.reduce((sum, m) => sum + m.bytes.byteLength, entry.glue.length)
    const component: LoadedComponent = {
      digest,
      kind,
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
        ...providedMemory(entry.modules),
      },
    }
    return { component, size }
  }

  async #transpile(
    bytes: Uint8Array,
    digest: string,
    uploader: string,
    cacheDir: string,
  ): Promise<CacheEntry> {
    const out = await this.#transpiler.transpile({
      bytes,
      maxMemoryPages: this.#options.maxMemoryPages,
      maxTableElements: this.#options.maxTableElements ?? 1_000_000,
      uploader,
    })
    // Check the world before anything reaches the disk or a worker.
    checkImports(parseWorld(out.wit), this.#options.capabilities)
    glueFunctionBody(out.glue)
    return writeCacheEntry(
      cacheDir,
      {
        digest,
        variant: this.#variant,
        wit: out.wit,
        modules: out.modules.map(({ bytes: _, ...manifest }) => manifest),
      },
      out.glue,
      out.modules,
    )
  }
}

/** The memory the sandbox hands the component's modules, if one of them imports it. */
function providedMemory(modules: readonly ModuleManifest[]): { providedMemory?: ProvidedMemory } {
  const provided = modules.find((m) => m.providedMemory !== undefined)?.providedMemory
  return provided ? { providedMemory: provided } : {}
}
