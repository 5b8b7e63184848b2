/**
 * The README's quick start, as a new user meets it: `warden serve` on a fresh data dir creates
 * the admin key file and prints a "try it" block; that block, pasted into bash as printed,
 * uploads the hello example, approves it, grants a token and invokes it.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { RunningServer } from '../control-plane/index.js'
import { resolveHostConfig } from '../runtime/index.js'
import { serveCommand } from '../sdk/cli/serve.js'

const run = promisify(execFile)

let dataDir: string
let server: RunningServer
const printed: string[] = []
const errors: string[] = []

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-quick-'))
  server = await serveCommand({
    config: { ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir }), poolSize: 1 },
    port: 0,
    out: (line) => printed.push(line),
    err: (line) => errors.push(line),
  })
})

afterAll(async () => {
  await server?.close()
  await rm(dataDir, { recursive: true, force: true })
})

it('creates the admin key file, never prints the key, and prints a block that works when pasted', async () => {
  const keyFile = join(dataDir, 'admin.key')
  expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
  const key = (await readFile(keyFile, 'utf8')).trim()
  expect(key).toMatch(/^wdn_[0-9a-f]{16}_/)
  expect([...printed, ...errors].join('\n')).not.toContain(key)
  expect(errors.join('\n')).toContain(keyFile)

  const start = printed.indexOf('Try it (paste into a shell):')
  expect(start).toBeGreaterThanOrEqual(0)
  const block = printed
    .slice(start + 2)
    .join('\n')
    .split('\n\nAPI:')[0]!
  const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', block], { timeout: 60_000 })
  const answers = stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
  expect(answers[0]).toMatchObject({ name: 'hello', status: 'approved', riskTier: 'low' })
  expect(answers.at(-1)).toMatchObject({
    output: { greeting: 'hello from curl' },
    report: { outcome: 'ok' },
  })
})
