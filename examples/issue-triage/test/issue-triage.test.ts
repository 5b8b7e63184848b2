/**
 * issue-triage in Warden's real sandbox against a loopback "GitHub": the token reaches the
 * upstream in the Authorization header and never the app; another API is denied by the grant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestApp, startUpstream } from 'warden/testing'
import type { TestApp, Upstream } from 'warden/testing'

const TOKEN = 'ghp_test_0123456789abcdef'
let github: Upstream
let elsewhere: Upstream
let app: TestApp

beforeAll(async () => {
  github = await startUpstream((req) =>
    req.url.startsWith('/repos/acme/widgets/labels')
      ? { json: [{ name: 'bug' }, { name: 'documentation' }, { name: 'performance' }] }
      : { status: 404, json: { message: 'Not Found' } },
  )
  elsewhere = await startUpstream(() => ({ json: [] }))
  app = await openTestApp(new URL('..', import.meta.url), {
    secrets: { github_token: TOKEN },
    // The manifest grants api.github.com; here that origin is the loopback upstream.
    origins: { 'https://api.github.com': github.origin },
  })
  // A cold build (componentize-js, then the loader) takes minutes on a busy machine.
}, 900_000)

afterAll(async () => {
  await app?.close()
  await github?.close()
  await elsewhere?.close()
})

describe('issue-triage', () => {
  it('declares http, secrets and log: high risk (it holds a credential)', () => {
    expect(app.build.capabilities.sort()).toEqual([
      'warden:platform/http',
      'warden:platform/log',
      'warden:platform/secrets',
    ])
    expect(app.build.risk.tier).toBe('high')
  })

  it('suggests the labels the issue talks about', async () => {
    const run = await app.run({
      api: github.origin,
      repo: 'acme/widgets',
      issue: { title: 'Crash on start', body: 'It is slow, then it fails with an error.' },
    })
    expect(run.error).toBeUndefined()
    expect(run.output).toEqual({ suggested: ['bug', 'performance'], considered: 3 })
    expect(run.calls.filter((c) => c.capability === 'http')).toEqual([
      expect.objectContaining({ fn: 'fetch', decision: 'allow' }),
    ])
  })

  it('sends the token to the upstream only: the app and its outputs never see it', async () => {
    const before = github.requests.length
    const run = await app.run({ api: github.origin, repo: 'acme/widgets', issue: { title: 'x' } })
    const seen = github.requests[before]!
    expect(seen.headers.authorization).toBe(`Bearer ${TOKEN}`)
    const everything = JSON.stringify([run.output, run.logs, run.calls])
    expect(everything).not.toContain(TOKEN)
    expect(everything).not.toContain('ghp_')
  })

  it('is denied an API the grant does not name, and says so', async () => {
    const run = await app.run({ api: elsewhere.origin, repo: 'acme/widgets', issue: {} })
    expect(run.ok).toBe(false)
    expect(run.guestError).toMatch(/^cannot fetch labels: denied: /)
    expect(run.calls).toContainEqual(
      expect.objectContaining({ capability: 'http', decision: 'deny' }),
    )
    expect(elsewhere.requests).toEqual([])
  })

  it('refuses a repo that is not owner/name before any call', async () => {
    const run = await app.run({ api: github.origin, repo: '../../user', issue: {} })
    expect(run.guestError).toBe('repo must be "owner/name"')
    expect(run.calls).toEqual([])
  })
})
