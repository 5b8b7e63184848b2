/** A control-plane server on a random port over a temp data dir, for tests that talk HTTP. */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { adminKeyPath, startServer } from '../../control-plane/index.js'
import type { RunningServer, ServeOptions } from '../../control-plane/index.js'
import { resolveHostConfig } from '../../runtime/index.js'

/** A running test server, its data dir and its bootstrap admin key. */
export interface TestServer {
  server: RunningServer
  dataDir: string
  adminKey: string
  /** Stop the server and delete the data dir. */
  close(): Promise<void>
}

/**
 * Start a server on `127.0.0.1:0` with a pool of 2 (without the built-in JS sandbox unless
 * `agent` is true), configured as `env` says (`WARDEN_*` variables) where a test needs it.
 *
 * @example
 * const { server, adminKey, close } = await startTestServer('warden-client-')
 */
export async function startTestServer(
  prefix: string,
  options: Pick<ServeOptions, 'agent' | 'warden'> & { env?: Record<string, string> } = {},
): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), prefix))
  const config = {
    ...resolveHostConfig({ ...options.env, WARDEN_DATA_DIR: dataDir }),
    poolSize: 2,
  }
  const server = await startServer({
    config,
    port: 0,
    host: '127.0.0.1',
    // The built-in JS sandbox only where a test uses it: it adds a second or two to the start.
    agent: options.agent ?? false,
    log: () => {},
    ...(options.warden ? { warden: options.warden } : {}),
  })
  const adminKey = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
  return {
    server,
    dataDir,
    adminKey,
    async close() {
      await server.close()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}
