/**
 * A capability is one folder and one entry in the capability list: `warden:test/echo` becomes
 * grantable, attenuable and runnable through tokens by adding `testEchoCapability` (its folder's
 * `capability.ts`, 15 lines) to the list `openWarden` builds from. Without the entry, the same
 * grant is refused as an unknown field and the same component as an unsupported import.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CAPABILITIES } from '../host-capabilities/index.js'
import { testEchoCapability } from '../host-capabilities/test-echo/index.js'
import { findGrantWidening, grantsSchemaFor } from '../runtime/tokens/index.js'
import type { Grants } from '../runtime/tokens/index.js'
import { ECHO_CALLER } from './support/guests.js'
import { refusal } from './support/refusal.js'
import { compileWat } from './support/wat.js'
import { openTestWarden } from './support/warden.js'
import type { TestWarden } from './support/warden.js'

let withEcho: TestWarden
let without: TestWarden
let bytes: Uint8Array

beforeAll(async () => {
  ;[withEcho, without, bytes] = await Promise.all([
    openTestWarden({ extraCapabilities: [testEchoCapability] }),
    openTestWarden(),
    compileWat(ECHO_CALLER),
  ])
})

afterAll(async () => {
  await Promise.all([withEcho?.close(), without?.close()])
})

describe('the capability list', () => {
  it('builds the grants schema: one field per capability, defaults granting nothing', () => {
    const schema = grantsSchemaFor([...CAPABILITIES, testEchoCapability])
    expect(schema.parse({})).toEqual({ http: [], secrets: [], data: [], log: false, echo: false })
    expect(grantsSchemaFor(CAPABILITIES).safeParse({ echo: true }).success).toBe(false)
    expect(() => grantsSchemaFor([...CAPABILITIES, CAPABILITIES[0]])).toThrow(/two capabilities/)
  })

  it('builds attenuation: each capability judges its own field', () => {
    const list = [...CAPABILITIES, testEchoCapability]
    const schema = grantsSchemaFor(list)
    const parent = schema.parse({ log: true }) as unknown as Grants
    const child = schema.parse({ echo: true }) as unknown as Grants
    expect(findGrantWidening(child, parent, list)).toBe('grants.echo')
    expect(findGrantWidening(parent, child, list)).toBe('grants.log')
  })

  it('runs a component of an added capability under a token that grants it', async () => {
    const app = await withEcho.warden.load(bytes)
    const { token } = await withEcho.warden.grantToken({
      appId: 'echo-caller',
      digest: app.digest,
      grants: { echo: true } as never,
      lifetimeSeconds: 60,
    })
    const run = await withEcho.warden.run(app, 'no thanks', { token })
    expect(run.ok).toBe(true)
    expect(run.output).toBe('no thanks')
    expect(run.decisions.map((d) => [d.capability, d.fn, d.decision])).toEqual([
      ['warden:test/echo', 'fail', 'allow'],
    ])
  })

  it('denies the added capability to a token that does not grant it, and to its children', async () => {
    const app = await withEcho.warden.load(bytes)
    const { token } = await withEcho.warden.grantToken({
      appId: 'echo-caller',
      digest: app.digest,
      grants: { log: true },
      lifetimeSeconds: 60,
    })
    const run = await withEcho.warden.run(app, 'no thanks', { token })
    expect(run.decisions.map((d) => [d.fn, d.decision])).toEqual([['fail', 'deny']])
    const error = await refusal(
      withEcho.warden.attenuateToken(token, { grants: { echo: true } as never }),
    )
    expect(error.code).toBe('forbidden')
    expect(error.message).toContain('grants.echo')
  })

  it('refuses the same grant and component on a Warden without the entry', async () => {
    const error = await refusal(
      without.warden.grantToken({
        appId: 'echo-caller',
        digest: `sha256:${'0'.repeat(64)}`,
        grants: { echo: true } as never,
        lifetimeSeconds: 60,
      }),
    )
    expect(error.code).toBe('invalid_request')
    expect((await refusal(without.warden.load(bytes))).code).toBe('unsupported_import')
  })
})
