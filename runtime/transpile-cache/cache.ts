/**
 * The transpile cache: jco's glue and the instrumented core modules of each component, on
 * disk under the data dir, so a restart does not transpile again.
 *
 * Layout: `<dataDir>/cache/components/<digest hex>-<variant>/{manifest.json,glue.mjs,*.wasm}`,
 * where `variant` hashes everything else the output depends on (transpiler version, cost
 * model, host ceilings). Entries are written to a temporary folder and renamed into place,
 * so a crash never leaves a half-written entry that looks complete.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ProvidedMemory } from '../sandbox/protocol.js'

/**
 * Bump when the layout or the manifest changes, or when the load refuses what it accepted
 * before (2: shared memories, multiple memories and flag-only proposals are refused; 3: a module
 * that defines its memory imports it instead, and says so in `providedMemory`).
 */
export const CACHE_FORMAT = 3

/** One instrumented core module, as the manifest describes it. */
export interface ModuleManifest {
  /** The file name jco's glue asks for. */
  name: string
  /** Minimum pages of the memory it defines (0 if none). */
  minMemoryPages: number
  /**
   * Set when its memory is imported from the host (`InstrumentOptions.provideMemory`): the
   * limits of the memory the sandbox hands it.
   */
  providedMemory?: ProvidedMemory
}

/** What is stored beside the files. */
export interface CacheManifest {
  format: number
  digest: string
  variant: string
  wit: string
  modules: ModuleManifest[]
}

/** One cached component, as read back. */
export interface CacheEntry {
  dir: string
  manifest: CacheManifest
  gluePath: string
  glue: string
  modules: (ModuleManifest & { bytes: Uint8Array<ArrayBuffer> })[]
}

/** The folder of one entry. */
export function cacheEntryDir(dataDir: string, digest: string, variant: string): string {
  return join(dataDir, 'cache', 'components', `${digest.replace(/^sha256:/, '')}-${variant}`)
}

/** Read an entry; undefined when absent or unreadable (a bad entry is rebuilt, not trusted). */
export async function readCacheEntry(
  dataDir: string,
  digest: string,
  variant: string,
): Promise<CacheEntry | undefined> {
  const dir = cacheEntryDir(dataDir, digest, variant)
  try {
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as CacheManifest
    if (
      manifest.format !== CACHE_FORMAT ||
      manifest.digest !== digest ||
      manifest.variant !== variant
    ) {
      return undefined
    }
    const modules = await Promise.all(
      manifest.modules.map(async (m) => ({
        ...m,
        bytes: whole(await readFile(join(dir, safeName(m.name)))),
      })),
    )
    const glue = await readFile(join(dir, 'glue.mjs'), 'utf8')
    return { dir, manifest, gluePath: join(dir, 'glue.mjs'), glue, modules }
  } catch {
    return undefined
  }
}

/** Write an entry atomically and return it. */
export async function writeCacheEntry(
  dataDir: string,
  manifest: Omit<CacheManifest, 'format'>,
  glue: string,
  modules: (ModuleManifest & { bytes: Uint8Array<ArrayBuffer> })[],
): Promise<CacheEntry> {
  const dir = cacheEntryDir(dataDir, manifest.digest, manifest.variant)
  const tmp = `${dir}.tmp-${randomBytes(6).toString('hex')}`
  const full: CacheManifest = { format: CACHE_FORMAT, ...manifest }
  await mkdir(tmp, { recursive: true, mode: 0o700 })
  try {
    await writeFile(join(tmp, 'glue.mjs'), glue)
    for (const m of modules) {
      await writeFile(join(tmp, safeName(m.name)), m.bytes)
    }
    await writeFile(join(tmp, 'manifest.json'), JSON.stringify(full, null, 2))
    await rm(dir, { recursive: true, force: true })
    await rename(tmp, dir)
  } catch (error) {
    await rm(tmp, { recursive: true, force: true })
    throw error
  }
  return { dir, manifest: full, gluePath: join(dir, 'glue.mjs'), glue, modules }
}

/** The file's bytes as a plain Uint8Array over the same memory: no copy. */
function whole(buffer: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(buffer.buffer as ArrayBuffer, buffer.byteOffset, buffer.byteLength)
}

function safeName(name: string): string {
  if (!/^[\w.-]+\.wasm$/.test(name)) {
    throw new Error(`unexpected core module name ${JSON.stringify(name)}`)
  }
  return name
}
