/**
 * `warden.run(…, { verified })`: the control plane verifies a token once and hands the claims
 * to the run. Only claims this Warden's `verifyToken` returned are taken; a revocation since
 * still refuses the run; claims for another build are verified again (and refused).
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { LoadedComponent } from '../runtime/index.js'
import { refusal } from './support/refusal.js'
import { tieredGuest } from './support/tiered-guest.js'
import { openTestWarden } from './support/warden.js'
import type { TestWarden } from './support/warden.js'

let w: TestWarden
let app: LoadedComponent
let other: LoadedComponent

beforeAll(async () => {
  w = await openTestWarden()
  app = await w.warden.load(await tieredGuest(['log'], 'verified'))
  other = await w.warden.load(await tieredGuest(['log'], 'verified-other'))
})

afterAll(async () => {
  await w?.close()
})

async function mint() {
  return (
    await w.warden.grantToken({
      appId: 'v',
      digest: app.digest,
      grants: { log: true },
      lifetimeSeconds: 60,
    })
  ).token
}

it('runs on claims verified by this Warden, frozen', async () => {
  const token = await mint()
  const verified = await w.warden.verifyToken(token)
  expect(Object.isFrozen(verified.grants)).toBe(true)
  const run = await w.warden.run(app, '"x"', { token, verified })
  expect(run.ok).toBe(true)
})

it('refuses claims it did not verify, even if they look right', async () => {
  const token = await mint()
  const verified = await w.warden.verifyToken(token)
  const copy = structuredClone(verified)
  await expect(w.warden.run(app, '"x"', { token, verified: copy })).rejects.toThrow(TypeError)
})

it('refuses a token revoked after it was verified', async () => {
  const token = await mint()
  const verified = await w.warden.verifyToken(token)
  await w.warden.revokeToken(verified.jti)
  expect((await refusal(w.warden.run(app, '"x"', { token, verified }))).code).toBe('token_revoked')
})

it('verifies again for another build, and refuses', async () => {
  const token = await mint()
  const verified = await w.warden.verifyToken(token)
  expect((await refusal(w.warden.run(other, '"x"', { token, verified }))).code).toBe(
    'token_invalid',
  )
})
