/**
 * The remote CLI (`warden --server <url> …`) against a real server on a random port, driven
 * through `runCli` with an injected io: the whole flow from upload to decommissioning.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RunningServer } from '../../control-plane/index.js'
import { startTestServer } from '../../test/support/server.js'
import type { TestServer } from '../../test/support/server.js'
import { tieredGuest } from '../../test/support/tiered-guest.js'
import type { CliIo } from './io.js'
import { packageRoot } from './paths.js'
import { runCli } from './program.js'

const hello = join(packageRoot(), 'examples/hello/hello.wat')

let host: TestServer
let dataDir: string
let server: RunningServer
let adminKey: string

beforeAll(async () => {
  host = await startTestServer('warden-remote-cli-')
  ;({ server, dataDir, adminKey } = host)
})

afterAll(async () => {
  await host?.close()
})

interface Captured {
  stdout: string
  stderr: string
  code: number | undefined
}

/** `warden --server <url> <args>` in-process, with WARDEN_KEY set; nothing opens a local Warden. */
async function warden(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; server?: boolean } = {},
): Promise<Captured> {
  const out: Captured = { stdout: '', stderr: '', code: undefined }
  const io: CliIo = {
    stdout: (text) => void (out.stdout += text),
    stderr: (text) => void (out.stderr += text),
    readStdin: async () => options.stdin ?? '',
    env: { WARDEN_KEY: adminKey, ...options.env },
    setExitCode: (code) => void (out.code = code),
    openWarden: () => {
      throw new Error('a remote command opened a local Warden')
    },
  }
  await runCli(io, options.server === false ? args : ['--server', server.url, ...args])
  return out
}

/** The same, expecting exit code 0; the trimmed stdout. */
async function ok(args: string[], options: Parameters<typeof warden>[1] = {}): Promise<string> {
  const result = await warden(args, options)
  expect({ args, code: result.code, stderr: result.code === 0 ? '' : result.stderr }).toEqual({
    args,
    code: 0,
    stderr: '',
  })
  return result.stdout.trim()
}

