/**
 * `warden dev` prints each host call as it is decided, not when the run ends: the dev host's
 * per-run `onHostCall` hears a broker call, and a log line the sandbox answers itself, while the
 * guest still runs. The proof needs no clock: the guest's next call goes to an upstream that
 * holds its answer until the listener has heard the earlier one; were it reported only at the
 * end, the held call would time out. The sandbox reports at most the run's `logLines` (5 here)
 * of its own calls live, and nothing for a run without a listener.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Decision, GrantsInput } from '../../runtime/index.js'
import type { SandboxPool } from '../../runtime/sandbox/pool.js'
import { platformCaller } from '../../test/support/platform-guest.js'
import { formatHostCall } from '../cli/author.js'
import { openDevHost } from './dev-host.js'
import type { DevHost } from './dev-host.js'
import { parseManifest } from './manifest.js'

const SECRET = 'sk-dev-live-0123456789'
/** The dev token's log line budget: also the most decisions the sandbox reports live a run. */
const LOG_LINES = 5
let dir: string
let server: Server
let origin: string
let host: DevHost
/** What happened, in order: heard by the listener, or answered by the upstream. */
let events: string[] = []
/** Resolved when the listener has heard the first call; the held answer waits for it. */
let heardFirst = deferred()

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {}
  const promise = new Promise<void>((done) => {
    resolve = done
  })
  return { promise, resolve }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-dev-live-'))
  server = createServer(async (req, res) => {
    if (req.url === '/ok/held') {
      await heardFirst.promise
    }
    events.push(`upstream answered ${req.url}`)
    res.end('fine')
  })
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready))
  const { port } = server.address() as AddressInfo
  origin = `http://127.0.0.1:${port}`
  const grants: GrantsInput = {
    http: [
      {
        scheme: 'http',
        host: '127.0.0.1',
        port,
        methods: ['GET'],
        pathPrefix: '/ok/',
        allowPrivate: true,
      },
    ],
    secrets: [{ name: 'api_key', hosts: [], reveal: true }],
    log: true,
  }
  host = await openDevHost({
    dir,
    manifest: parseManifest({ name: 'live', kind: 'action', owner: 'me', purpose: 'tests' }),
    secrets: { api_key: SECRET },
    data: {},
    pii: {},
    grants,
    limits: { logLines: LOG_LINES },
  })
  await host.load(await platformCaller())
}, 120_000)

afterAll(async () => {
  await host?.close()
  server?.closeAllConnections()
  await new Promise((done) => server?.close(done))
  await rm(dir, { recursive: true, force: true })
})

