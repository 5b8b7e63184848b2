/**
 * A run's output on its way out of the HTTP API (`control-plane/routes/run-app.ts`,
 * `outputJson`): JSON text goes into the answer as the guest wrote it, checked in one pass but
 * never parsed and serialised again on the server's main thread; anything else is a JSON
 * string; past 1 MiB the answer is `limit_exceeded`. Ninth outside attack: a 16 MB `[{},{},…]`
 * output held the main thread ~1.9 s per request (parse, then stringify), for every tenant.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminKeyPath, startServer } from '../control-plane/index.js'
import type { RunningServer } from '../control-plane/index.js'
import { MAX_JSON_DEPTH } from '../control-plane/json-text.js'
import { resolveHostConfig } from '../runtime/index.js'
import { actionWat, compileWat } from './support/wat.js'

/** `run`: answers `text` (ASCII), from a data segment. */
function answers(text: string, asError = false): string {
  const escaped = text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')
  return actionWat(`
  (data (i32.const 4096) "${escaped}")
  (func (export "run") (param i32 i32) (result i32)
    (call ${asError ? '$err' : '$ok'} (i32.const 4096) (i32.const ${text.length})))`)
}

/** `run`: answers "[{},{},…]" of `n` empty objects (3n+1 bytes), built by doubling copies. */
function manyObjects(n: number): string {
  return actionWat(`
  (func (export "run") (param i32 i32) (result i32)
    (local $len i32)
    (drop (memory.grow (i32.const 64)))
    (i32.store8 (i32.const 65536) (i32.const 91))
    (i32.store8 (i32.const 65537) (i32.const 123))
    (i32.store8 (i32.const 65538) (i32.const 125))
    (i32.store8 (i32.const 65539) (i32.const 44))
    (local.set $len (i32.const 3))
    (block $done (loop $double
      (br_if $done (i32.ge_u (local.get $len) (i32.const ${3 * n})))
      (memory.copy (i32.add (i32.const 65537) (local.get $len)) (i32.const 65537) (local.get $len))
      (local.set $len (i32.shl (local.get $len) (i32.const 1)))
      (br $double)))
    (i32.store8 (i32.add (i32.const 65536) (i32.const ${3 * n})) (i32.const 93))
    (call $ok (i32.const 65536) (i32.const ${3 * n + 1})))`)
}

let server: RunningServer
let dataDir: string
let adminKey: string

async function post(path: string, auth: string, body: unknown, type = 'application/json') {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${auth}`, 'content-type': type },
    body: type === 'application/json' ? JSON.stringify(body) : (body as BodyInit),
  })
  return { status: response.status, text: await response.text() }
}

/** Deploy `wat` as app `name` and grant a token for it. */
async function deploy(name: string, wat: string): Promise<string> {
  const query = new URLSearchParams({ name, owner: 'o', purpose: `testing ${name}` })
  const bytes = Buffer.from(await compileWat(wat))
  const up = await post(`/v1/apps?${query}`, adminKey, bytes, 'application/wasm')
  expect(up.status, up.text).toBe(201)
  const minted = await post('/v1/tokens', adminKey, { app: name, ttlSeconds: 600 })
  expect(minted.status, minted.text).toBe(201)
  return JSON.parse(minted.text).token
}

/** The same run through both routes that answer a run's output. */
async function bothRoutes(name: string, token: string) {
  return [
    await post(`/v1/apps/${name}/invoke`, token, { input: null }),
    await post('/v1/runs', token, { app: name }),
  ]
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-answer-'))
  const config = { ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir }), poolSize: 2 }
  server = await startServer({ config, port: 0, host: '127.0.0.1', agent: false, log: () => {} })
  adminKey = (await readFile(adminKeyPath(dataDir), 'utf8')).trim()
}, 60_000)

afterAll(async () => {
  await server?.close()
  await rm(dataDir, { recursive: true, force: true })
})

describe("a run's output in an answer", () => {
  it('goes out as the guest wrote it when it is JSON: not parsed and serialised again', async () => {
    const text = '{ "z" : 1.50, "a": [ 1e2, "\\u00e9" ] }'
    const token = await deploy('formatted', answers(text))
    for (const answer of await bothRoutes('formatted', token)) {
      expect(answer.status, answer.text).toBe(200)
      expect(answer.text).toContain(`"output":${text}`)
      expect(JSON.parse(answer.text).output).toEqual({ z: 1.5, a: [100, 'é'] })
    }
  })

  it('is a JSON string when it is not JSON, or nested past the bound', async () => {
    const deep = '['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1)
    for (const [name, text] of [
      ['not-json', 'not json {'],
      ['trailing', '{"a":1} {"b":2}'],
      ['deep', deep],
    ] as const) {
      const token = await deploy(name, answers(text))
      for (const answer of await bothRoutes(name, token)) {
        expect(answer.status, answer.text.slice(0, 200)).toBe(200)
        expect(JSON.parse(answer.text).output).toBe(text)
      }
    }
  })

  it("passes a guest's JSON error through the same way", async () => {
    const text = '{"reason":"no such ticket", "id": 7}'
    const token = await deploy('refuses', answers(text, true))
    for (const answer of await bothRoutes('refuses', token)) {
      expect(answer.status, answer.text).toBe(422)
      expect(answer.text).toContain(`"guestError":${text}`)
      expect(JSON.parse(answer.text).error.code).toBe('guest_error')
    }
  })

  it('is limit_exceeded past 1 MiB, with the report of the run; 1 MiB of it still goes out', async () => {
    const over = await deploy('over', manyObjects(350_000)) // 1,050,001 bytes
    for (const answer of await bothRoutes('over', over)) {
      const body = JSON.parse(answer.text)
      expect(body.error.code).toBe('limit_exceeded')
      expect(body.report.outcome).toBe('ok')
      expect(answer.text.length).toBeLessThan(10_000)
    }
    const under = await deploy('under', manyObjects(349_000)) // 1,047,001 bytes
    for (const answer of await bothRoutes('under', under)) {
      expect(answer.status).toBe(200)
      expect(JSON.parse(answer.text).output).toHaveLength(349_000)
    }
  })
})
