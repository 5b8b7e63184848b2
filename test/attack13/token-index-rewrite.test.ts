/**
 * Attack 13: one token holder makes the host serialise every tenant's token index, per request.
 *
 * The file token index (`control-plane/token-index.ts` over `json-file.ts`) keeps every granted
 * and attenuated token of the deployment (up to 100,000) in one document, and every `add`
 * re-serialises the whole document (`JSON.stringify(data, null, 2)`, on the main thread) and
 * rewrites `tokens.json`. `POST /v1/tokens/attenuate` is open to any capability token holder, at
 * the family's budget (500 a second by default), and each one adds an entry. The twelfth round
 * bounded what one family keeps (~1.3 MB); what one attenuation costs is the size of the whole
 * index, which is everyone else's tokens. Measured with 20,000 other tokens (17.8 MB of
 * `tokens.json`): one attenuation made `JSON.stringify` produce 17.8 M characters; a separate
 * process with 8 connections (~9 attenuations a second, 2 % of the family's budget) had the host
 * write ~640 MB in 4 s, and another tenant's attenuation went from 90–130 ms to ~1 s (its write
 * waits behind the attacker's in the one write chain). Runs were not slowed.
 *
 * Fixed: the file index is a log, `tokens.jsonl` (`control-plane/token-file.ts`): a save appends
 * its own entries, and the log is rewritten whole only when it holds twice as many lines as
 * entries. (This test writes a `tokens.json` of the earlier format, which the server reads once
 * and replaces.)
 *
 * What this checks, deterministically: the characters `JSON.stringify` produced while serving
 * one attenuation (a ~1 KB answer and a ~1 KB entry), against 1 MiB. The effect on a benign
 * tenant while a separate process attenuates is printed.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminKeyPath, startServer } from '../../control-plane/index.js'
import type { RunningServer } from '../../control-plane/index.js'
import { resolveHostConfig } from '../../runtime/index.js'
import { WardenClient } from '../../sdk/client/index.js'
import { attenuate, attenuationFlood } from '../support/attenuation-flood.js'
import { compileWat } from '../support/wat.js'

const OTHER_TOKENS = 20_000

let dataDir: string
let server: RunningServer
let admin: WardenClient

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-a13-tokens-'))
  // Other tenants' tokens, as a busy deployment's index holds them (granted by an admin).
  const now = Math.floor(Date.now() / 1000)
  const tokens = Array.from({ length: OTHER_TOKENS }, (_, i) => {
    const jti = randomUUID()
    return {
      jti,
      appId: `app-${(i % 50).toString(16).padStart(16, '0')}`,
      digest: `sha256:${'ab'.repeat(32)}`,
      root: jti,
      grants: {
        log: true,
        data: [{ collection: 'crm', prefix: `tenant-${i}/` }],
        http: [
          {
            scheme: 'https',
            host: 'api.example.com',
            port: 443,
            methods: ['GET'],
            pathPrefix: `/t/${i}/`,
          },
        ],
      },
      limits: { fuel: 1e9, memoryMb: 64, timeoutMs: 5000, hostCalls: 1000 },
      iat: now,
      exp: now + 30 * 86_400,
      grantedBy: 'key:0123456789abcdef',
    }
  })
  await writeFile(
    join(dataDir, 'tokens.json'),
    `${JSON.stringify({ version: 1, tokens }, null, 2)}\n`,
    {
      mode: 0o600,
    },
  )
  const config = { ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir }), poolSize: 2 }
  server = await startServer({ config, port: 0, host: '127.0.0.1', log: () => {} })
  admin = new WardenClient({
    server: server.url,
    key: (await readFile(adminKeyPath(dataDir), 'utf8')).trim(),
  })
}, 120_000)

afterAll(async () => {
  await server?.close()
  await rm(dataDir, { recursive: true, force: true })
})

describe('the token index under attenuation', () => {
  it("one attenuation does not serialise every tenant's tokens", async () => {
    const wat = await readFile(new URL('../../examples/hello/hello.wat', import.meta.url), 'utf8')
    const { app } = await admin.upload(await compileWat(wat), {
      name: 'hello',
      owner: 'qa',
      purpose: 'a13',
    })
    const attacker = (
      await admin.grantToken({ app: app.id, grants: { log: true }, ttlSeconds: 600 })
    ).token
    const victim = (await admin.grantToken({ app: app.id, grants: { log: true }, ttlSeconds: 600 }))
      .token
    console.log(
      `tokens.jsonl: ${((await stat(join(dataDir, 'tokens.jsonl'))).size / 1e6).toFixed(1)} MB`,
    )

    let produced = 0
    const original = JSON.stringify
    JSON.stringify = ((...args: Parameters<typeof original>) => {
      const out = original(...args)
      produced += typeof out === 'string' ? out.length : 0
      return out
    }) as typeof original
    let status: number
    try {
      status = await attenuate(server.url, attacker)
    } finally {
      JSON.stringify = original
    }
    console.log(
      `one attenuation: ${status}, JSON.stringify produced ${(produced / 1e6).toFixed(2)} M characters`,
    )
    expect(status).toBe(201)

    console.log(await attenuationFlood(server.url, app.id, attacker, victim))
    expect(produced).toBeLessThan(1024 * 1024)
  }, 300_000)
})
