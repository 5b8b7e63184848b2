/**
 * The built-in JS agent component (`agent.js` against `agent.wit`), built with componentize-js
 * and cached on disk by the hash of its inputs: the guest source, its world, Warden's
 * `wit/platform.wit`, the componentize-js version and the build options. A changed input is a
 * new file, never a stale hit, so the component's digest changes exactly when one of them does.
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

/** The folder of the agent's cached builds and transpile entries. */
export function agentCacheDir(): string {
  return join(packageRoot(), 'node_modules', '.cache', 'warden', 'agent')
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
}

let pending: Promise<Uint8Array> | undefined

/**
 * The agent component's bytes: from the cache when its inputs are unchanged, else built and
 * cached. Concurrent callers in one process share one build.
 *
 * @example
 * const app = await warden.load(await agentComponent(), { cacheDir: agentCacheDir() })
 */
export function agentComponent(options: AgentBuildOptions = {}): Promise<Uint8Array> {
  if (!pending) {
    pending = loadOrBuild(options)
    // A failed build is not memoised: the next caller retries.
    pending.catch(() => {
      pending = undefined
    })
  }
  return pending
}

async function loadOrBuild(options: AgentBuildOptions): Promise<Uint8Array> {
  const inputs = await readInputs()
  const dir = agentCacheDir()
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
  const partial = `${file}.${process.pid}.${randomUUID()}.tmp`
  await writeFile(partial, bytes)
  await rename(partial, file)
  await pruneOtherBuilds(dir, file)
  return bytes
}

/** Remove earlier builds and their transpile entries: only the current inputs' build is kept. */
async function pruneOtherBuilds(dir: string, keep: string): Promise<void> {
  const components = join(dir, 'cache', 'components')
  const entries = await readdir(components).catch(() => [] as string[])
  for (const name of await readdir(dir)) {
    const path = join(dir, name)
    if (!name.endsWith('.wasm') || path === keep) {
      continue
    }
    const hex = createHash('sha256')
      .update(await readFile(path))
      .digest('hex')
    await Promise.all(
      entries
        .filter((e) => e.startsWith(`${hex}-`))
        .map((e) => rm(join(components, e), { recursive: true, force: true })),
    )
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
