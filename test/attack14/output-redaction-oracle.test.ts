/**
 * Attack 14: the redaction of a run's answer tells the caller which of its strings is a secret,
 * of any tenant, with no grant at all.
 *
 * `openWarden` redacts everything a run returns against every form of every *stored* secret
 * (threat model, "Redaction by volume"), not only the secrets the run's token binds. A holder of
 * a `js` token that grants nothing makes its script return candidate strings; the HTTP answer
 * comes back with the one that equals a stored secret replaced by `[redacted:NAME]`: the caller
 * reads the value (its candidate) and the secret's name. A 1 MiB answer holds ~100,000 short
 * candidates; lowering strings out of the engine costs fuel (printed), so
 * the token here has 1e11 (an admin's choice, under the 1e12 ceiling); with the default 1e9 the
 * same search takes more runs. Any secret a dictionary covers falls, whoever stored it and
 * whatever it is bound to. The value never entered the worker; the oracle is the redaction.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenClient } from '../../sdk/client/index.js'
import { startTestServer } from '../support/server.js'
import type { TestServer } from '../support/server.js'

const SECRET = '73919'

let host: TestServer
let admin: WardenClient

beforeAll(async () => {
  host = await startTestServer('warden-a14-output-', { agent: true })
  admin = new WardenClient({ server: host.server.url, key: host.adminKey })
  // Another tenant's secret: no token of the attacker names it.
  await admin.secrets.set('payroll_pin', SECRET)
}, 120_000)

afterAll(async () => {
  await host?.close()
})

describe("a run's answer", () => {
  it("does not show its caller which of the run's strings is a stored secret", async () => {
    const { token } = await admin.grantToken({
      app: 'js',
      grants: {},
      limits: { fuel: 100_000_000_000, timeoutMs: 60_000 },
      ttlSeconds: 600,
    })
    const started = performance.now()
    let found: { candidate: number; marker: string } | undefined
    let runs = 0
    let last: number | null = null
    for (let from = 0; from < 100_000 && found === undefined; from += 20_000) {
      runs++
      const run = await admin.runJs(
        `const out = []
         for (let i = input.from; i < input.from + 20000; i++) out.push(String(i).padStart(5, '0'))
         return out`,
        { from },
        token,
      )
      last = run.report.fuelUsed
      const list = run.output as string[]
      const at = list.findIndex((s) => s.startsWith('[redacted:'))
      if (at !== -1) {
        found = { candidate: from + at, marker: list[at]! }
      }
    }
    console.log(
      `output oracle: ${runs} runs, ${Math.round(performance.now() - started)} ms, found ${JSON.stringify(found)}, fuel of the last run ${last}`,
    )
    expect(found ? String(found.candidate).padStart(5, '0') : null).not.toBe(SECRET)
  }, 300_000)
})
