import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CommanderError } from 'commander'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveHostConfig } from '../../runtime/index.js'
import type { Warden } from '../../runtime/index.js'
import { openTestWarden } from '../../test/support/warden.js'
import type { TestWarden } from '../../test/support/warden.js'
import { auditLogFile } from './audit.js'
import type { CliIo } from './io.js'
import { packageRoot } from './paths.js'
import { buildProgram, runCli } from './program.js'

const hello = join(packageRoot(), 'examples/hello/hello.wat')

let dataDir: string
let warden: Warden
let host: TestWarden

beforeAll(async () => {
  host = await openTestWarden()
  ;({ warden, dataDir } = host)
})

afterAll(async () => {
  await host?.close()
})

interface Captured {
  stdout: string
  stderr: string
  /** The exit code the command set; undefined when commander threw before any action ran. */
  code: number | undefined
  /** How many times the command opened Warden (each open must be closed). */
  opened: number
  closed: number
}

/** Run `warden <args>` in-process over the shared Warden, capturing everything. */
async function cli(
  args: string[],
  options: { stdin?: string; env?: Record<string, string> } = {},
): Promise<Captured> {
  const out: Captured = { stdout: '', stderr: '', code: undefined, opened: 0, closed: 0 }
  const io: CliIo = {
    stdout: (text) => void (out.stdout += text),
    stderr: (text) => void (out.stderr += text),
    readStdin: async () => options.stdin ?? '',
    env: options.env ?? {},
    setExitCode: (code) => void (out.code = code),
    hostConfig: () => ({
      ...resolveHostConfig({}),
      dataDir,
      poolSize: 1,
      maxTokenLifetimeSeconds: 3600,
    }),
    openWarden: async () => {
      out.opened += 1
      return { ...warden, close: async () => void (out.closed += 1) }
    },
  }
  await buildProgram(io).parseAsync(args, { from: 'user' })
  return out
}

const TOKEN = /^[\w-]+\.[\w-]+\.[\w-]+$/

async function grant(grants = '{"log":true}'): Promise<string> {
  const result = await cli(['token', 'grant', hello, '--grants', grants, '--quiet'])
  expect(result.code).toBe(0)
  return result.stdout.trim()
}

describe('warden token grant / run --token', () => {
  it('prints only the token on stdout and the claims on stderr; the token runs hello', async () => {
    const granted = await cli(['token', 'grant', hello, '--grants', '{"log":true}'])
    expect(granted.code).toBe(0)
    expect(granted.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/)
    expect(granted.stderr).toContain('jti:')
    expect(granted.stderr).toContain('"log":true')
    expect(granted.stderr).not.toContain(granted.stdout.trim())
    expect([granted.opened, granted.closed]).toEqual([1, 1])

    const run = await cli(['run', hello, '--token', granted.stdout.trim(), '--input', '{"a":1}'])
    expect(run.stderr).toBe('[guest info] {"a":1}\n')
    expect(run.stdout).toBe('{"a":1}\n')
    expect(run.code).toBe(0)
  })

  it('--quiet prints nothing on stderr', async () => {
    const result = await cli(['token', 'grant', hello, '--grants', '{}', '--quiet'])
    expect(result.stdout.trim()).toMatch(TOKEN)
    expect(result.stderr).toBe('')
  })

  it('reads the token from WARDEN_TOKEN, @file and stdin', async () => {
    const token = await grant()
    const viaEnv = await cli(['run', hello, '--json'], { env: { WARDEN_TOKEN: token } })
    expect(viaEnv.code).toBe(0)
    expect(JSON.parse(viaEnv.stdout).report.tokenJti).toMatch(/^[\w-]+$/)

    const file = join(dataDir, 'token.txt')
    await writeFile(file, `${token}\n`)
    expect((await cli(['run', hello, '--token', `@${file}`])).code).toBe(0)
    expect((await cli(['run', hello, '--token', '-'], { stdin: `${token}\n` })).code).toBe(0)
  })

  it('refuses local-run flags with a token as a usage error', async () => {
    const token = await grant()
    const local = [['--fuel', '5'], ['--grant', 'log'], ['--no-grant'], ['--memory-mb', '8']]
    for (const flags of local) {
      const result = await cli(['run', hello, '--token', token, ...flags])
      expect(result.code).toBe(2)
      expect(result.stderr).toMatch(/^error: invalid_request: /)
      expect(result.opened).toBe(0)
    }
    const viaEnv = await cli(['run', hello, '--fuel', '5'], { env: { WARDEN_TOKEN: token } })
    expect(viaEnv.code).toBe(2)
    expect(viaEnv.stderr).toContain('WARDEN_TOKEN')
  })

  it('maps an unknown grant field to invalid_request, exit 2', async () => {
    const result = await cli(['token', 'grant', hello, '--grants', '{"log":true,"nope":1}'])
    expect(result.code).toBe(2)
    expect(result.stderr).toBe('error: invalid_request: grants: Unrecognized key: "nope"\n')
    expect(result.stdout).toBe('')
    const notJson = await cli(['token', 'grant', hello, '--grants', '{log:true}'])
    expect(notJson.stderr).toBe('error: invalid_request: --grants is not valid JSON\n')
  })

  it('still runs locally without a token', async () => {
    const result = await cli(['run', hello, '--input', '{"b":2}'])
    expect(result.stdout).toBe('{"b":2}\n')
    expect(result.code).toBe(0)
  })
})

