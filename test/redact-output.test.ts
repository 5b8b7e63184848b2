/**
 * A revealed secret leaves the host redacted whatever shape the guest returns it in (found by
 * the outside attack on issue 6: a `list<string>` output and a `list<string>` error carried it).
 */
import { describe, expect, it } from 'vitest'
import { redactValue } from '../runtime/warden.js'

const SECRET = 'SuperSecretValue123'
const redact = (text: string) => text.replaceAll(SECRET, '[redacted:tok]')

describe('redactValue', () => {
  it('redacts strings inside lists, records, keys and byte lists', () => {
    const out = redactValue(
      {
        list: [SECRET, ['deeper', `x${SECRET}y`]],
        [SECRET]: 'key',
        body: new TextEncoder().encode(`token=${SECRET}`),
        n: 42n,
      },
      redact,
      0,
    ) as Record<string, unknown>
    expect(JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(
      SECRET,
    )
    expect(out.list).toEqual(['[redacted:tok]', ['deeper', 'x[redacted:tok]y']])
    expect(new TextDecoder().decode(out.body as Uint8Array)).toBe('token=[redacted:tok]')
    expect(out['[redacted:tok]']).toBe('key')
    expect(out.n).toBe(42n)
  })

  it('keeps a __proto__ key as data', () => {
    const input = JSON.parse(`{"__proto__": "${SECRET}"}`) as object
    const out = redactValue(input, redact, 0) as Record<string, unknown>
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(out, '__proto__')?.value).toBe('[redacted:tok]')
  })
})