describe('warden --server', () => {
  it('runs the whole flow: upload, approve, grant, invoke, audit, attenuate, revoke, disable, delete', async () => {
    // A medium-risk app (it imports http) waits for approval; hello (.wat, compiled here) is low.
    const medium = join(dataDir, 'fetcher.wasm')
    await writeFile(medium, await tieredGuest(['http', 'log']))
    const fetcherId = await ok([
      'apps',
      'upload',
      medium,
      '--name',
      'fetcher',
      '--owner',
      'it',
      '--purpose',
      'fetches',
    ])
    expect(fetcherId).toMatch(/^app-[0-9a-f]{16}$/)
    const pending = await warden(['token', 'grant', 'fetcher', '--log'])
    expect(pending.code).toBe(1)
    expect(pending.stderr).toMatch(/^error: app_not_approved: /)
    const unreviewed = await warden(['apps', 'approve', 'fetcher'])
    expect(unreviewed.code).toBe(2)
    const { digest } = JSON.parse(await ok(['apps', 'show', 'fetcher', '--json']))
    await ok(['apps', 'approve', 'fetcher', '--digest', digest])
    expect(JSON.parse(await ok(['apps', 'show', 'fetcher', '--json'])).status).toBe('approved')

    const helloId = await ok([
      'apps',
      'upload',
      hello,
      '--name',
      'hello',
      '--owner',
      'it',
      '--purpose',
      'greets',
      '--review-by',
      '2030-01-01',
    ])
    const listed = JSON.parse(await ok(['apps', 'list', '--tier', 'low', '--json']))
    expect(listed.map((a: { id: string }) => a.id)).toEqual([helloId])
    expect(await ok(['apps', 'list'])).toContain('fetcher')

    // Grant with the readable flags; the token alone on stdout.
    const granted = await warden([
      'token',
      'grant',
      'hello',
      '--log',
      '--http',
      'https://api.github.com/repos/',
      '--method',
      'GET',
      '--secret',
      'github_token@api.github.com',
      '--data',
      'crm:contacts/',
      '--ttl',
      '1h',
      '--fuel',
      '5e8',
    ])
    expect(granted.code).toBe(0)
    const token = granted.stdout.trim()
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/)
    expect(granted.stderr).toContain('"pathPrefix":"/repos/"')
    expect(granted.stderr).toContain('"fuel":500000000')
    expect(granted.stderr).not.toContain(token)

    const run = JSON.parse(
      await ok(['invoke', 'hello', '--input', '{"name":"Ada"}', '--token', token, '--json']),
    )
    expect(run.output).toEqual({ name: 'Ada' })
    expect(await ok(['invoke', 'hello', '--input', '"hi"'], { env: { WARDEN_TOKEN: token } })).toBe(
      'hi',
    )

    // The audit log shows the calls, and verifies.
    const tail = (await ok(['audit', 'tail', '--app', helloId, '-n', '50']))
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(tail.some((r) => r.kind === 'run' && r.invocationId === run.invocationId)).toBe(true)
    expect(tail.some((r) => r.op === 'log' || r.capability === 'warden:platform/log')).toBe(true)
    expect(tail.every((r) => r.appId === helloId)).toBe(true)
    const verified = await ok(['audit', 'verify'])
    expect(verified).toMatch(/^ok: \d+ records, last seq \d+, last hash [0-9a-f]{64}\n/)
    const head = JSON.parse(await ok(['audit', 'head', '--json']))
    // The checkpoints' public key: a PEM alone on stdout (to save for --public-key), its id.
    const pem = await ok(['audit', 'key'])
    expect(pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----$/)
    const key = JSON.parse(await ok(['audit', 'key', '--json']))
    expect(key).toEqual({
      keyId: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      publicKey: `${pem}\n`,
    })
    const anchored = await warden([
      'audit',
      'verify',
      '--expect-last-seq',
      String(head.seq),
      '--expect-last-hash',
      head.hash,
    ])
    expect(anchored.code).toBe(0)
    const wrong = await warden([
      'audit',
      'verify',
      '--expect-last-seq',
      String(head.seq),
      '--expect-last-hash',
      'f'.repeat(64),
    ])
    expect(wrong.code).toBe(1)

    // A narrower child runs within its limits; a wider one is refused.
    const child = await ok(['token', 'attenuate', token, '--grants', '{}', '--ttl', '10m', '-q'])
    expect(await ok(['invoke', 'hello', '--token', child, '--input', '1'])).toBe('1')
    const starved = await warden([
      'token',
      'attenuate',
      child,
      '--grants',
      '{}',
      '--fuel',
      '5',
      '-q',
    ])
    const fuelRun = await warden(['invoke', 'hello', '--token', starved.stdout.trim()])
    expect(fuelRun.code).toBe(1)
    expect(fuelRun.stderr).toMatch(/^error: fuel_exhausted: /)
    const wider = await warden(['token', 'attenuate', child, '--log', '-q'])
    expect(wider.code).toBe(1)
    expect(wider.stderr).toMatch(/^error: forbidden: /)

    // Revoke the parent: the child dies with it.
    const tokens = JSON.parse(await ok(['token', 'list', '--app', 'hello', '--json']))
    const root = tokens.find((t: { parent?: string }) => !t.parent)
    await ok(['token', 'revoke', root.jti])
    const revoked = await warden(['invoke', 'hello', '--token', child])
    expect(revoked.code).toBe(1)
    expect(revoked.stderr).toMatch(/^error: token_revoked: /)

    // Kill switch, then decommissioning.
    const fresh = await ok(['token', 'grant', 'hello', '--grants', '{}', '-q'])
    await ok(['apps', 'disable', 'hello'])
    const disabled = await warden(['invoke', 'hello', '--token', fresh])
    expect([disabled.code, disabled.stderr]).toEqual([
      1,
      expect.stringMatching(/^error: app_disabled: /),
    ])
    await ok(['apps', 'enable', 'hello'])
    expect(await ok(['invoke', 'hello', '--token', fresh, '--input', '2'])).toBe('2')
    await ok(['apps', 'delete', 'hello'])
    const gone = await warden(['invoke', 'hello', '--token', fresh])
    expect([gone.code, gone.stderr]).toEqual([1, expect.stringMatching(/^error: token_revoked: /)])
  })

  it('writes secrets and data, and manages API keys', async () => {
    await ok(['secret', 'set', 'github_token'], { stdin: 'ghp_value\n' })
    const secrets = await ok(['secret', 'list', '--json'])
    expect(JSON.parse(secrets).map((s: { name: string }) => s.name)).toEqual(['github_token'])
    expect(secrets).not.toContain('ghp_value')
    await ok(['secret', 'delete', 'github_token'])
    expect((await warden(['secret', 'delete', 'github_token'])).code).toBe(1)

    await ok(['data', 'put', 'crm', 'contacts/alice', '{"name":"Alice","email":"a@x.io"}'])
    expect(JSON.parse(await ok(['data', 'get', 'crm', 'contacts/alice']))).toEqual({
      name: 'Alice',
      email: 'a@x.io',
    })
    await ok(['data', 'schema', 'crm', '--pii', 'email'])
    expect((await warden(['data', 'get', 'crm', 'contacts/bob'])).stderr).toMatch(
      /^error: not_found: /,
    )

    const key = await ok(['keys', 'create', '--role', 'auditor', '--label', 'remote'])
    expect(key).toMatch(/^wdn_/)
    const keys = JSON.parse(await ok(['keys', 'list', '--json']))
    const made = keys.find((k: { label: string }) => k.label === 'remote')
    expect(JSON.stringify(keys)).not.toContain(key)
    // The auditor reads the audit log but may not list keys.
    expect(await ok(['audit', 'head'], { env: { WARDEN_KEY: key } })).toMatch(/^seq \d+ hash /)
    const refused = await warden(['keys', 'list'], { env: { WARDEN_KEY: key } })
    expect([refused.code, refused.stderr]).toEqual([
      1,
      expect.stringMatching(/^error: forbidden: /),
    ])
    await ok(['keys', 'revoke', made.id])
  })

  it('answers usage errors with exit 2, and never prints the key', async () => {
    const badFlag = await warden(['token', 'grant', 'hello', '--secret', 'github_token'])
    expect([badFlag.code, badFlag.stderr]).toEqual([
      2,
      expect.stringMatching(/^error: invalid_request: --secret/),
    ])
    expect((await warden(['token', 'grant', 'hello', '--ttl', '1y'])).code).toBe(2)
    expect((await warden(['token', 'grant', 'hello'])).code).toBe(2)
    const noServer = await warden(['apps', 'list'], { server: false })
    expect([noServer.code, noServer.stderr]).toEqual([2, expect.stringContaining('--server')])
    const badServer = await warden(['--server', 'ftp://x', 'apps', 'list'], { server: false })
    expect(badServer.code).toBe(2)
    const viaEnv = await warden(['apps', 'list', '--json'], {
      server: false,
      env: { WARDEN_SERVER: server.url },
    })
    expect(viaEnv.code).toBe(0)
    const unreachable = await warden(['apps', 'list'], {
      server: false,
      env: { WARDEN_SERVER: 'http://127.0.0.1:1' },
    })
    expect([unreachable.code, unreachable.stderr]).toEqual([
      1,
      expect.stringMatching(/^error: upstream_error: /),
    ])
    const wrongKey = await warden(['apps', 'list'], { env: { WARDEN_KEY: `${adminKey}x` } })
    expect(wrongKey.code).toBe(1)
    for (const r of [badFlag, noServer, unreachable, wrongKey]) {
      expect(r.stderr + r.stdout).not.toContain(adminKey)
    }
    const help = await warden(['apps', 'upload', '--help'])
    expect([help.code, help.stdout]).toEqual([0, expect.stringContaining('--purpose')])
  })
})

