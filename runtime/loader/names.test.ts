import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { WardenError } from '../errors.js'
import {
  checkName,
  isAllowedName,
  isCoreName,
  isExternName,
  isLabel,
  MAX_NAME_BYTES,
  quoteName,
} from './names.js'

// Names collected from real components: the WAT guests and examples, the platform-caller
// guest (wit-component via jco componentNew), componentize-js 0.23 builds of the test guests
// and of a guest exporting a resource with default WASI features; plus the forms wit-component
// writes for Rust guests.
const REAL_CORE = [
  '',
  '$imports',
  '$root',
  '[export]$root',
  '0',
  '1',
  '50',
  '_start',
  '__indirect_function_table',
  '__main_module__',
  'cabi_realloc',
  'cabi_realloc_adapter',
  'cabi_import_realloc',
  'cabi_post_run',
  'cabi_post_warden:platform/handler@0.1.0#handle',
  'cabi_post_acme:demo/counter@0.1.0#[method]counter.bump',
  'warden:platform/handler@0.1.0#handle',
  'acme:demo/counter@0.1.0#[constructor]counter',
  'acme:demo/counter@0.1.0#[dtor]counter',
  'acme:demo/counter@0.1.0#[static]counter.make',
  '[export]acme:demo/counter@0.1.0',
  'wasi:cli/run@0.2.10#run',
  'wasi:http/incoming-handler@0.2.10#handle',
  'memory',
  'env',
  'log',
  'check_init',
  'wizer-initialize',
  'wizer.resume',
  'fd_write',
  'wasi_snapshot_preview1',
  'wasi:cli/environment@0.2.3',
  'wasi:io/streams@0.2.10',
  '[method]descriptor.read-via-stream',
  '[method]output-stream.blocking-write-and-flush',
  '[static]fields.from-list',
  '[constructor]outgoing-request',
  '[resource-drop]x',
  '[resource-drop]input-stream',
  '[resource-new]counter',
  '[resource-rep]counter',
  '[task-return]run',
  'hmac-sha256',
]

const REAL_EXTERN = [
  'run',
  'write',
  'level',
  'hmac-sha256',
  'list-keys',
  'DNS-error-payload',
  'TLS-alert-received-payload',
  'import-type-counter',
  '[constructor]counter',
  '[constructor]outgoing-request',
  '[method]counter.bump',
  '[method]descriptor.read-via-stream',
  '[method]output-stream.blocking-write-and-flush',
  '[static]counter.make',
  '[static]fields.from-list',
  'warden:platform/log@0.1.0',
  'warden:platform/handler@0.1.0',
  'warden:test/echo@0.1.0',
  'acme:demo/counter@0.1.0',
  'wasi:cli/environment@0.2.3',
  'wasi:http/types@0.2.10',
  'wasi:io/streams',
  'a:b/c@1.0.0-rc.1+build.5',
  'a:b/c@10.20.30-alpha-1.beta',
]

const REAL_LABELS = [
  'input',
  'message',
  'self',
  'x-coord',
  'timeout-ms',
  'next-cursor',
  'HTTP',
  'HTTPS',
  'HTTP-request-URI-too-long',
  'destination-IP-prohibited',
  'TLS-alert-received',
  'DNS-error',
  'c',
  'delete',
  'this',
]

// Characters that must never pass in any name.
const NEVER = [
  "'",
  '"',
  '`',
  '\\',
  ' ',
  '\t',
  '\n',
  '\r',
  '\u0000',
  '\u007f',
  '{',
  '}',
  '(',
  ')',
  '+',
  ';',
  ',',
  '<',
  '>',
  '=',
  '%',
  '*',
  '!',
  '?',
  '&',
  '|',
  '^',
  '~',
  '\u00e9',
  '\u2028',
  '\u200b',
  '\ufeff',
  '\ud83d\ude00',
]

describe('core names', () => {
  it.each(REAL_CORE)('admits the real name %j', (name) => {
    expect(isCoreName(name)).toBe(true)
  })

  it.each([
    "run'+(process.kill(process.pid,'SIGKILL'),'')+'",
    "x']+process.getBuiltinModule('fs').readFileSync('/etc/passwd')+['",
    '__proto__',
    'constructor',
    'prototype',
    '[',
    ']',
    'a[b',
    'a]b',
    '[]x',
    '[Export]x',
    '[export x]y',
    'x[process]',
  ])('refuses %j', (name) => {
    expect(isCoreName(name)).toBe(false)
  })
})

