/**
 * Attack 13: a publisher's uploads were stored without any quota (disk in file mode, Redis
 * memory in Redis mode).
 *
 * Every distinct upload that loads is kept whole, content-addressed, as a new app or a new
 * version, and nothing removes a version. A publisher key sending the same small component
 * with a different 50 MiB custom section each time (skipped by the structure walk and by jco)
 * had each accepted (`201`, a new version) in ~2.4 s: ~75 GB an hour of disk from one key with
 * one connection; in Redis mode the same bytes go into the Redis every host depends on.
 *
 * Fixed: a publisher keeps at most `WARDEN_PUBLISHER_QUOTA_MB` (default 2,048) of uploads over
 * the versions of its apps that are not decommissioned; past it an upload is `429
 * limit_exceeded` before its bytes are kept. Checked here with a quota of 8 MiB and 3 MiB
 * uploads: the same bytes again cost nothing, an admin's decommission gives room back.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenClient } from '../../sdk/client/index.js'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'
import { compileWat } from '../support/wat.js'

let host: TestServer
let admin: WardenClient

beforeAll(async () => {
  host = await startTestServer('warden-a13-pubstore-', {
    env: { WARDEN_PUBLISHER_QUOTA_MB: '8' },
  })
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
}, 120_000)
afterAll(async () => {
  await host?.close()
})

function leb(n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

/** `bytes` with a custom section that makes it `size` bytes longer, its content set by `fill`. */
function withCustomSection(bytes: Uint8Array, size: number, fill: number): Uint8Array {
  const name = Buffer.from('pad')
  const body = size - 1 - name.length
  const header = Buffer.from([0, ...leb(1 + name.length + body), name.length, ...name])
  const pad = Buffer.alloc(body, 0x61)
  pad.writeUInt32LE(fill, 0)
  return Buffer.concat([bytes, header, pad])
}

describe('publisher storage', () => {
  it('one publisher key cannot store uploads without bound', async () => {
    const wat = await readFile(new URL('../../examples/hello/hello.wat', import.meta.url), 'utf8')
    const base = await compileWat(wat)
    const publisher = (await admin.keys.create('publisher', 'p')).key
    const upload = async (name: string, fill: number) => {
      const r = await fetch(`${host.server.url}/v1/apps?name=${name}&owner=p&purpose=x`, {
        method: 'POST',
        headers: { authorization: `Bearer ${publisher}`, 'content-type': 'application/wasm' },
        body: withCustomSection(base, 3 * 1024 * 1024, fill) as unknown as BodyInit,
      })
      const body = (await r.json()) as { id?: string; error?: { code: string } }
      return { status: r.status, id: body.id, code: body.error?.code }
    }
    const first = await upload('pad-a', 1)
    expect(first.status).toBe(201)
    expect((await upload('pad-a', 2)).status).toBe(201) // a new version: 6 MiB kept
    expect(await upload('pad-b', 3)).toMatchObject({ status: 429, code: 'limit_exceeded' })
    expect((await upload('pad-a', 4)).code).toBe('limit_exceeded')
    expect((await upload('pad-a', 2)).status).toBe(200) // the same bytes again: nothing kept
    const blobs = await readdir(join(host.dataDir, 'blobs'), { recursive: true })
    expect(blobs.filter((f) => f.endsWith('.wasm')).length).toBeLessThanOrEqual(2)
    // An admin decommissions the app: its versions no longer count.
    const gone = await fetch(`${host.server.url}/v1/apps/${first.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${host.adminKey}` },
    })
    expect(gone.status).toBe(200)
    expect((await upload('pad-b', 3)).status).toBe(201)
  }, 120_000)
})
