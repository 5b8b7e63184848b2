import { describe, expect, it } from 'vitest'
import { maskPii, PII_MASK } from './pii.js'

describe('maskPii', () => {
  const doc = {
    name: 'Alice',
    email: 'alice@example.com',
    address: { street: '1 Main St', city: 'Springfield', geo: { lat: 1, lng: 2 } },
    phones: [{ kind: 'home', number: '555-1234' }, { kind: 'work' }],
    notes: null,
  }

  it('masks top-level and nested fields, through arrays', () => {
    expect(maskPii(doc, ['email', 'address.street', 'address.geo', 'phones.number'])).toEqual({
      name: 'Alice',
      email: PII_MASK,
      address: { street: PII_MASK, city: 'Springfield', geo: PII_MASK },
      phones: [{ kind: 'home', number: PII_MASK }, { kind: 'work' }],
      notes: null,
    })
  })

  it('masks a present field whatever its value, and ignores absent paths', () => {
    expect(maskPii(doc, ['notes', 'missing', 'name.first', 'address.zip'])).toEqual({
      ...doc,
      notes: PII_MASK,
    })
  })

  it('applies to every element of a top-level array, and leaves scalars alone', () => {
    expect(maskPii([{ email: 'a' }, { email: 'b' }, 3], ['email'])).toEqual([
      { email: PII_MASK },
      { email: PII_MASK },
      3,
    ])
    expect(maskPii('alice@example.com', ['email'])).toBe('alice@example.com')
  })

  it('never modifies its input', () => {
    const copy = structuredClone(doc)
    maskPii(doc, ['email', 'address.street', 'phones.number'])
    expect(doc).toEqual(copy)
  })

  it('masks a field named __proto__ as a plain field', () => {
    const input = JSON.parse('{"__proto__":{"ssn":"123"},"a":1}') as object
    const out = maskPii(input, ['__proto__']) as Record<string, unknown>
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype)
    expect(JSON.stringify(out)).toBe(`{"__proto__":"${PII_MASK}","a":1}`)
  })
})