describe('host calls as they happen', () => {
  it('reports a call before the run ends: the held upstream waits for the first line', async () => {
    events = []
    heardFirst = deferred()
    const lines: string[] = []
    const run = await host.run(`fetch|GET|${origin}/ok/first|fetch|GET|${origin}/ok/held`, {
      onHostCall(decision) {
        lines.push(formatHostCall(decision))
        events.push(`heard ${decision.target ?? ''}`)
        if (decision.target?.includes('/ok/first')) {
          heardFirst.resolve()
        }
      },
    })
    expect(run.output).toBe('ok 200 fine\nok 200 fine')
    expect(events).toEqual([
      'upstream answered /ok/first',
      expect.stringMatching(/^heard GET http:\/\/127\.0\.0\.1:\d+\/ok\/first/),
      'upstream answered /ok/held',
      expect.stringMatching(/^heard GET http:\/\/127\.0\.0\.1:\d+\/ok\/held/),
    ])
    expect(lines[0]).toMatch(/✓ allow http\.fetch GET http:\/\/127\.0\.0\.1:\d+\/ok\/first/)
  })

  it('reports a denial with its reason, and tells each call of the run exactly once', async () => {
    const heard: Decision[] = []
    const run = await host.run(
      `fetch|GET|${origin}/admin|hmac|other_key|x|get|crm|contacts/alice`,
      { onHostCall: (d) => heard.push(d) },
    )
    expect(heard.map((d) => d.call)).toEqual(run.decisions.map((d) => d.call))
    expect(heard[0]).toMatchObject({ fn: 'fetch', decision: 'deny' })
    expect(heard[0]?.reason).toMatch(/^denied: /)
    expect(heard[1]).toMatchObject({ fn: 'hmacSha256', decision: 'deny' })
    // data is not granted at all: the sandbox refuses it without a round trip, and reports it.
    expect(heard[2]).toMatchObject({ fn: 'get', decision: 'deny', reason: 'not granted' })
  })

  it('redacts a secret from what the listener hears', async () => {
    const heard: Decision[] = []
    // The guest reveals the secret, then puts it in a URL: the audit target must not carry it.
    const run = await host.run(`reveal|api_key|fetch|GET|${origin}/ok/${SECRET}`, {
      onHostCall: (d) => heard.push(d),
    })
    expect(run.decisions).toHaveLength(2)
    expect(JSON.stringify(heard)).not.toContain(SECRET)
  })

  it('reports a log line while the guest waits in its next call', async () => {
    events = []
    heardFirst = deferred()
    const lines: string[] = []
    const run = await host.run(`log|hello from the guest|fetch|GET|${origin}/ok/held`, {
      onHostCall(decision) {
        lines.push(formatHostCall(decision))
        events.push(`heard ${decision.fn} ${decision.target ?? ''}`)
        if (decision.capability === 'warden:platform/log') {
          heardFirst.resolve()
        }
      },
    })
    expect(run.output).toBe('ok\nok 200 fine')
    expect(events).toEqual([
      'heard write info',
      'upstream answered /ok/held',
      expect.stringMatching(/^heard fetch GET http:\/\/127\.0\.0\.1:\d+\/ok\/held/),
    ])
    expect(lines[0]).toMatch(/✓ allow log\.write info/)
    expect(run.logs).toEqual([{ level: 'info', message: 'hello from the guest' }])
  })

  it('a flood of log lines posts no more than the log budget live, and each call is told once', async () => {
    const pool = livePool()
    const before = pool.liveDecisions
    const heard: Decision[] = []
    const run = await host.run(`many|40|again|fetch|GET|${origin}/ok/first|many|3|late`, {
      onHostCall: (d) => heard.push(d),
    })
    expect(run.decisions).toHaveLength(44)
    expect(run.logs).toHaveLength(LOG_LINES)
    // Only the first LOG_LINES of the sandbox's own calls crossed during the run; the dev host
    // told the rest when it ended. Each call once, and the live ones first.
    expect(pool.liveDecisions - before).toBe(LOG_LINES)
    expect(heard.map((d) => d.call).slice(0, LOG_LINES)).toEqual([1, 2, 3, 4, 5])
    expect(heard.map((d) => d.call).sort((a, b) => a - b)).toEqual(run.decisions.map((d) => d.call))
    expect(heard.find((d) => d.call === 41)).toMatchObject({ fn: 'fetch', decision: 'allow' })
    expect(heard.find((d) => d.call === 44)).toMatchObject({
      decision: 'deny',
      reason: 'log budget spent',
    })
  })

  it('a run without a listener makes the sandbox post nothing live', async () => {
    const pool = livePool()
    const before = pool.liveDecisions
    const quiet = await host.run('log|quiet|many|3|quiet')
    expect(quiet.decisions).toHaveLength(4)
    expect(pool.liveDecisions).toBe(before)
    // The same run with a listener: the sandbox's four calls cross as they are made.
    await host.run('log|quiet|many|3|quiet', { onHostCall: () => {} })
    expect(pool.liveDecisions).toBe(before + 4)
  })

  it('a listener that throws changes nothing in the run', async () => {
    const run = await host.run(`fetch|GET|${origin}/ok/first`, {
      onHostCall() {
        throw new Error('observer bug')
      },
    })
    expect(run.output).toBe('ok 200 fine')
  })
})

/** The dev host's thread pool (the dev host runs in the default isolation). */
function livePool(): SandboxPool {
  return host.warden.runtime.pool as SandboxPool
}
