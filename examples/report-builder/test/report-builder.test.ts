/**
 * report-builder in Warden's real sandbox: it declares no capability, so its tier is `low`,
 * it makes no host call, and a bad dataset is its own `err`, not Warden's.
 */
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestApp } from 'warden/testing'
import type { TestApp } from 'warden/testing'
import { adminKeyPath, startServer } from '../../../control-plane/index.js'
import { resolveHostConfig } from '../../../runtime/index.js'
import type { CliIo } from '../../../sdk/cli/io.js'
import { runCli } from '../../../sdk/cli/program.js'

let app: TestApp

beforeAll(async () => {
  app = await openTestApp(new URL('..', import.meta.url))
  // A cold build (componentize-js, then the loader) takes minutes on a busy machine.
}, 900_000)

afterAll(() => app?.close())

describe('report-builder', () => {
  it('declares nothing, so it is low risk', () => {
    expect(app.build.capabilities).toEqual([])
    expect(app.build.risk.tier).toBe('low')
  })

  it('turns rows into a Markdown report with totals per group', async () => {
    const run = await app.run({
      title: 'Sales',
      rows: [
        { region: 'EU', amount: 3 },
        { region: 'US', amount: 5 },
        { region: 'EU', amount: 4 },
      ],
      groupBy: 'region',
      sum: 'amount',
    })
    expect(run.ok).toBe(true)
    expect(run.output).toMatchObject({ format: 'markdown', rows: 3, totals: { EU: 7, US: 5 } })
    expect((run.output as { report: string }).report).toContain('| EU | 3 |')
    expect(run.calls).toEqual([])
  })

  it('escapes HTML from the dataset', async () => {
    const run = await app.run({
      title: '<script>x</script>',
      rows: [{ name: '<img src=x onerror=alert(1)>' }],
      format: 'html',
    })
    const report = (run.output as { report: string }).report
    expect(report).not.toContain('<script>')
    expect(report).not.toContain('<img')
    expect(report).toContain('&#60;script&#62;')
  })

  it('answers a bad dataset with its own error', async () => {
    const run = await app.run({ rows: 3 })
    expect(run.ok).toBe(false)
    expect(run.guestError).toBe('rows must be a list of objects')
    expect(run.error).toBeUndefined()
  })
})

describe('warden dev', () => {
  it('runs it once with --input in the real sandbox and prints the run', async () => {
    const out = { stdout: '', stderr: '', code: -1 }
    const io: CliIo = {
      stdout: (t) => void (out.stdout += t),
      stderr: (t) => void (out.stderr += t),
      readStdin: async () => '',
      env: {},
      setExitCode: (c) => void (out.code = c),
    }
    const dir = fileURLToPath(new URL('..', import.meta.url))
    await runCli(io, ['dev', dir, '--input', '{"rows":[{"a":1}],"format":"html"}'])
    expect(out.code).toBe(0)
    expect(JSON.parse(out.stdout)).toMatchObject({ format: 'html', rows: 1 })
    expect(out.stderr).toContain('host calls: 0')
    expect(out.stderr).toContain('(cached)')
  })
})

describe('warden deploy, then invoke through the server', () => {
  it('uploads it with its owner and purpose: low risk, approved at once, invokable', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'warden-deploy-'))
    // The server's transpile cache is the one the build filled: the upload loads at once.
    const appDir = fileURLToPath(new URL('..', import.meta.url))
    await symlink(join(appDir, '.warden', 'runtime', 'cache'), join(dataDir, 'cache'), 'dir')
    // A generous transpile deadline: the test machine may be busy; this is not a request path.
    const config = resolveHostConfig({
      WARDEN_DATA_DIR: dataDir,
      WARDEN_TRANSPILE_TIMEOUT_MS: '300000',
    })
    const server = await startServer({
      config: { ...config, poolSize: 1 },
      port: 0,
      host: '127.0.0.1',
    })
    try {
      const env = {
        WARDEN_SERVER: server.url,
        WARDEN_KEY: (await readFile(adminKeyPath(dataDir), 'utf8')).trim(),
      }
      const cli = async (args: string[]) => {
        const out = { stdout: '', stderr: '', code: -1 }
        const io: CliIo = {
          stdout: (t) => void (out.stdout += t),
          stderr: (t) => void (out.stderr += t),
          readStdin: async () => '',
          env,
          setExitCode: (c) => void (out.code = c),
        }
        await runCli(io, args)
        return out
      }
      const deployed = await cli(['deploy', appDir])
      expect(deployed.stderr).toContain('risk tier   low')
      expect(deployed.code).toBe(0)
      expect(deployed.stdout).toContain('status:   approved')
      expect(deployed.stdout).toContain('owner:    examples')
      expect(deployed.stdout).toContain(app.build.digest)
      // No grants in the manifest: the printed command says so, as the CLI requires.
      expect(deployed.stdout).toMatch(/warden token grant report-builder --grants '\{\}' --ttl 1h/)
      const token = (await cli(['token', 'grant', 'report-builder', '--grants', '{}', '-q'])).stdout
      const invoked = await cli([
        'invoke',
        'report-builder',
        '--token',
        token.trim(),
        '--input',
        '{"rows":[{"a":1}]}',
      ])
      expect(invoked.code).toBe(0)
      expect(JSON.parse(invoked.stdout)).toMatchObject({ rows: 1, format: 'markdown' })
    } finally {
      await server.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
