/**
 * Least authority where the glue runs (issue 6, step 3). A deliberately hostile glue goes
 * straight into the sandbox worker's evaluator, bypassing the loader's name grammar and the
 * glue's syntax check, and tries every door to the host it can think of. Each must be shut.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveLimits } from '../runtime/limits/limits.js'
import { SandboxPool } from '../runtime/sandbox/pool.js'
import type { PoolJob } from '../runtime/sandbox/pool.js'
import { fakeRunContext } from './support/context.js'

/** A function body returning `instantiate`, as `loader/glue.ts` makes them; `run` reports. */
const HOSTILE_GLUE = `'use strict'
return function instantiate(getCoreModule, imports, instantiateCore) {
  const out = {}
  const attempt = (name, f) => {
    try {
      const v = f()
      out[name] = v === undefined ? 'undefined' : 'REACHED ' + typeof v
    } catch (e) {
      out[name] = 'refused'
    }
  }
  const stdout = () => imports['wasi:cli/stdout'].getStdout()
  const log = () => imports['warden:platform/log'].write
  attempt('process', () => process)
  attempt('globalThis.process', () => globalThis.process)
  attempt('require', () => require)
  attempt('module', () => module)
  attempt('Buffer', () => Buffer)
  attempt('fetch', () => fetch)
  attempt('setTimeout', () => setTimeout)
  attempt('console', () => console.log('escaped'))
  attempt('Atomics', () => Atomics)
  attempt('SharedArrayBuffer', () => SharedArrayBuffer)
  attempt('eval', () => eval('1'))
  attempt('Function', () => Function('return 1')())
  attempt('function constructor', () => (() => 1).constructor('return 1')())
  attempt('async function constructor', () => (async () => 1).constructor('return 1'))
  attempt('generator constructor', () => (function* () {}).constructor('return 1'))
  attempt('imports.constructor', () => imports.constructor.constructor('return process')())
  attempt('import function constructor', () => log().constructor('return process')())
  attempt('wasi function constructor', () => imports['wasi:cli/stdout'].getStdout.constructor('return process')())
  attempt('wasi object constructor', () => stdout().constructor.constructor('return process')())
  attempt('wasi prototype chain', () => Object.getPrototypeOf(Object.getPrototypeOf(stdout())).constructor.constructor('return process')())
  attempt('instantiateCore constructor', () => instantiateCore.constructor('return process')())
  attempt('getCoreModule constructor', () => getCoreModule.constructor('return process')())
  attempt('TextDecoder constructor', () => TextDecoder.constructor('return 1')())
  attempt('WebAssembly.compile', () => WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])))
  attempt('WebAssembly.Module', () => new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])))
  attempt('prototype pollution', () => { Object.prototype.polluted = 'yes'; return ({}).polluted })
  attempt('prepareStackTrace', () => { Error.prepareStackTrace = (e, frames) => frames; return new Error('x').stack[0] })
  return { run: () => JSON.stringify(out) }
}
`

let pool: SandboxPool
beforeAll(async () => {
  pool = new SandboxPool({
    size: 1,
    brokerInterfaces: {},
    onHostCall: () => ({ ok: true, value: null }),
  })
  await pool.warm()
})
afterAll(() => pool.close())

function job(glueSource: string, key: string): PoolJob {
  const context = fakeRunContext({ invocationId: key, appId: 'hostile', digest: 'hostile' })
  return {
    component: { key, glueSource, glueFile: 'hostile.js', modules: {}, minMemoryPages: 0 },
    exportName: 'run',
    args: [],
    limits: resolveLimits(),
    grant: {
      imported: ['warden:platform/log', 'wasi:cli/stdout', 'wasi:io/streams'],
      granted: ['warden:platform/log'],
    },
    context,
  }
}

describe('a hostile glue in the sandbox worker', () => {
  it('finds no Node authority, no code generation and nothing to change', async () => {
    const result = await pool.run(job(HOSTILE_GLUE, 'hostile-1'))
    expect(result.ok).toBe(true)
    const probes = JSON.parse(String(result.ok && result.value)) as Record<string, string>
    expect(Object.keys(probes).length).toBeGreaterThan(25)
    for (const [door, outcome] of Object.entries(probes)) {
      expect({ door, outcome }).toEqual({
        door,
        outcome: expect.stringMatching(/^(refused|undefined)$/),
      })
    }
  })

  it('cannot read a file, spawn a process or end the host through the worker realm', async () => {
    const glue = `'use strict'
return function instantiate(getCoreModule, imports) {
  const attempts = [
    () => imports.constructor.constructor('return process.getBuiltinModule("fs").readFileSync("/etc/passwd", "utf8")')(),
    () => imports.constructor.constructor('return process.getBuiltinModule("child_process").execSync("id")')(),
    () => imports.constructor.constructor('process.kill(process.pid, "SIGKILL")')(),
    () => imports['warden:platform/log'].write.call.constructor('return this')().process.exit(1),
  ]
  const results = attempts.map((f) => { try { f(); return 'REACHED' } catch { return 'refused' } })
  return { run: () => results.join(',') }
}`
    const result = await pool.run(job(glue, 'hostile-2'))
    expect(result.ok && result.value).toBe('refused,refused,refused,refused')
    // The host is alive, and so is the pool.
    expect(process.pid).toBeGreaterThan(0)
    const again = await pool.run(job(HOSTILE_GLUE, 'hostile-3'))
    expect(again.ok).toBe(true)
  })

  it('answers invalid_component, not internal, for glue that does not evaluate', async () => {
    for (const [i, glue] of [
      'return function instantiate( {',
      'return 42',
      "throw new Error('no')",
    ].entries()) {
      const result = await pool.run(job(glue, `broken-${i}`))
      expect(!result.ok && result.error.code).toBe('invalid_component')
    }
  })
})
