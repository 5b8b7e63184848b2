/**
 * report-builder in Warden's real sandbox: it declares no capability, so its tier is `low`,
 * it makes no host call, and a bad dataset is its own `err`, not Warden's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestApp } from 'warden/testing'
import type { TestApp } from 'warden/testing'

let app: TestApp

beforeAll(async () => {
  app = await openTestApp(new URL('..', import.meta.url))
  // A cold build (componentize-js, then the loader) takes minutes on a busy machine.
}, 900_000)

afterAll(() => app?.close())

describe('report-builder', () => {
  it('declares nothing, so it is low risk', () => {
    expect(app.build.capabilities).toEqual([])
    expect(app.build.risk.tier).toBe('low')
  })

  it('turns rows into a Markdown report with totals per group', async () => {
    const run = await app.run({
      title: 'Sales',
      rows: [
        { region: 'EU', amount: 3 },
        { region: 'US', amount: 5 },
        { region: 'EU', amount: 4 },
      ],
      groupBy: 'region',
      sum: 'amount',
    })
    expect(run.ok).toBe(true)
    expect(run.output).toMatchObject({ format: 'markdown', rows: 3, totals: { EU: 7, US: 5 } })
    expect((run.output as { report: string }).report).toContain('| EU | 3 |')
    expect(run.calls).toEqual([])
  })

  it('escapes HTML from the dataset', async () => {
    const run = await app.run({
      title: '<script>x</script>',
      rows: [{ name: '<img src=x onerror=alert(1)>' }],
      format: 'html',
    })
    const report = (run.output as { report: string }).report
    expect(report).not.toContain('<script>')
    expect(report).not.toContain('<img')
    expect(report).toContain('&#60;script&#62;')
  })

  it('answers a bad dataset with its own error', async () => {
    const run = await app.run({ rows: 3 })
    expect(run.ok).toBe(false)
    expect(run.guestError).toBe('rows must be a list of objects')
    expect(run.error).toBeUndefined()
  })
})
