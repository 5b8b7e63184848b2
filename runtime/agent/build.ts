/**
 * The built-in JS agent component (`agent.js` against `agent.wit`), built with componentize-js
 * and cached on disk by the hash of its inputs: the guest source, its world, Warden's
 * `wit/platform.wit`, the componentize-js version and the build options. A changed input is a
 * new file, never a stale hit. Builds are not byte-reproducible (the engine's snapshot differs
 * from one build to the next), so a deployment pins the build it registered first: the server
 * adopts the registry's bytes when their build key matches ({@link adoptAgentBuild}), and the
 * `js` app's digest changes exactly when one of the inputs does.
 *
 * A build takes 25–45 s: it runs at install (`npm run build:agent`, part of `prepare`), in the
 * test suite's global setup, or at server start when the cache is cold; never on a request
 * path. The bytes are not committed: they are a function of the inputs above.
 *
 * The cache lives in `node_modules/.cache/warden/agent/` under Warden's package root: the
 * component (`<hash>.wasm`) and its transpile-cache entry (see {@link agentCacheDir}), so a new
 * data dir does not transpile the 12 MB engine again. A new build removes the earlier ones.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { witDir } from '../loader/wit.js'

/** What the component's build depends on besides the files (part of the cache key). */
const BUILD_OPTIONS = {
  worldName: 'agent',
  // The engine's own fetch, stdio and event handlers are off: the script reaches the world
  // through `warden` only. Clocks and random stay (the platform's WASI baseline).
  disableFeatures: ['stdio', 'http', 'fetch-event'] as ('stdio' | 'http' | 'fetch-event')[],
}

/** Warden's package root (from sources or from `dist/`). */
function packageRoot(): string {
  return dirname(witDir())
}

/**
 * The folder of the agent's cached builds and transpile entries: `WARDEN_AGENT_CACHE_DIR`, else
 * `node_modules/.cache/warden/agent/` under Warden's package root.
 */
export function agentCacheDir(): string {
  return (
    process.env.WARDEN_AGENT_CACHE_DIR ||
    join(packageRoot(), 'node_modules', '.cache', 'warden', 'agent')
  )
}

interface AgentInputs {
  source: string
  world: string
  platformWit: string
  componentizeVersion: string
  key: string
}

async function readInputs(): Promise<AgentInputs> {
  const root = packageRoot()
  const here = join(root, 'runtime', 'agent')
  const [source, world, platformWit, pkg] = await Promise.all([
    readFile(join(here, 'agent.js'), 'utf8'),
    readFile(join(here, 'agent.wit'), 'utf8'),
    readFile(join(root, 'wit', 'platform.wit'), 'utf8'),
    readFile(
      join(root, 'node_modules', '@bytecodealliance', 'componentize-js', 'package.json'),
      'utf8',
    ),
  ])
  const componentizeVersion = (JSON.parse(pkg) as { version: string }).version
  const key = createHash('sha256')
  for (const part of [
    source,
    world,
    platformWit,
    componentizeVersion,
    JSON.stringify(BUILD_OPTIONS),
  ]) {
    // Length-prefixed, so moving text from one part to the next changes the key.
    key.update(`${part.length}:`).update(part)
  }
  return { source, world, platformWit, componentizeVersion, key: key.digest('hex') }
}

/** Options of {@link agentComponent}. */
export interface AgentBuildOptions {
  /** Told when a build starts (it takes 25–45 s); not called on a cache hit. */
  onBuild?: (message: string) => void
  /** The cache folder. Default {@link agentCacheDir} (tests use their own). */
  cacheDir?: string
}

/** One build (or read) in flight or done per cache folder, shared by concurrent callers. */
const pending = new Map<string, Promise<Uint8Array>>()

/**
 * The agent component's bytes: from the cache when its inputs are unchanged, else built and
 * cached. Concurrent callers in one process share one build.
 *
 * @example
 * const app = await warden.load(await agentComponent(), { cacheDir: agentCacheDir() })
 */