describe('warden token attenuate / revoke / inspect', () => {
  it('attenuates from stdin; a wider child is forbidden, exit 1', async () => {
    const token = await grant()
    const child = await cli(['token', 'attenuate', '-', '--grants', '{}', '--ttl', '60', '-q'], {
      stdin: token,
    })
    expect(child.code).toBe(0)
    expect(child.stdout.trim()).toMatch(TOKEN)

    const grants = '{"log":true,"http":[{"host":"a.example"}]}'
    const wider = await cli(['token', 'attenuate', token, '--grants', grants])
    expect(wider.code).toBe(1)
    expect(wider.stderr).toMatch(/^error: forbidden: grants\.http\[0\]/)
  })

  it('revokes a token: running with it fails with token_revoked, exit 1', async () => {
    const token = await grant()
    const inspected = await cli(['token', 'inspect', token])
    expect(inspected.stderr).toContain('UNVERIFIED')
    const shown = JSON.parse(inspected.stdout)
    expect(shown.verified).toBe(false)
    expect(inspected.stdout).not.toContain(token.split('.')[2])

    expect((await cli(['token', 'revoke', shown.claims.jti])).code).toBe(0)
    const run = await cli(['run', hello, '--token', token])
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^error: token_revoked: /)
    expect((await cli(['token', 'revoke', 'x'])).code).toBe(2)
  })
})

