/**
 * Issue 6: jco 1.11.2 pastes names from the component into the glue it generates, unescaped. A
 * core export named `run'+(process.kill(process.pid,'SIGKILL'),'')+'`, lifted as the world's
 * `run`, executed host JavaScript. Every name is now checked against a grammar at load, before
 * jco sees the bytes: such a component is refused with `invalid_component` and the host
 * carries on.
 */
import type { LoadedComponent } from '../runtime/index.js'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, transpile } from '@bytecodealliance/jco'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WardenError } from '../runtime/errors.js'
import { resolveHostConfig } from '../runtime/host-config.js'
import type { CliIo } from '../sdk/cli/io.js'
import { packageRoot } from '../sdk/cli/paths.js'
import { buildProgram } from '../sdk/cli/program.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import { actionWat, guestFile } from './support/wat.js'
import { refusal } from './support/refusal.js'

let rt: TestRuntime
let scratch: string

beforeAll(async () => {
  rt = await startTestRuntime({ poolSize: 1 })
  scratch = await mkdtemp(join(tmpdir(), 'warden-issue-6-'))
}, 60_000)

afterAll(async () => {
  await rt?.close()
  await rm(scratch, { recursive: true, force: true })
})

const encoder = new TextEncoder()

/**
 * Compile `wat`, in which `placeholder` stands for a name, then write `name` over every
 * occurrence of the placeholder's bytes. Both are the same length in UTF-8, so every length
 * prefix stays valid: this is how an attacker writes names the WAT parser would refuse.
 */
async function withName(wat: (placeholder: string) => string, name: string): Promise<Uint8Array> {
  const replacement = encoder.encode(name)
  const placeholder = 'X'.repeat(replacement.length)
  const bytes = await parse(wat(placeholder))
  const from = encoder.encode(placeholder)
  let replaced = 0
  for (let i = 0; i + from.length <= bytes.length; i++) {
    if (from.every((b, j) => bytes[i + j] === b)) {
      bytes.set(replacement, i)
      i += from.length - 1
      replaced += 1
    }
  }
  expect(replaced).toBeGreaterThan(0)
  return bytes
}

/** `run` returns its input; the core function lifted as `run` is exported as `name`. */
function coreExport(name: string): string {
  return actionWat(`
    (func (export "${name}") (param $ptr i32) (param $len i32) (result i32)
      (call $ok (local.get $ptr) (local.get $len)))`).replace(
    '(core func $main-i "run")',
    `(core func $main-i "${name}")`,
  )
}

const echoRun = `
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (call $ok (local.get $ptr) (local.get $len)))`

/** The core import module `log` is called `name`. */
function coreImportModule(name: string): string {
  return actionWat(echoRun)
    .replace('(import "log" "write"', `(import "${name}" "write"`)
    .replace('(with "log" (instance', `(with "${name}" (instance`)
}

/** The core import field `write` (of module `log`) is called `name`. */
function coreImportField(name: string): string {
  return actionWat(echoRun)
    .replace('(import "log" "write"', `(import "log" "${name}"`)
    .replace('(export "write" (func $write))', `(export "${name}" (func $write))`)
}

/** The world exports `name` instead of `run`. */
function componentExport(name: string): string {
  return actionWat(echoRun).replace(
    '(func (export "run") (param "input"',
    `(func (export "${name}") (param "input"`,
  )
}

/** The world imports the log interface as `name`. */
function componentImport(name: string): string {
  return actionWat(echoRun).replace('(import "warden:platform/log@0.1.0"', `(import "${name}"`)
}

const marker = (what: string) => join(tmpdir(), `warden-issue-6-${process.pid}-${what}`)

const PAYLOADS: Record<string, string> = {
  'reads a file': `run'+process.getBuiltinModule('fs').readFileSync('/etc/passwd','utf8')+'`,
  'writes a file': `run'+process.getBuiltinModule('fs').writeFileSync('${marker('write')}','x')+'`,
  'kills the host': `run'+(process.kill(process.pid,'SIGKILL'),'')+'`,
  'spawns a process': `run'+process.getBuiltinModule('child_process').execSync('touch ${marker('spawn')}')+'`,
}

const PLACES: Record<string, (name: string) => string> = {
  'core export lifted as run': coreExport,
  'core import module name': coreImportModule,
  'core import field name': coreImportField,
  'component export name': componentExport,
  'component import name': componentImport,
}

const CASES = Object.entries(PLACES).flatMap(([place, wat]) =>
  Object.entries(PAYLOADS).map(([payload, name]) => [place, payload, wat, name] as const),
)

/** The host is alive and well: a normal component loads and runs, in the same runtime. */
async function expectHostAlive(): Promise<void> {
  const app = await rt.warden.load(await guestFile('echo'))
  const run = await rt.warden.invoke(app, 'still here')
  expect(run.ok).toBe(true)
  expect(run.output).toBe('still here')
  expect(existsSync(marker('write'))).toBe(false)
  expect(existsSync(marker('spawn'))).toBe(false)
}

