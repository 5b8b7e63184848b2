/**
 * `warden/testing`'s scripted http: the guest's real calls go through Warden's own checks (the
 * grant, the secrets binding and its injection, the redaction of the answer), and only what
 * passes reaches the script; no socket is opened. Guests: the platform-caller WAT (any call by
 * its input) and the componentize-js platform app (a secret placeholder in its header).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildJsGuest, PLATFORM_GUEST_WORLD } from '../../test/support/js-guest.js'
import { platformCaller } from '../../test/support/platform-guest.js'
import type { BuildResult } from '../author/build.js'
import { parseManifest } from '../author/manifest.js'
import { hostCalls, openTestApp } from './index.js'
import type { HttpScript, ScriptedHttpRequest, TestApp } from './index.js'

const SECRET = 'sk-scripted-0123456789abcdef'
let dir: string
const opened: TestApp[] = []

/** A build of `bytes` under a manifest: the WAT and JS guests are built by the test support. */
function fakeBuild(bytes: Uint8Array, grants: Record<string, unknown>): BuildResult {
  const manifest = parseManifest({
    name: 'scripted',
    kind: 'action',
    owner: 'tests',
    purpose: 'scripted http',
    capabilities: ['http', 'secrets', 'data', 'log'],
    grants,
  })
  return { manifest, bytes } as BuildResult
}

async function open(bytes: Uint8Array, grants: Record<string, unknown>, http: HttpScript) {
  const app = await openTestApp(dir, {
    build: fakeBuild(bytes, grants),
    secrets: { api_key: SECRET },
    http,
  })
  opened.push(app)
  return app
}

/** One run of the WAT guest: its input and output are text, not JSON. */
async function call(app: TestApp, input: string) {
  const invocation = await app.host.run(input)
  return { output: String(invocation.output), calls: hostCalls(invocation) }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-testing-'))
})

afterAll(async () => {
  await Promise.all(opened.map((app) => app.close()))
  await rm(dir, { recursive: true, force: true })
})

describe('scripted http, by table', () => {
  const grants = { http: [{ url: 'https://api.example.com/v1/', methods: ['GET'] }] }
  let app: TestApp
  let scriptCalls = 0

  beforeAll(async () => {
    app = await open(await platformCaller(), grants, {
      'GET https://api.example.com/v1/labels': { json: [{ name: 'bug' }] },
      'https://api.example.com/v1/count': () => {
        scriptCalls++
        return { status: 201, body: 'counted' }
      },
    })
  }, 120_000)

  it('answers an allowed call from the table, and records what reached it', async () => {
    const run = await call(app, 'fetch|GET|https://api.example.com/v1/labels?page=2')
    expect(run.output).toBe('ok 200 [{"name":"bug"}]')
    expect(app.httpRequests.at(-1)).toMatchObject({
      method: 'GET',
      url: 'https://api.example.com/v1/labels?page=2',
    })
    expect(run.calls).toEqual([
      expect.objectContaining({ capability: 'http', fn: 'fetch', decision: 'allow' }),
    ])
  })

  it('answers from a function entry, any method the grant allows', async () => {
    const run = await call(app, 'fetch|GET|https://api.example.com/v1/count')
    expect(run.output).toBe('ok 201 counted')
    expect(scriptCalls).toBe(1)
  })

  it('denies a host the grant does not name: the script never sees the call', async () => {
    const before = app.httpRequests.length
    const run = await call(app, 'fetch|GET|https://evil.example.net/v1/labels')
    expect(run.output).toMatch(/^err 0 /)
    expect(run.calls).toEqual([expect.objectContaining({ capability: 'http', decision: 'deny' })])
    // A method and a path outside the grant, too.
    expect((await call(app, 'fetch|POST|https://api.example.com/v1/labels')).output).toMatch(
      /^err 0 /,
    )
    expect((await call(app, 'fetch|GET|https://api.example.com/admin')).output).toMatch(/^err 0 /)
    expect(app.httpRequests.length).toBe(before)
  })

  it('answers a call the script does not know with a clear upstream error', async () => {
    const run = await call(app, 'fetch|GET|https://api.example.com/v1/unknown')
    // Tag 3 is `upstream`: an allowed call whose upstream failed.
    expect(run.output).toBe(
      "err 3 the test's script has no answer for GET https://api.example.com/v1/unknown",
    )
    expect(run.calls).toEqual([
      expect.objectContaining({ decision: 'allow', reason: expect.stringMatching(/^upstream: /) }),
    ])
  })

  it('refuses a table key that is not [METHOD ]URL', async () => {
    await expect(open(await platformCaller(), grants, { 'GET /labels': {} })).rejects.toThrow(
      TypeError,
    )
  })
})

describe('scripted http, by function, with a secret', () => {
  const grants = {
    http: ['https://api.example.com/'],
    secrets: ['api_key@api.example.com'],
  }
  const seen: ScriptedHttpRequest[] = []
  let app: TestApp

  beforeAll(async () => {
    app = await open(await buildJsGuest('platform', PLATFORM_GUEST_WORLD), grants, (req) => {
      seen.push(req)
      // Echo the header back: the answer is redacted before the guest reads it.
      return req.url.endsWith('/unknown')
        ? undefined
        : { body: `auth=${req.headers.authorization}` }
    })
  }, 300_000)

  it('injects the secret into what the script receives; the guest never sees it', async () => {
    const run = await app.run({ url: 'https://api.example.com/me' })
    expect(seen).toHaveLength(1)
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${SECRET}`)
    expect(app.httpRequests).toEqual(seen)
    const output = run.output as { http: { ok?: { status: number; body: string } } }
    expect(output.http.ok?.status).toBe(200)
    expect(output.http.ok?.body).toMatch(/^auth=Bearer /)
    expect(JSON.stringify([run.output, run.logs, run.calls])).not.toContain(SECRET)
  })

  it('denies a host outside the grant before the function; undefined is a clear error', async () => {
    type Out = { http: { err?: { tag: string; val: string } } }
    const denied = await app.run({ url: 'https://api.example.com.evil.test/' })
    expect((denied.output as Out).http.err?.tag).toBe('denied')
    expect(seen).toHaveLength(1)
    const unknown = await app.run({ url: 'https://api.example.com/unknown' })
    expect((unknown.output as Out).http.err).toEqual({
      tag: 'upstream',
      val: "the test's script has no answer for GET https://api.example.com/unknown",
    })
  })
})
