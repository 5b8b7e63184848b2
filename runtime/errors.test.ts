import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { ERROR_META, toWardenError, WARDEN_ERROR_CODES, WardenError } from './errors.js'

describe('error catalogue', () => {
  it('docs/errors.md lists every code with its blame and status, and nothing else', async () => {
    const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8')
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (guest|host) \| (\d{3}) \|/gm)].map(
      ([, code, blame, status]) => ({ code, blame, status: Number(status) }),
    )
    expect(rows.map((r) => r.code)).toEqual([...WARDEN_ERROR_CODES])
    for (const row of rows) {
      expect(ERROR_META[row.code as keyof typeof ERROR_META]).toEqual({
        blame: row.blame,
        status: row.status,
      })
    }
  })
})

describe('WardenError', () => {
  it('serialises code and message only, never the cause', () => {
    const error = new WardenError('timeout', 'too slow', { cause: new Error('secret detail') })
    expect(JSON.parse(JSON.stringify(error))).toEqual({ code: 'timeout', message: 'too slow' })
    expect(error.status).toBe(504)
  })

  it('rebuilds from JSON, mapping unknown codes to internal', () => {
    expect(WardenError.fromJSON({ code: 'memory_limit', message: 'm' }).code).toBe('memory_limit')
    expect(WardenError.fromJSON({ code: 'nope' as never, message: 'm' }).code).toBe('internal')
  })

  it('hides the text of unknown errors', () => {
    const wrapped = toWardenError(new Error('password=hunter2'))
    expect(wrapped.code).toBe('internal')
    expect(wrapped.message).not.toContain('hunter2')
  })
})
