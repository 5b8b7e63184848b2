import { describe, expect, it } from 'vitest'
import { DEFAULT_CAPABILITIES } from '../../host-capabilities/index.js'
import { WardenError } from '../errors.js'
import { checkImports, parseWorld } from './world.js'

const wit = (body: string) => `package root:component;\n\nworld root {\n${body}\n}\n`

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return error instanceof WardenError ? error.code : 'not-a-warden-error'
  }
  return undefined
}

describe('parseWorld', () => {
  it('reads interface imports, function exports and interface exports', () => {
    const world = parseWorld(
      wit(`  import warden:platform/log@0.1.0;
  import wasi:cli/stdout@0.2.3;
  /// docs are ignored
  export run: func(input: string) -> result<string, string>;
  export warden:platform/handler@0.1.0;`),
    )
    expect(world.imports).toEqual([
      { name: 'warden:platform/log@0.1.0', kind: 'interface' },
      { name: 'wasi:cli/stdout@0.2.3', kind: 'interface' },
    ])
    expect(world.exports).toEqual([
      { name: 'run', kind: 'function' },
      { name: 'warden:platform/handler@0.1.0', kind: 'interface' },
    ])
  })

  it('sees inline interface and function imports, skipping their bodies', () => {
    const world = parseWorld(
      wit(`  import sneaky: interface {
    open: func(path: string) -> u32;
  }
  import peek: func() -> string;
  export run: func(input: string) -> result<string, string>;`),
    )
    expect(world.imports).toEqual([
      { name: 'sneaky', kind: 'inline' },
      { name: 'peek', kind: 'function' },
    ])
  })

  it('is not moved by braces or semicolons inside comments', () => {
    const world = parseWorld(
      wit(`  /// a doc comment with a brace { and a semicolon ;
  /* a block comment } ; */
  import wasi:filesystem/types@0.2.0;
  export run: func(input: string) -> result<string, string>;`),
    )
    expect(world.imports).toEqual([{ name: 'wasi:filesystem/types@0.2.0', kind: 'interface' }])
  })

  it('refuses text without a world', () => {
    expect(codeOf(() => parseWorld('package a:b;'))).toBe('invalid_component')
  })
})

describe('checkImports', () => {
  const check = (body: string) => () => checkImports(parseWorld(wit(body)), DEFAULT_CAPABILITIES)

  it('accepts the platform and the WASI baseline, returning unversioned names', () => {
    expect(
      checkImports(
        parseWorld(wit('  import warden:platform/log@0.1.0;\n  import wasi:random/random@0.2.6;')),
        DEFAULT_CAPABILITIES,
      ),
    ).toEqual(['warden:platform/log', 'wasi:random/random'])
  })

  it.each([
    'wasi:filesystem/types@0.2.0',
    'wasi:filesystem/preopens@0.2.0',
    'wasi:sockets/tcp@0.2.0',
    'wasi:sockets/ip-name-lookup@0.2.0',
    'wasi:http/outgoing-handler@0.2.0',
    'acme:evil/backdoor@1.0.0',
    'warden:platform/log@9.9.9',
    'warden:platform/log',
    'wasi:random/random@0.3.0',
    'wasi:cli/stdout@0.2.0-rc-2023-10-18',
    'warden:platform/admin@0.1.0',
  ])('refuses %s with unsupported_import', (name) => {
    expect(codeOf(check(`  import ${name};`))).toBe('unsupported_import')
  })

  it('refuses inline and bare function imports', () => {
    expect(codeOf(check('  import peek: func() -> string;'))).toBe('unsupported_import')
    expect(codeOf(check('  import x: interface {\n    f: func();\n  }'))).toBe('unsupported_import')
  })

  it('names the refused import in the message', () => {
    try {
      check('  import wasi:filesystem/types@0.2.0;')()
    } catch (error) {
      expect((error as WardenError).message).toContain('wasi:filesystem/types@0.2.0')
    }
  })
})
