import { describe, expect, it } from 'vitest'
import { createBroker } from '../../runtime/broker/broker.js'
import type { BrokerRunContext } from '../../runtime/broker/broker.js'
import { fakeRunContext } from '../../test/support/context.js'
import { HostCallError } from '../types.js'
import type { RunContext, SecretSource } from '../types.js'
import { createSecretsCapability, REVEAL_OP, SECRETS_INTERFACE } from './broker.js'
import { compileSecretsGrant } from './grant.js'
import type { SecretsGrantEntry } from './grant.js'

function context(entries?: SecretsGrantEntry[]): BrokerRunContext {
  return fakeRunContext({
    invocationId: 'inv-1',
    appId: 'app-1',
    digest: 'sha256:00',
    granted: new Set([SECRETS_INTERFACE]),
    grants: entries ? { [SECRETS_INTERFACE]: compileSecretsGrant(entries) } : {},
  })
}

/** A source over a map that counts its reads. */
function source(values: Record<string, string>): SecretSource & { reads: string[] } {
  const reads: string[] = []
  return {
    reads,
    async read(name) {
      reads.push(name)
      return values[name]
    },
  }
}

async function hostError(promise: unknown): Promise<HostCallError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(HostCallError)
    return error as HostCallError
  }
  throw new Error('expected a HostCallError')
}

const bytes = (s: string) => new Uint8Array(Buffer.from(s))
const hex = (b: unknown) => Buffer.from(b as Uint8Array).toString('hex')

describe('secrets broker: hmacSha256', () => {
  it('matches RFC 4231 test case 2 (key "Jefe")', async () => {
    const cap = createSecretsCapability({ source: source({ jefe: 'Jefe' }) })
    const ctx = context([{ name: 'jefe', hosts: [] }])
    const mac = await cap.handle('hmacSha256', ['jefe', bytes('what do ya want for nothing?')], ctx)
    expect(mac).toBeInstanceOf(Uint8Array)
    expect(hex(mac)).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843')
  })

  it('denies a secret that is not granted, without reading it', async () => {
    const src = source({ other: 'other-secret' })
    const cap = createSecretsCapability({ source: src })
    const error = await hostError(
      cap.handle('hmacSha256', ['other', bytes('x')], context([{ name: 'mine', hosts: [] }])),
    )
    expect(error.payload.tag).toBe('denied')
    expect(src.reads).toEqual([])
  })

  it('answers a granted but missing secret exactly as one not granted', async () => {
    const cap = createSecretsCapability({ source: source({ real: 'real-secret' }) })
    const granted = context([{ name: 'ghost', hosts: [] }])
    const notGranted = context([{ name: 'unrelated', hosts: [] }])
    const missing = await hostError(cap.handle('hmacSha256', ['ghost', bytes('x')], granted))
    const denied = await hostError(cap.handle('hmacSha256', ['ghost', bytes('x')], notGranted))
    expect(missing.payload).toEqual(denied.payload)
    expect(missing.payload.tag).toBe('denied')
  })

  it('denies everything when the run has no secrets grant', async () => {
    const cap = createSecretsCapability({ source: source({ token: 'token-value' }) })
    const error = await hostError(cap.handle('hmacSha256', ['token', bytes('x')], context()))
    expect(error.payload.tag).toBe('denied')
  })

  it.each<[string, unknown[]]>([
    ['a name that is not a string', [42, bytes('x')]],
    ['a malformed name', ['Bad/Name', bytes('x')]],
    ['data that is not bytes', ['token', 'x']],
    ['data that is a plain array', ['token', [1, 2, 3]]],
    ['too few arguments', ['token']],
    ['too many arguments', ['token', bytes('x'), 1]],
  ])('refuses %s as invalid', async (_, args) => {
    const cap = createSecretsCapability({ source: source({ token: 'token-value' }) })
    const error = await hostError(
      cap.handle('hmacSha256', args, context([{ name: 'token', hosts: [] }])),
    )
    expect(error.payload.tag).toBe('invalid')
  })
})

describe('secrets broker: reveal', () => {
  const values = { shown: 'shown-secret', hidden: 'hidden-secret' }
  const grant: SecretsGrantEntry[] = [
    { name: 'shown', hosts: [], reveal: true },
    { name: 'hidden', hosts: ['api.example'] },
  ]

  it('returns the plaintext only with reveal: true', async () => {
    const cap = createSecretsCapability({ source: source(values) })
    expect(await cap.handle(REVEAL_OP, ['shown'], context(grant))).toBe('shown-secret')
  })

  it('denies reveal of a secret granted without reveal, without reading it', async () => {
    const src = source(values)
    const cap = createSecretsCapability({ source: src })
    const error = await hostError(cap.handle(REVEAL_OP, ['hidden'], context(grant)))
    expect(error.payload.tag).toBe('denied')
    expect(error.payload.val).not.toContain('hidden-secret')
    expect(src.reads).toEqual([])
  })

  it('denies reveal of a secret not granted, and with no grant at all', async () => {
    const cap = createSecretsCapability({ source: source(values) })
    expect((await hostError(cap.handle(REVEAL_OP, ['other'], context(grant)))).payload.tag).toBe(
      'denied',
    )
    expect((await hostError(cap.handle(REVEAL_OP, ['shown'], context()))).payload.tag).toBe(
      'denied',
    )
  })

  it('denies reveal of a granted, missing secret like any other', async () => {
    const cap = createSecretsCapability({ source: source({}) })
    const error = await hostError(cap.handle(REVEAL_OP, ['shown'], context(grant)))
    expect(error.payload.tag).toBe('denied')
  })

  it('is recorded by the broker under REVEAL_OP, allowed and denied alike', async () => {
    const onHostCall = createBroker([createSecretsCapability({ source: source(values) })])
    const ctx = context(grant)
    const ok = await onHostCall(ctx, {
      call: 1,
      capability: SECRETS_INTERFACE,
      fn: REVEAL_OP,
      args: ['shown'],
    })
    const no = await onHostCall(ctx, {
      call: 2,
      capability: SECRETS_INTERFACE,
      fn: REVEAL_OP,
      args: ['hidden'],
    })
    expect(ok).toEqual({ ok: true, value: 'shown-secret' })
    expect(no.ok).toBe(false)
    expect(ctx.decisions.map((d) => [d.fn, d.decision])).toEqual([
      [REVEAL_OP, 'allow'],
      [REVEAL_OP, 'deny'],
    ])
    // A decision never carries the value.
    expect(JSON.stringify(ctx.decisions)).not.toContain('shown-secret')
  })
})

describe('secrets broker: host misuse', () => {
  it('refuses a grant that was not compiled', async () => {
    const cap = createSecretsCapability({ source: source({}) })
    const ctx: RunContext = { ...context(), grants: { [SECRETS_INTERFACE]: [{ name: 'x' }] } }
    await expect(cap.handle(REVEAL_OP, ['x'], ctx)).rejects.toBeInstanceOf(TypeError)
  })

  it('refuses an unknown function as invalid', async () => {
    const cap = createSecretsCapability({ source: source({}) })
    expect((await hostError(cap.handle('list', [], context()))).payload.tag).toBe('invalid')
  })
})
