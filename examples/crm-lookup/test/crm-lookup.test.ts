/**
 * crm-lookup in Warden's real sandbox: PII masked without the `pii` grant and shown with it,
 * keys outside the granted prefix denied by the host, data escaped in the page.
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestApp } from 'warden/testing'
import type { TestApp } from 'warden/testing'
import type { CliIo } from '../../../sdk/cli/io.js'
import { runCli } from '../../../sdk/cli/program.js'

const dir = new URL('..', import.meta.url)
const fixture = async (key: string) =>
  JSON.parse(await readFile(new URL(`fixtures/crm/${key}.json`, dir), 'utf8')) as unknown

let masked: TestApp
let unmasked: TestApp

beforeAll(async () => {
  const data = {
    crm: {
      'contacts/alice': await fixture('contacts/alice'),
      'contacts/bob': await fixture('contacts/bob'),
      'notes/alice': await fixture('notes/alice'),
    },
  }
  const pii = { crm: ['email', 'phone'] }
  masked = await openTestApp(dir, { data, pii })
  unmasked = await openTestApp(dir, {
    build: masked.build,
    data,
    pii,
    grants: { log: true, data: [{ collection: 'crm', prefix: 'contacts', pii: true }] },
  })
  // A cold build (componentize-js, then the loader) takes minutes on a busy machine.
}, 900_000)

afterAll(async () => {
  await masked?.close()
  await unmasked?.close()
})

describe('crm-lookup', () => {
  it('declares data and log: medium risk (high on a server with PII collections)', () => {
    expect(masked.build.capabilities.sort()).toEqual([
      'warden:platform/data',
      'warden:platform/log',
    ])
    expect(masked.build.risk.tier).toBe('medium')
  })

  it('masks personal data without the pii grant', async () => {
    const res = await masked.request('GET', '/api/contacts/alice')
    expect(res.status).toBe(200)
    expect(res.json()).toEqual({
      id: 'alice',
      name: 'Alice Martin',
      company: 'Acme',
      email: '[pii]',
      phone: '[pii]',
    })
    expect(res.text()).not.toContain('alice@acme.example')
  })

  it('shows personal data with the pii grant', async () => {
    const res = await unmasked.request('GET', '/api/contacts/alice')
    expect(res.json()).toMatchObject({ email: 'alice@acme.example' })
  })

  it('lists the contacts as JSON and as an escaped HTML page', async () => {
    const list = await masked.request('GET', '/api/contacts')
    expect((list.json() as { id: string }[]).map((c) => c.id)).toEqual(['alice', 'bob'])
    const page = await masked.request('GET', '/')
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(page.text()).toContain('Bob &#60;b&#62;Stone&#60;/b&#62;')
    expect(page.text()).not.toContain('<b>')
  })

  it('is denied keys outside its prefix, and answers 403', async () => {
    const res = await masked.request('GET', '/api/notes/alice')
    expect(res.status).toBe(403)
    expect(res.text()).not.toContain('Renewal')
    expect(res.calls).toContainEqual(
      expect.objectContaining({ capability: 'data', fn: 'get', decision: 'deny' }),
    )
  })

  it('answers 404 for an unknown contact and 400 for a malformed id', async () => {
    expect((await masked.request('GET', '/api/contacts/zed')).status).toBe(404)
    expect((await masked.request('GET', '/api/contacts/..%2Fnotes%2Falice')).status).toBe(400)
  })
})

describe('warden dev serves it', () => {
  it('on a local port, printing each request and its host calls', async () => {
    const out = { stdout: '', stderr: '', code: -1 }
    let stop: () => void = () => {}
    const stopped = new Promise<void>((resolve) => {
      stop = resolve
    })
    const io: CliIo = {
      stdout: (t) => void (out.stdout += t),
      stderr: (t) => void (out.stderr += t),
      readStdin: async () => '',
      env: {},
      setExitCode: (c) => void (out.code = c),
      waitForStop: () => stopped,
    }
    const done = runCli(io, ['dev', fileURLToPath(dir), '--port', '0', '--no-watch'])
    const port = await new Promise<string>((resolve, reject) => {
      const poll = setInterval(() => {
        const found = /serving on http:\/\/127\.0\.0\.1:(\d+)\//.exec(out.stderr)
        if (found) {
          clearInterval(poll)
          resolve(found[1]!)
        } else if (out.code !== -1) {
          clearInterval(poll)
          reject(new Error(out.stderr))
        }
      }, 50)
    })
    try {
      const alice = await fetch(`http://127.0.0.1:${port}/api/contacts/alice`, {
        headers: { authorization: 'Bearer not-for-the-app' },
      })
      expect(alice.status).toBe(200)
      expect(await alice.json()).toMatchObject({ name: 'Alice Martin', email: '[pii]' })
      const notes = await fetch(`http://127.0.0.1:${port}/api/notes/alice`)
      expect(notes.status).toBe(403)
    } finally {
      stop()
      await done
    }
    expect(out.code).toBe(0)
    // Each host call is printed as it is decided, prefixed by its request, then the answer.
    expect(out.stderr).toMatch(
      /GET \/api\/contacts\/alice {2}✓ allow data\.get crm\/contacts\/alice.*\nGET \/api\/contacts\/alice → 200/,
    )
    expect(out.stderr).toMatch(/GET \/api\/notes\/alice → 403/)
    expect(out.stderr).toMatch(/GET \/api\/notes\/alice {2}✗ deny {2}data\.get crm\/notes\/alice/)
  })
})