describe('warden keys / secret / data', () => {
  it('lists and rotates keys and prints the JWKS', async () => {
    await grant()
    const rotated = await cli(['signing-keys', 'rotate'])
    const kid = rotated.stdout.trim()
    const list = await cli(['signing-keys', 'list'])
    expect(list.stdout.split('\n')[0]).toMatch(new RegExp(`^${kid}  \\S+  signing$`))
    const jwks = JSON.parse((await cli(['signing-keys', 'jwks'])).stdout)
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toContain(kid)
  })

  it('sets a secret from stdin or --from-env; list shows names, never values', async () => {
    const set = await cli(['secret', 'set', 'db_password'], { stdin: 'pa55-w0rd-xyz\n' })
    expect(set.code).toBe(0)
    const fromEnv = await cli(['secret', 'set', 'other_key', '--from-env', 'K'], {
      env: { K: 'env-value-123' },
    })
    expect(fromEnv.code).toBe(0)
    const list = await cli(['secret', 'list'])
    expect(list.stdout).toMatch(/^db_password\t\S+\nother_key\t\S+\n$/)
    expect(list.stdout + list.stderr).not.toMatch(/pa55|env-value/)
    expect((await cli(['secret', 'delete', 'other_key'])).code).toBe(0)
    expect((await cli(['secret', 'delete', 'other_key'])).code).toBe(1)
    // A name checked before the value is read: nothing typed is wasted.
    expect((await cli(['secret', 'set', 'Bad-Name'], { stdin: 'x' })).code).toBe(2)
  })

  it('puts a document (inline, @file) and sets a schema', async () => {
    expect((await cli(['data', 'put', 'crm', 'contacts/alice', '{"email":"a@x"}'])).code).toBe(0)
    const file = join(dataDir, 'doc.json')
    await writeFile(file, '{"email":"b@x"}\n')
    expect((await cli(['data', 'put', 'crm', 'contacts/bob', `@${file}`])).code).toBe(0)
    expect((await cli(['data', 'put', 'crm', 'contacts/bob', '{'])).code).toBe(2)
    expect((await cli(['data', 'schema', 'crm', '--pii', 'email'])).code).toBe(0)
  })
})

describe('commander wiring', () => {
  it('throws a CommanderError for a missing option; runCli makes it exit 2', async () => {
    await expect(cli(['token', 'grant', hello])).rejects.toBeInstanceOf(CommanderError)
    let code: number | undefined
    let stderr = ''
    await runCli(
      {
        stdout: () => undefined,
        stderr: (text) => void (stderr += text),
        readStdin: async () => '',
        env: {},
        setExitCode: (c) => void (code = c),
      },
      ['token', 'grant', hello],
    )
    expect(code).toBe(2)
    expect(stderr).toContain("required option '--grants <json|@file|->' not specified")
  })

  it('prints help on stdout with exit code 0', async () => {
    let code: number | undefined
    let stdout = ''
    await runCli(
      {
        stdout: (text) => void (stdout += text),
        stderr: () => undefined,
        readStdin: async () => '',
        env: {},
        setExitCode: (c) => void (code = c),
      },
      ['secret', 'set', '--help'],
    )
    expect(code).toBe(0)
    expect(stdout).toContain('never taken from an argument')
  })
})

describe('warden audit', () => {
  it('tails records as JSON lines', async () => {
    const result = await cli(['audit', 'tail', '--limit', '3'])
    const lines = result.stdout.trim().split('\n')
    expect(lines).toHaveLength(3)
    const seqs = lines.map((line) => JSON.parse(line).seq as number)
    expect(seqs[1]! - seqs[0]!).toBe(1)
    const app = await cli(['audit', 'tail', '--app', 'hello', '-n', '10000'])
    expect(
      app.stdout
        .trim()
        .split('\n')
        .every((l) => JSON.parse(l).appId === 'hello'),
    ).toBe(true)
  })

  // Last: it corrupts the log.
  it('verifies the log; after a byte is edited, exit 1 and the first bad seq', async () => {
    const ok = await cli(['audit', 'verify'])
    expect(ok.code).toBe(0)
    const [summary, checkpoint, end] = ok.stdout.split('\n')
    expect(summary).toMatch(/^ok: \d+ records, last seq \d+, last hash [0-9a-f]{64}$/)
    expect(checkpoint).toMatch(/^last signed checkpoint: seq \d+ at /)
    expect(end).toBe('')

    const file = auditLogFile(dataDir)
    const text = await readFile(file, 'utf8')
    const lineStart = text.split('\n').slice(0, 4).join('\n').length + 1
    const at = text.indexOf('"decision":"', lineStart) + 12
    const edited = text[at] === 'a' ? 'd' : 'a'
    await writeFile(file, `${text.slice(0, at)}${edited}${text.slice(at + 1)}`)

    const bad = await cli(['audit', 'verify'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toBe('first bad seq 5 (hash-mismatch)\n')
  })
})
