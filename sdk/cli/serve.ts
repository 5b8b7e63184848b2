/**
 * `warden serve` (what `npm start` runs): the control plane on `HOST:PORT` over the data dir.
 * Prints where it listens, where the bootstrap admin key is, and a "try it" block; stops on
 * SIGTERM or SIGINT (a second signal exits at once).
 */
import { mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { adminKeyPath, startServer, tryItBlock } from '../../control-plane/index.js'
import type { RunningServer } from '../../control-plane/index.js'
import { writeFileAtomic } from '../../runtime/index.js'
import type { HostConfig } from '../../runtime/index.js'
import { readComponentFile } from './load-file.js'
import { packageRoot } from './paths.js'

/** Options of {@link serveCommand}. */
export interface ServeCommandOptions {
  config: Readonly<HostConfig>
  port?: number
  out: (line: string) => void
  err: (line: string) => void
  /** Called with a function that stops the server; the caller wires it to signals. */
  onStarted?: (server: RunningServer) => void
}

/** The hello example as a binary component in the data dir, for the "try it" block. */
async function exampleWasm(dataDir: string): Promise<string> {
  const file = join(dataDir, 'examples', 'hello.wasm')
  if (!(await stat(file).catch(() => undefined))) {
    const bytes = await readComponentFile(join(packageRoot(), 'examples', 'hello', 'hello.wat'))
    await mkdir(join(dataDir, 'examples'), { recursive: true, mode: 0o700 })
    await writeFileAtomic(file, bytes)
  }
  return file
}

/**
 * Start the server and print how to use it.
 *
 * @example
 * const server = await serveCommand({ config: resolveHostConfig(), out: console.log, err: console.error })
 */
export async function serveCommand(options: ServeCommandOptions): Promise<RunningServer> {
  const { config, out, err } = options
  const server = await startServer({
    config,
    ...(options.port !== undefined ? { port: options.port } : {}),
  })
  options.onStarted?.(server)
  const keyFile = adminKeyPath(config.dataDir)
  out(`Warden is listening on ${server.url} (data dir ${config.dataDir})`)
  if (server.bootstrapKeyFile) {
    err(`created the bootstrap admin key: ${server.bootstrapKeyFile} (mode 0600; keep it safe)`)
  } else if (config.redisUrl) {
    err('admin keys: those of the deployment on Redis (the first host wrote its bootstrap key)')
  } else {
    err(`admin key: ${keyFile} (if it is still there; create more with POST /v1/keys)`)
  }
  const wasm = await exampleWasm(config.dataDir).catch(() => undefined)
  if (wasm) {
    out('')
    out('Try it (paste into a shell):')
    out('')
    out(tryItBlock(server.url, keyFile, wasm))
    out('')
  }
  out(`API: ${server.url}/openapi.json · health: ${server.url}/healthz · stop: Ctrl-C`)
  return server
}
