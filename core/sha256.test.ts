import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { sha256, sha256LongWay } from './sha256.js'

describe('sha256', () => {
  it('is the digest createHash gives, for any text, in hex and base64url', () => {
    expect(sha256('abc', 'hex')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    )
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        expect(sha256(text, 'hex')).toBe(sha256LongWay(text, 'hex'))
        expect(sha256(text, 'base64url')).toBe(sha256LongWay(text, 'base64url'))
      }),
      { numRuns: 300 },
    )
  })

  it('hashes a concatenation as the two updates the audit chain was defined with', () => {
    const prev = '0'.repeat(64)
    const body = '{"actor":"app:é","seq":1}'
    expect(sha256(`${prev}${body}`, 'hex')).toBe(
      createHash('sha256').update(prev).update(body).digest('hex'),
    )
  })
})
