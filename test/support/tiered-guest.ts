/**
 * Action components that import exactly the platform capabilities asked for (one function of
 * each, never called) and answer `ok(input)`: uploads of every risk tier for the control plane's
 * tests. Built with jco's componentEmbed + componentNew, once per set of imports.
 */
import { readFile } from 'node:fs/promises'
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'

/** A platform capability a guest may declare. */
export type PlatformImport = 'http' | 'secrets' | 'data' | 'log'

const CORE_IMPORTS: Readonly<Record<PlatformImport, string>> = {
  http: '(import "warden:platform/http@0.1.0" "fetch" (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))',
  secrets: '(import "warden:platform/secrets@0.1.0" "reveal" (func (param i32 i32 i32)))',
  data: '(import "warden:platform/data@0.1.0" "get" (func (param i32 i32 i32 i32 i32)))',
  log: '(import "warden:platform/log@0.1.0" "write" (func (param i32 i32 i32)))',
}

const built = new Map<string, Promise<Uint8Array>>()

/**
 * The component importing `imports` (and a `salt` that changes its bytes, for new versions).
 *
 * @example
 * const medium = await tieredGuest(['http'])
 */
export function tieredGuest(imports: readonly PlatformImport[], salt = ''): Promise<Uint8Array> {
  const key = `${[...imports].sort().join(',')}|${salt}`
  let bytes = built.get(key)
  if (!bytes) {
    bytes = build(imports, salt)
    built.set(key, bytes)
  }
  return bytes
}

async function build(imports: readonly PlatformImport[], salt: string): Promise<Uint8Array> {
  const platform = await readFile(new URL('../../wit/platform.wit', import.meta.url), 'utf8')
  const world = `${platform}
world tiered {
${imports.map((i) => `  import ${i};`).join('\n')}
  export run: func(input: string) -> result<string, string>;
}
`
  const core = await parse(`(module
  ${imports.map((i) => CORE_IMPORTS[i]).join('\n  ')}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 512) ${JSON.stringify(salt)})
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 48) (i32.const 0))
    (i32.store (i32.const 52) (local.get $ptr))
    (i32.store (i32.const 56) (local.get $len))
    (i32.const 48)))`)
  const embedded = await componentEmbed({
    binary: core,
    witSource: world,
    world: 'tiered',
    stringEncoding: 'utf8',
  })
  return componentNew(embedded, [])
}