export function agentComponent(options: AgentBuildOptions = {}): Promise<Uint8Array> {
  const dir = options.cacheDir ?? agentCacheDir()
  let bytes = pending.get(dir)
  if (!bytes) {
    bytes = loadOrBuild(dir, options)
    pending.set(dir, bytes)
    // A failed build is not memoised: the next caller retries.
    bytes.catch(() => {
      pending.delete(dir)
    })
  }
  return bytes
}

/**
 * The hash of the agent's build inputs (source, worlds, componentize-js version, options).
 * componentize-js builds are not byte-for-byte reproducible (the engine's pre-initialised
 * snapshot differs from one build to the next), so this key, not the bytes' digest, says
 * whether two builds are the same agent.
 */
export async function agentBuildKey(): Promise<string> {
  return (await readInputs()).key
}

/**
 * Make `bytes` the cached build of the current inputs, in place of this install's own build:
 * a deployment runs the one build it registered first (`control-plane/agent.ts`), so a
 * reinstall, or a second host, keeps the built-in app's digest and the tokens bound to it.
 * The caller vouches that `bytes` was built from the same inputs (the registry's build key).
 * Returns false when the cache already held them.
 */
export async function adoptAgentBuild(
  bytes: Uint8Array,
  options: Pick<AgentBuildOptions, 'cacheDir'> = {},
): Promise<boolean> {
  const dir = options.cacheDir ?? agentCacheDir()
  const file = join(dir, `${(await readInputs()).key}.wasm`)
  const held = await readFile(file).catch(() => undefined)
  if (held && Buffer.compare(held, bytes) === 0) {
    return false
  }
  await mkdir(dir, { recursive: true })
  if (held) {
    await removeTranspileEntries(dir, held)
  }
  await writeAtomically(file, bytes)
  pending.set(dir, Promise.resolve(bytes))
  return true
}

async function loadOrBuild(dir: string, options: AgentBuildOptions): Promise<Uint8Array> {
  const inputs = await readInputs()
  const file = join(dir, `${inputs.key}.wasm`)
  try {
    return new Uint8Array(await readFile(file))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw error
    }
  }
  options.onBuild?.(
    `building the built-in JS agent component (componentize-js ${inputs.componentizeVersion}); this takes 25–45 s, once`,
  )
  const bytes = await componentizeAgent(inputs)
  await mkdir(dir, { recursive: true })
  await writeAtomically(file, bytes)
  await pruneOtherBuilds(dir, file)
  return bytes
}

async function writeAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const partial = `${file}.${process.pid}.${randomUUID()}.tmp`
  await writeFile(partial, bytes)
  await rename(partial, file)
}

/** Remove the transpile entries of a build's bytes. */
async function removeTranspileEntries(dir: string, bytes: Uint8Array): Promise<void> {
  const components = join(dir, 'cache', 'components')
  const entries = await readdir(components).catch(() => [] as string[])
  const hex = createHash('sha256').update(bytes).digest('hex')
  await Promise.all(
    entries
      .filter((e) => e.startsWith(`${hex}-`))
      .map((e) => rm(join(components, e), { recursive: true, force: true })),
  )
}

/** Remove earlier builds and their transpile entries: only the current inputs' build is kept. */
async function pruneOtherBuilds(dir: string, keep: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name)
    if (!name.endsWith('.wasm') || path === keep) {
      continue
    }
    await removeTranspileEntries(dir, await readFile(path))
    await rm(path, { force: true })
  }
}

async function componentizeAgent(inputs: AgentInputs): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-agent-'))
  try {
    await mkdir(join(dir, 'wit', 'deps', 'platform'), { recursive: true })
    await Promise.all([
      writeFile(join(dir, 'wit', 'world.wit'), inputs.world),
      writeFile(join(dir, 'wit', 'deps', 'platform', 'platform.wit'), inputs.platformWit),
      writeFile(join(dir, 'agent.js'), inputs.source),
    ])
    // Imported lazily: a cache hit never loads the engine.
    const { componentize } = await import('@bytecodealliance/componentize-js')
    const { component } = await componentize({
      sourcePath: join(dir, 'agent.js'),
      witPath: join(dir, 'wit'),
      ...BUILD_OPTIONS,
    })
    return component
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