describe('extern names', () => {
  it.each(REAL_EXTERN)('admits the real name %j', (name) => {
    expect(isExternName(name)).toBe(true)
  })

  it.each([
    '',
    'Run',
    'rUN',
    'run-',
    '-run',
    'run--it',
    'run-1',
    '1run',
    'run_it',
    'run.it',
    '[method]counter',
    '[method].bump',
    '[static]counter.',
    '[constructor]',
    '[dtor]counter',
    '[async]run',
    '[resource-drop]counter',
    'Wasi:cli/run',
    'wasi:CLI/run',
    'wasi:cli',
    'wasi:cli/',
    'wasi:cli/run@',
    'wasi:cli/run@0.2',
    'wasi:cli/run@01.2.3',
    'wasi:cli/run@0.2.3+',
    'wasi:a:b/c/d',
    'url=<https://example.com/x>',
    'integrity=<sha256-abc>',
    'unlocked-dep=<a:b>',
    'locked-dep=<a:b@1.0.0>',
    'constructor',
    'prototype',
    'PROTOTYPE',
    '[constructor]constructor',
    '[method]counter.constructor',
    '[static]r.prototype',
    'a:b/constructor@1.0.0',
  ])('refuses %j', (name) => {
    expect(isExternName(name)).toBe(false)
  })
})

describe('labels', () => {
  it.each(REAL_LABELS)('admits the real label %j', (name) => {
    expect(isLabel(name)).toBe(true)
  })

  it.each(['', '[method]r.m', 'a:b/c', 'x_y', 'x.y', '$root', 'constructor', 'Prototype-x'])(
    'refuses %j',
    (name) => {
      // `Prototype-x` is mixed case within a segment, so not kebab case at all.
      expect(isLabel(name)).toBe(false)
    },
  )
})

describe('every grammar', () => {
  it.each(NEVER)('refuses a name containing %j, wherever it is', (c) => {
    for (const kind of ['extern', 'label', 'core'] as const) {
      for (const name of [c, `run${c}`, `${c}run`, `r${c}un`, `a:b/c${c}@1.0.0`]) {
        expect(isAllowedName(kind, name)).toBe(false)
      }
    }
  })

  it('refuses a name over the byte cap', () => {
    const long = 'a'.repeat(MAX_NAME_BYTES + 1)
    expect(isAllowedName('core', long)).toBe(false)
    expect(isAllowedName('extern', long)).toBe(false)
    expect(isAllowedName('core', 'a'.repeat(MAX_NAME_BYTES))).toBe(true)
  })

  it('admits only ASCII letters, digits and _ - . : / @ # $ [ ] (property)', () => {
    const allowed = /^[A-Za-z0-9_\-.:/@#$[\]]*$/
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 40 })),
        fc.constantFrom('extern' as const, 'label' as const, 'core' as const),
        (name, kind) => {
          if (isAllowedName(kind, name)) {
            expect(name).toMatch(allowed)
            expect(['__proto__', 'constructor', 'prototype']).not.toContain(name)
          }
        },
      ),
      { numRuns: 20_000 },
    )
  })

  it('keeps a name inside a single-quoted JS string literal (property)', () => {
    // What jco writes: `exports1['<name>']`. An admitted name must be the literal's whole text.
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...' \'"\\`$[]{}()+;,.:/@#-_aZ09\n'.split('')) }),
        (name) => {
          if (isCoreName(name)) {
            expect(new Function(`return ['${name}']`)()).toEqual([name])
          }
        },
      ),
      { numRuns: 5_000 },
    )
  })
})

describe('checkName', () => {
  it('throws invalid_component, quoting the name escaped and cut to 80 characters', () => {
    const name = `run'\u001b[31m${'x'.repeat(200)}`
    try {
      checkName('core', name, 'core export name of module 1')
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(WardenError)
      expect((error as WardenError).code).toBe('invalid_component')
      expect((error as WardenError).message).toContain(quoteName(name))
    }
    expect(quoteName(name)).not.toMatch(/[^\x20-\x7e]/)
    expect(quoteName(name).length).toBeLessThan(100)
  })

  it('passes an allowed name', () => {
    expect(() => checkName('extern', 'wasi:cli/environment@0.2.3', 'import')).not.toThrow()
  })
})
