import { describe, expect, it } from 'vitest'
import { grantsSchema } from './claims.js'
import { effectiveGrant, GRANT_INTERFACES } from './effective.js'

const grants = grantsSchema.parse({
  http: [{ host: 'api.github.com' }],
  secrets: [{ name: 'gh', hosts: ['api.github.com'] }],
  data: [{ collection: 'crm', prefix: 'contacts/' }],
  log: true,
})

describe('effectiveGrant', () => {
  it('grants what the component imports and the token grants', () => {
    const imports = ['warden:platform/http', 'warden:platform/log', 'wasi:cli/stdout@0.2.3']
    const effective = effectiveGrant(imports, { grants })
    expect(effective.granted).toEqual([GRANT_INTERFACES.http, GRANT_INTERFACES.log])
    expect(effective.grants).toEqual({ http: grants.http, log: true })
  })

  it('never grants what the component does not import', () => {
    expect(effectiveGrant([], { grants })).toEqual({ granted: [], grants: { log: false } })
    expect(effectiveGrant(['warden:platform/types'], { grants }).granted).toEqual([])
  })

  it('never grants what the token does not grant', () => {
    const imports = Object.values(GRANT_INTERFACES)
    const none = grantsSchema.parse({})
    expect(effectiveGrant(imports, { grants: none })).toEqual({
      granted: [],
      grants: { log: false },
    })
  })

  it('accepts versioned import names', () => {
    const imports = Object.values(GRANT_INTERFACES).map((name) => `${name}@0.1.0`)
    expect(effectiveGrant(imports, { grants }).granted).toEqual(Object.values(GRANT_INTERFACES))
  })

  it('returns copies: changing them does not change the claims', () => {
    const effective = effectiveGrant(['warden:platform/data'], { grants })
    effective.grants.data![0]!.prefix = ''
    expect(grants.data[0]!.prefix).toBe('contacts/')
  })
})
