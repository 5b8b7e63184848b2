/**
 * How the sandbox process is started: the command line, the files it may read, and whether it
 * gets a network namespace of its own.
 *
 * The child always runs compiled JavaScript from the package's `dist/` (tsx cannot run under
 * Node's permission model: it spawns esbuild). From sources (vitest, tsx) that is the `dist/`
 * beside them, which `npm run build` writes.
 */
import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { WardenError } from '../../errors.js'

/** Where the sandbox process's code lives. */
export interface ChildPaths {
  /** The compiled child entry. */
  entry: string
  /** The folders of the build that the child may read: exactly the code it imports. */
  readable: readonly string[]
  /** The build root, used as the child's working directory. */
  root: string
}

/** Resolve the compiled child entry and the folders it may read, from this module's location. */
export function childPaths(moduleUrl: string = import.meta.url): ChildPaths {
  const here = dirname(fileURLToPath(moduleUrl))
  // runtime/sandbox/process → the folder holding runtime/ (the build root, or the sources root).
  const base = join(here, '..', '..', '..')
  const root = moduleUrl.endsWith('.ts') ? join(base, 'dist') : base
  return {
    entry: join(root, 'runtime', 'sandbox', 'process', 'child.js'),
    // The child imports only Warden's own runtime and capability code, and no package from
    // node_modules (checked by test/process-isolation.test.ts).
    readable: [join(root, 'core'), join(root, 'runtime'), join(root, 'host-capabilities')],
    root,
  }
}

/** How the network is taken away, when the platform allows it. */
export type NetworkIsolation =
  | { kind: 'namespace'; command: string; args: readonly string[] }
  | { kind: 'none' }

const UNSHARE_PATHS = ['/usr/bin/unshare', '/bin/unshare', '/usr/sbin/unshare', '/sbin/unshare']

let detected: NetworkIsolation | undefined

/**
 * Find a way to start a process in a new network namespace with no interfaces. First in a new
 * user namespace too (`unshare --user --map-root-user --net`): even when the host runs as
 * root, the child then holds no capability outside its namespaces, so native code in it could
 * not `setns` back into the host's network. Else `unshare --net` (root, without user
 * namespaces). Each is tried once, for real; the answer is kept for the life of the process.
 */
export function detectNetworkIsolation(): NetworkIsolation {
  if (detected) {
    return detected
  }
  detected = { kind: 'none' }
  if (process.platform !== 'linux') {
    return detected
  }
  const command = UNSHARE_PATHS.find((p) => {
    try {
      accessSync(p, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
  if (!command) {
    return detected
  }
  for (const args of [['--user', '--map-root-user', '--net'], ['--net']]) {
    const probe = spawnSync(command, [...args, '--', process.execPath, '--version'], {
      env: {},
      stdio: 'ignore',
      timeout: 10_000,
    })
    if (probe.status === 0) {
      detected = { kind: 'namespace', command, args: [...args, '--'] }
      break
    }
  }
  return detected
}

/** Options of {@link childCommand}. */
export interface ChildCommandOptions {
  /** V8 old-generation limit of the child's main thread, in MiB. */
  heapMb: number
  /** Start in a network namespace of its own, when {@link detectNetworkIsolation} found a way. */
  network: NetworkIsolation
  paths?: ChildPaths
}

/**
 * The sandbox process's command line. `script` replaces the entry (a test probe runs its own
 * code under exactly these flags).
 *
 * - `--experimental-permission` with `--allow-fs-read` of Warden's compiled code only: no other
 *   file read, no fs write, no child process, no WASI, no inspector, no native addon.
 * - `--allow-worker`: the sandbox pool's worker threads.
 * - `--no-addons`: native addons refused even if the permission model is ever relaxed.
 * - `--disallow-code-generation-from-strings`: no `eval` or `new Function` in any thread
 *   (process-wide V8 flag). The glue is compiled with `vm.compileFunction`, which it allows.
 * - `--max-old-space-size`: the child's own heap; the workers have their own limits.
 * - `--no-warnings`: the permission model's experimental warnings would fill stderr.
 */
export function childCommand(
  options: ChildCommandOptions,
  script?: readonly string[],
): { command: string; args: string[] } {
  const paths = options.paths ?? childPaths()
  const node = [
    '--experimental-permission',
    // NB: one flag per folder. Node 20.20 takes a comma as part of the path, and a folder
    // without its trailing slash would also allow its siblings that share the prefix.
    ...paths.readable.map((p) => `--allow-fs-read=${p}/`),
    '--allow-worker',
    '--no-addons',
    '--disallow-code-generation-from-strings',
    `--max-old-space-size=${options.heapMb}`,
    '--no-warnings',
    ...(script ?? [paths.entry]),
  ]
  if (options.network.kind === 'namespace') {
    const { command, args } = options.network
    return { command, args: [...args, process.execPath, ...node] }
  }
  return { command: process.execPath, args: node }
}

/** Throw when the compiled child is missing: the sources are run without a build. */
export function checkChildBuilt(paths: ChildPaths = childPaths()): void {
  if (!existsSync(paths.entry)) {
    throw new WardenError(
      'internal',
      `the sandbox process entry ${paths.entry} is missing: run \`npm run build\``,
    )
  }
}
