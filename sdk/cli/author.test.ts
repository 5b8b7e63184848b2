/**
 * The author's commands in-process: init (and its refusals), the errors of build and deploy
 * before any build, how host calls and progress are printed, and the dev server's header rules.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Invocation } from '../../runtime/index.js'
import { toHttpResponse, toIncomingRequest } from '../author/dev-server.js'
import { formatHostCall, progressPrinter, startWatching } from './author.js'
import type { CliIo } from './io.js'
import { runCli } from './program.js'

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-author-cli-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function cli(args: string[], env: Record<string, string> = {}) {
  const out = { stdout: '', stderr: '', code: undefined as number | undefined }
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

describe('warden init', () => {
  it('scaffolds an action with a manifest, source, test, README and .gitignore', async () => {
    const app = join(dir, 'greeter')
    const run = await cli(['init', app])
    expect(run.code).toBe(0)
    const manifest = JSON.parse(await readFile(join(app, 'warden.json'), 'utf8'))
    expect(manifest).toMatchObject({ name: 'greeter', kind: 'action', capabilities: ['log'] })
    expect(await readFile(join(app, '.gitignore'), 'utf8')).toMatch(/^warden\.secrets\.json$/m)
    expect(await readFile(join(app, 'test', 'app.test.ts'), 'utf8')).toContain('warden/testing')
    expect(await readFile(join(app, 'src', 'index.ts'), 'utf8')).toContain("from 'warden:app'")
  })

  it('scaffolds a micro-app', async () => {
    const app = join(dir, 'pages')
    expect((await cli(['init', app, '--kind', 'micro-app'])).code).toBe(0)
    expect(await readFile(join(app, 'src', 'index.ts'), 'utf8')).toContain('export function handle')
  })

  it('refuses a folder that is not empty, unless --force', async () => {
    const app = join(dir, 'taken')
    await cli(['init', app])
    await writeFile(join(app, 'src', 'index.ts'), '// mine')
    const refused = await cli(['init', app])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/error: invalid_request: .* is not empty/)
    expect(await readFile(join(app, 'src', 'index.ts'), 'utf8')).toBe('// mine')
    expect((await cli(['init', app, '--force'])).code).toBe(0)
  })

  it('refuses an unknown kind and a name that is not a DNS label', async () => {
    expect((await cli(['init', join(dir, 'k'), '--kind', 'daemon'])).code).toBe(2)
    expect((await cli(['init', join(dir, 'Bad_Name')])).stderr).toMatch(/not an app name/)
  })
})

describe('warden build and deploy, before any build', () => {
  it('names the missing manifest', async () => {
    const run = await cli(['build', dir])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/no warden\.json in/)
  })

  it('names the first bad field of the manifest', async () => {
    const app = join(dir, 'bad')
    await cli(['init', app])
    const manifest = JSON.parse(await readFile(join(app, 'warden.json'), 'utf8'))
    await writeFile(join(app, 'warden.json'), JSON.stringify({ ...manifest, capabilities: ['fs'] }))
    const run = await cli(['build', app])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/warden\.json\.capabilities\[0\]/)
  })

  it('deploy needs a server', async () => {
    const run = await cli(['deploy', dir])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/deploy talks to a server/)
  })
})

describe('what dev prints', () => {
  it('prints a host call with its decision and reason, terminal-safe', () => {
    expect(
      formatHostCall({
        call: 1,
        capability: 'warden:platform/http',
        fn: 'fetch',
        decision: 'deny',
        reason: 'denied: host evil.example not allowed',
        target: 'GET https://evil.example/\u001b[2J',
      }),
    ).toBe(
      '  ✗ deny  http.fetch GET https://evil.example/\\u001b[2J (denied: host evil.example not allowed)',
    )
  })

  it('prints one line per build step when stderr is not a terminal', () => {
    let text = ''
    const progress = progressPrinter({ stderr: (t: string) => void (text += t) } as CliIo)
    progress.step('typecheck')
    progress.step('cache-hit', 'abc')
    progress.step('done')
    expect(text).toBe(
      'warden: type-checking\nwarden: unchanged: the component comes from the cache (abc)\n',
    )
  })
})

describe("the dev server's mapping (the control plane's rules)", () => {
  const serve = async (answer: Invocation['output'], headers: Record<string, string> = {}) => {
    let seen: Awaited<ReturnType<typeof toIncomingRequest>> | undefined
    const server = createServer(async (req, res) => {
      seen = await toIncomingRequest(req)
      toHttpResponse({ ok: true, output: answer } as Invocation, res)
    })
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready))
    const { port } = server.address() as AddressInfo
    const response = await new Promise<{ status: number; headers: Record<string, unknown> }>(
      (done, fail) => {
        const req = request(
          { port, host: '127.0.0.1', path: '/a/b?x=1', method: 'POST', headers },
          (res) => {
            res.resume()
            res.on('end', () => done({ status: res.statusCode!, headers: res.headers }))
          },
        )
        req.on('error', fail)
        req.end('body')
      },
    )
    server.close()
    return { seen: seen!, response }
  }

  it('hides credentials and hop-by-hop headers from the app', async () => {
    const { seen } = await serve(
      { status: 200, headers: [], body: new Uint8Array() },
      { authorization: 'Bearer admin-key', cookie: 's=1', 'x-ok': 'yes' },
    )
    expect(seen).toMatchObject({ method: 'POST', path: '/a/b', query: 'x=1' })
    const names = seen.headers.map((h) => h.name)
    expect(names).toContain('x-ok')
    expect(names).not.toContain('authorization')
    expect(names).not.toContain('cookie')
    expect(names).not.toContain('connection')
  })

  it('drops origin-wide and framing headers from the answer', async () => {
    const { response } = await serve({
      status: 201,
      headers: [
        { name: 'set-cookie', value: 'a=1' },
        { name: 'content-length', value: '999' },
        { name: 'x-app', value: 'kept' },
      ],
      body: new Uint8Array(),
    })
    expect(response.status).toBe(201)
    expect(response.headers['x-app']).toBe('kept')
    expect(response.headers['set-cookie']).toBeUndefined()
  })

  it('answers 502 for a header HTTP cannot carry, or a status out of range', async () => {
    const header = await serve({
      status: 200,
      headers: [{ name: 'x-a', value: 'a\r\nset-cookie: b=2' }],
      body: new Uint8Array(),
    })
    expect(header.response.status).toBe(502)
    const status = await serve({ status: 99, headers: [], body: new Uint8Array() })
    expect(status.response.status).toBe(502)
  })
})

describe('--watch', () => {
  it('rebuilds after a change to the app, not after the build writes .warden/', async () => {
    const app = join(dir, 'watched')
    await mkdir(join(app, 'src'), { recursive: true })
    await mkdir(join(app, '.warden'), { recursive: true })
    let changes = 0
    const stop = startWatching(app, async () => {
      changes += 1
    })
    try {
      await writeFile(join(app, '.warden', 'app.wasm'), 'built')
      await new Promise((r) => setTimeout(r, 600))
      expect(changes).toBe(0)
      await writeFile(join(app, 'src', 'index.ts'), 'export const run = () => 1')
      await expect.poll(() => changes, { timeout: 5000 }).toBe(1)
    } finally {
      stop()
    }
  })
})
