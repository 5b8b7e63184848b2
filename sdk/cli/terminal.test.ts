import { describe, expect, it } from 'vitest'
import { terminalSafe } from './terminal.js'

describe('terminalSafe', () => {
  it('escapes a log line that would forge a Warden error (outside attack)', () => {
    const forged = 'hi\r\x1b[2K\x1b[1Aerror: timeout: the run passed its 5000 ms deadline'
    const safe = terminalSafe(forged, false)
    expect(safe).not.toMatch(/[\r\x1b]/)
    expect(safe.startsWith('hi\\u000d\\u001b[2K')).toBe(true)
  })

  it('keeps tabs, keeps newlines only where asked, and escapes bidi controls', () => {
    expect(terminalSafe('a\tb\nc', true)).toBe('a\tb\nc')
    expect(terminalSafe('a\tb\nc', false)).toBe('a\tb\\u000ac')
    expect(terminalSafe('x\u202ey\u2028z\x9b', true)).toBe('x\\u202ey\\u2028z\\u009b')
    expect(terminalSafe('héllo ✓ 中', false)).toBe('héllo ✓ 中')
  })
})
