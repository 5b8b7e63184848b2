import { describe, expect, it } from 'vitest'
import { redactSecretBytes, redactSecrets } from './redact.js'

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString()

describe('redactSecrets', () => {
  const secrets = [
    { name: 'short', value: 'abc' },
    { name: 'long', value: 'xxabcxx' },
    { name: 'quoted', value: 'a"b' },
    { name: 'empty', value: '' },
  ]

  it('replaces every occurrence, the longest secret first, and ignores empty values', () => {
    expect(redactSecrets('abc-xxabcxx-abc', secrets)).toBe(
      '[redacted:short]-[redacted:long]-[redacted:short]',
    )
    expect(redactSecrets('nothing here', secrets)).toBe('nothing here')
  })

  it('also finds JSON-escaped and percent-encoded echoes', () => {
    expect(redactSecrets(JSON.stringify({ v: 'a"b' }), secrets)).toBe('{"v":"[redacted:quoted]"}')
    expect(redactSecrets('q=a%22b', secrets)).toBe('q=[redacted:quoted]')
  })

  it('redacts bytes, in UTF-8 and in Latin-1', () => {
    const utf8 = new TextEncoder().encode('pre-abc-post')
    expect(text(redactSecretBytes(utf8, secrets))).toBe('pre-[redacted:short]-post')
    const latin = [{ name: 'l', value: 'caf\u00e9' }]
    expect(text(redactSecretBytes(Buffer.from('x café', 'utf8'), latin))).toBe('x [redacted:l]')
    expect(text(redactSecretBytes(Buffer.from('x café', 'latin1'), latin))).toBe('x [redacted:l]')
  })
})
