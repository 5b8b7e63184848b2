/**
 * issue-triage in Warden's real sandbox, its GitHub API scripted by `warden/testing` (no
 * network): the token reaches the scripted API in the Authorization header and never the app;
 * another API is denied by the grant before any answer is looked up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestApp } from 'warden/testing'
import type { TestApp } from 'warden/testing'

const TOKEN = 'ghp_test_0123456789abcdef'
const LABELS = 'GET https://api.github.com/repos/acme/widgets/labels'
let app: TestApp

beforeAll(async () => {
  app = await openTestApp(new URL('..', import.meta.url), {
    secrets: { github_token: TOKEN },
    // The manifest's own origin: Warden's checks run, then this table answers.
    http: {
      [LABELS]: { json: [{ name: 'bug' }, { name: 'documentation' }, { name: 'performance' }] },
      'https://api.github.com/repos/acme/gone/labels': {
        status: 404,
        json: { message: 'Not Found' },
      },
    },
  })
  // A cold build (componentize-js, then the loader) takes minutes on a busy machine.
}, 900_000)

afterAll(async () => {
  await app?.close()
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
      repo: 'acme/widgets',
      issue: { title: 'Crash on start', body: 'It is slow, then it fails with an error.' },
    })
    expect(run.error).toBeUndefined()
    expect(run.output).toEqual({ suggested: ['bug', 'performance'], considered: 3 })
    expect(run.calls.filter((c) => c.capability === 'http')).toEqual([
      expect.objectContaining({ fn: 'fetch', decision: 'allow' }),
    ])
  })

  it('sends the token to the API only: the app and its outputs never see it', async () => {
    const run = await app.run({ repo: 'acme/widgets', issue: { title: 'x' } })
    const seen = app.httpRequests.at(-1)
    expect(seen?.url).toBe('https://api.github.com/repos/acme/widgets/labels?per_page=100')
    expect(seen?.headers.authorization).toBe(`Bearer ${TOKEN}`)
    const everything = JSON.stringify([run.output, run.logs, run.calls])
    expect(everything).not.toContain(TOKEN)
    expect(everything).not.toContain('ghp_')
  })

  it('says so when the API answers an error', async () => {
    const run = await app.run({ repo: 'acme/gone', issue: {} })
    expect(run.guestError).toBe('GitHub answered 404')
  })

  it('is denied an API the grant does not name, and says so', async () => {
    const before = app.httpRequests.length
    const run = await app.run({
      api: 'https://gitlab.example.com',
      repo: 'acme/widgets',
      issue: {},
    })
    expect(run.ok).toBe(false)
    expect(run.guestError).toMatch(/^cannot fetch labels: denied: /)
    expect(run.calls).toContainEqual(
      expect.objectContaining({ capability: 'http', decision: 'deny' }),
    )
    expect(app.httpRequests.length).toBe(before)
  })

  it('refuses a repo that is not owner/name before any call', async () => {
    const run = await app.run({ repo: '../../user', issue: {} })
    expect(run.guestError).toBe('repo must be "owner/name"')
    expect(run.calls).toEqual([])
  })
})
