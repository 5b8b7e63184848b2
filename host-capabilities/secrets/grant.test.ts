import { describe, expect, it } from 'vitest'
import { canReveal, canUse, compileSecretsGrant, isCompiledSecretsGrant } from './grant.js'
import type { SecretsGrantEntry } from './grant.js'

describe('compileSecretsGrant', () => {
  it('compiles to { entries: { name, hosts, reveal }[] }, reveal false by default', () => {
    const grant = compileSecretsGrant([
      { name: 'github_token', hosts: ['API.GitHub.com'] },
      { name: 'signing_key', hosts: [], reveal: true },
    ])
    expect(grant).toEqual({
      entries: [
        { name: 'github_token', hosts: ['api.github.com'], reveal: false },
        { name: 'signing_key', hosts: [], reveal: true },
      ],
    })
    expect(Object.isFrozen(grant.entries)).toBe(true)
    expect(Object.isFrozen(grant.entries[0])).toBe(true)
    expect(isCompiledSecretsGrant(grant)).toBe(true)
  })

  it('merges entries for one name: hosts united, reveal if any says so', () => {
    const grant = compileSecretsGrant([
      { name: 'token', hosts: ['a.example'] },
      { name: 'token', hosts: ['b.example', 'a.example'], reveal: true },
    ])
    expect(grant.entries).toEqual([
      { name: 'token', hosts: ['a.example', 'b.example'], reveal: true },
    ])
  })

  it('answers canUse and canReveal', () => {
    const grant = compileSecretsGrant([
      { name: 'hidden', hosts: ['x.example'], reveal: false },
      { name: 'shown', hosts: [], reveal: true },
    ])
    expect(canUse(grant, 'hidden')).toBe(true)
    expect(canReveal(grant, 'hidden')).toBe(false)
    expect(canUse(grant, 'shown')).toBe(true)
    expect(canReveal(grant, 'shown')).toBe(true)
    expect(canUse(grant, 'other')).toBe(false)
    expect(canReveal(grant, 'other')).toBe(false)
    expect(canUse(undefined, 'hidden')).toBe(false)
    expect(canUse(compileSecretsGrant([]), 'hidden')).toBe(false)
  })

  it.each<[string, unknown]>([
    ['not a list', { name: 'x', hosts: [] }],
    ['an entry that is not an object', ['x']],
    ['a bad name', [{ name: 'Bad-Name', hosts: [] }]],
    ['a missing name', [{ hosts: [] }]],
    ['hosts that are not a list', [{ name: 'x', hosts: 'a.example' }]],
    ['a host with a path', [{ name: 'x', hosts: ['a.example/path'] }]],
    ['an empty host', [{ name: 'x', hosts: [''] }]],
    ['a non-boolean reveal', [{ name: 'x', hosts: [], reveal: 'yes' }]],
    ['an unknown field', [{ name: 'x', hosts: [], reveals: true }]],
  ])('refuses %s with a TypeError', (_, entries) => {
    expect(() => compileSecretsGrant(entries as SecretsGrantEntry[])).toThrow(TypeError)
  })
})