describe('the reproduction', () => {
  it('is live against jco itself: its glue would contain the payload as code', async () => {
    // Only generated here, never evaluated: proves the inputs below are the real attack.
    const name = PAYLOADS['kills the host']!
    const bytes = await withName(coreExport, name)
    const { files } = await transpile(bytes, {
      name: 'component',
      instantiation: 'sync',
      nodejsCompat: false,
      base64Cutoff: 0,
    } as Parameters<typeof transpile>[1])
    expect(new TextDecoder().decode(files['component.js'])).toContain(`['${name}']`)
  })
})

describe('through the library', () => {
  it.each(CASES)('refuses a %s that %s; the host carries on', async (_place, _what, wat, name) => {
    const bytes = await withName(wat, name)
    expect((await refusal(rt.warden.load(bytes))).code).toBe('invalid_component')
    await expectHostAlive()
  })

  it('still loads and runs the same component with a plain name in each place', async () => {
    for (const [place, wat] of Object.entries(PLACES)) {
      // A component must implement its world (issue 7): its export can only be `run`.
      const plain =
        place === 'component import name'
          ? 'warden:platform/log@0.1.0'
          : place === 'component export name'
            ? 'run'
            : 'run-it'
      const app = await rt.warden.load(await withName(wat, plain))
      if (app.kind === 'action') {
        const run = await rt.warden.invoke(app, 'ok')
        expect(run.output).toBe('ok')
      }
    }
  })

  it('refuses or runs normally whatever the lifted core export is called (property)', async () => {
    const chars = [
      ...Array.from({ length: 128 }, (_, i) => String.fromCharCode(i)),
      ...['é', 'ß', 'Ω', '中', '\u00a0', '\u2028', '\u2029', '\u200b', '\ufeff', '😀', '\ud800'],
    ]
    const grammarChars = [...'abcXYZ019_-.:/@#$[]']
    const name = fc.oneof(
      fc.string({ unit: fc.constantFrom(...chars), minLength: 1, maxLength: 24 }),
      fc.string({ unit: fc.constantFrom(...grammarChars), minLength: 1, maxLength: 24 }),
    )
    let loaded = 0
    await fc.assert(
      fc.asyncProperty(name, async (coreName) => {
        const bytes = await withName(coreExport, coreName)
        let app: LoadedComponent
        try {
          app = await rt.warden.load(bytes)
        } catch (error) {
          expect(error).toBeInstanceOf(WardenError)
          expect((error as WardenError).code).toBe('invalid_component')
          return
        }
        loaded += 1
        const run = await rt.warden.invoke(app, 'hi')
        expect(run.error).toBeUndefined()
        expect(run.output).toBe('hi')
      }),
      { numRuns: 60 },
    )
    // Both outcomes happen: about 40% of these names are admitted.
    expect(loaded).toBeGreaterThan(0)
    await expectHostAlive()
  }, 240_000)
})

describe('structure', () => {
  it('refuses 10 KB of 1,000 nested list types before jco, which they would crash', async () => {
    // Inside jco this is a wasm trap ("memory access out of bounds") that leaves jco's instance
    // broken: every later transpile in that worker failed the same way.
    let types = '(type $t0 (list u8))'
    for (let i = 1; i < 1000; i++) {
      types += `(type $t${i} (list $t${i - 1}))`
    }
    const bytes = await parse(`(component ${types} (import "f" (func (param "x" $t999))))`)
    expect((await refusal(rt.warden.load(bytes))).code).toBe('invalid_component')
    await expectHostAlive()
  })
})

describe('through the CLI', () => {
  async function cli(args: string[]): Promise<{ stdout: string; stderr: string; code?: number }> {
    const out: { stdout: string; stderr: string; code?: number } = { stdout: '', stderr: '' }
    const io: CliIo = {
      stdout: (text) => void (out.stdout += text),
      stderr: (text) => void (out.stderr += text),
      readStdin: async () => '',
      env: {},
      setExitCode: (code) => void (out.code = code),
      hostConfig: () => ({
        ...resolveHostConfig({}),
        dataDir: join(scratch, 'cli'),
        poolSize: 1,
        maxTokenLifetimeSeconds: 3600,
      }),
      openWarden: () => Promise.reject(new Error('a local run opens no Warden host')),
    }
    await buildProgram(io).parseAsync(args, { from: 'user' })
    return out
  }

  const payloads = Object.entries(PAYLOADS)
  it.each(payloads)('`warden run` refuses a core export that %s', async (what, name) => {
    const file = join(scratch, `${what.replaceAll(' ', '-')}.wasm`)
    await writeFile(file, await withName(coreExport, name))
    const result = await cli(['run', file, '--input', '"x"'])
    expect(result.code).toBe(1)
    expect(result.stderr.startsWith('error: invalid_component: ')).toBe(true)
    expect(result.stdout).toBe('')
    const hello = join(packageRoot(), 'examples/hello/hello.wat')
    expect((await cli(['run', hello, '--input', '{}'])).code).toBe(0)
    await expectHostAlive()
  })
})