describe('a hostile server (second outside attack)', () => {
  it('never gets a control, C1 or bidi character onto the terminal, and no redirect is followed', async () => {
    const { createServer } = await import('node:http')
    const nasty = '\u001b]0;PWNED\u0007\u001b[31m\u009b\u202e'
    const fake = createServer((req, res) => {
      if (req.url?.startsWith('/v1/apps?')) {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            apps: [{ id: nasty, name: nasty, status: nasty, riskTier: nasty, owner: nasty }],
            nextCursor: null,
          }),
        )
        return
      }
      if (req.url?.startsWith('/v1/keys')) {
        res.writeHead(307, { location: 'http://127.0.0.2:9/steal' })
        res.end()
        return
      }
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { code: nasty, message: nasty } }))
    })
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(fake.address() as { port: number }).port}`
    try {
      for (const args of [
        ['apps', 'list'],
        ['apps', 'list', '--json'],
        ['apps', 'show', 'x'],
        ['keys', 'list'],
      ]) {
        const result = await warden(['--server', url, ...args], { server: false })
        const shown = result.stdout + result.stderr
        expect({
          args,
          shown: /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/.test(shown),
        }).toEqual({ args, shown: false })
      }
    } finally {
      fake.close()
    }
  })
})

describe('warden apps route', () => {
  const helloHttp = join(packageRoot(), 'examples/hello-http/hello-http.wat')

  beforeAll(async () => {
    await ok([
      'apps',
      'upload',
      helloHttp,
      '--name',
      'pages',
      '--owner',
      'it',
      '--purpose',
      'serves',
    ])
  })

  it('binds a micro-app with grant flags, shows it, serves it, and unbinds it', async () => {
    const bound = await ok(['apps', 'route', 'pages', '--log', '--ttl', '1h'])
    expect(bound).toContain(`serves:   ${server.url}/apps/pages/`)
    expect(bound).toMatch(/^token: {4}\S+ \(expires \d{4}-/m)
    expect((await fetch(`${server.url}/apps/pages/`)).status).toBe(200)

    const shown = JSON.parse(await ok(['apps', 'route', 'pages', '--show', '--json']))
    expect(shown).toMatchObject({ name: 'pages', path: '/apps/pages/' })
    expect(JSON.stringify(shown)).not.toMatch(/eyJ/)

    const unbound = await warden(['apps', 'route', 'pages', '--unbind'])
    expect([unbound.code, unbound.stderr]).toEqual([0, expect.stringContaining('no longer served')])
    expect((await fetch(`${server.url}/apps/pages/`)).status).toBe(404)
    const gone = await warden(['apps', 'route', 'pages', '--show'])
    expect([gone.code, gone.stderr]).toEqual([1, expect.stringMatching(/^error: not_found: /)])
  })

  it('binds a token you hold (never printing it), from a file too', async () => {
    const token = await ok(['token', 'grant', 'pages', '--log', '-q'])
    const { jti } = JSON.parse(await ok(['apps', 'route', 'pages', '--token', token, '--json']))
    const inspected = await warden(['token', 'inspect', token])
    expect(inspected.stdout).toContain(`"jti": "${jti}"`)
    const file = join(dataDir, 'route.token')
    await writeFile(file, `${token}\n`)
    const again = await warden(['apps', 'route', 'pages', '--token', `@${file}`])
    expect(again.code).toBe(0)
    expect(again.stdout + again.stderr).not.toContain(token)
  })

  it('refuses a forged token, an action, and an API key that is not an admin', async () => {
    const forged = await warden(['apps', 'route', 'pages', '--token', 'eyJ.not.a-token'])
    expect([forged.code, forged.stderr]).toEqual([1, expect.stringMatching(/^error: token_/)])
    await ok(['apps', 'upload', hello, '--name', 'greeter', '--owner', 'it', '--purpose', 'greets'])
    const action = await warden(['apps', 'route', 'greeter', '--log'])
    expect([action.code, action.stderr]).toEqual([2, expect.stringContaining('invalid_request')])
    const auditorKey = await ok(['keys', 'create', '--role', 'auditor', '--label', 'route'])
    const refused = await warden(['apps', 'route', 'pages', '--log'], {
      env: { WARDEN_KEY: auditorKey },
    })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/^error: (forbidden|unauthorized)/)
  })

  it('takes exactly one of: grant flags, --token, --show, --unbind', async () => {
    for (const args of [
      [],
      ['--show', '--unbind'],
      ['--token', 'x', '--log'],
      ['--show', '--log'],
    ]) {
      const run = await warden(['apps', 'route', 'pages', ...args])
      expect({ args, code: run.code }).toEqual({ args, code: 2 })
      expect(run.stderr).toMatch(/apps route takes one of/)
    }
    const help = await warden(['apps', 'route', '--help'])
    expect([help.code, help.stdout]).toEqual([0, expect.stringContaining('--unbind')])
  })
})
