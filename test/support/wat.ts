/**
 * WAT guests for tests. Every guest is a real component, written in component-model WAT and
 * compiled with jco's `parse` here, in the test setup.
 */
import { readFile } from 'node:fs/promises'
import { parse } from '@bytecodealliance/jco'

const cache = new Map<string, Promise<Uint8Array>>()

/** Compile component-model WAT text to component bytes (memoised per text). */
export function compileWat(wat: string): Promise<Uint8Array> {
  let bytes = cache.get(wat)
  if (!bytes) {
    bytes = parse(wat)
    cache.set(wat, bytes)
  }
  return bytes
}

/** Compile `test/guests/<name>.wat`. */
export async function guestFile(name: string): Promise<Uint8Array> {
  const url = new URL(`../guests/${name}.wat`, import.meta.url)
  return compileWat(await readFile(url, 'utf8'))
}

/**
 * The component's `run` export of every action guest: `run: func(input: string) ->
 * result<string, string>`, lifted from core instance `$main-i` over `$memory-i`'s memory.
 */
export const LIFT_RUN = `  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $main-i "run") (memory $memory-i "memory")
      (realloc (func $main-i "cabi_realloc")) string-encoding=utf8))
`

/**
 * An `action` component around a core-module fragment. The fragment is spliced into the
 * main core module, which already has:
 * - `(import "env" "memory" (memory 1))`, the component's only memory;
 * - `$log (param level i32) (param ptr i32) (param len i32)`, the lowered `log.write`;
 * - `cabi_realloc` (a bump allocator from 1024);
 * - `$ok (param ptr) (param len) (result i32)` and `$err (…)` building the `result` return.
 * The fragment must export `run (param i32 i32) (result i32)`; it may add a `(start …)`.
 */
export function actionWat(fragment: string, options: { extraModules?: string } = {}): string {
  return `(component
  (import "warden:platform/log@0.1.0" (instance $log
    (type $level-def (enum "debug" "info" "warn" "error"))
    (export $level "level" (type (eq $level-def)))
    (export "write" (func (param "level" $level) (param "message" string)))))
  (core module $memory (memory (export "memory") 1))
  (core instance $memory-i (instantiate $memory))
  (core func $write (canon lower (func $log "write") (memory $memory-i "memory") string-encoding=utf8))
  ${options.extraModules ?? ''}
  (core module $main
    (import "env" "memory" (memory 1))
    (import "log" "write" (func $log (param i32 i32 i32)))
    (global $bump (mut i32) (i32.const 1024))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (global.get $bump))
      (global.set $bump (i32.add (global.get $bump) (local.get 3)))
      (local.get $p))
    (func $ok (param $ptr i32) (param $len i32) (result i32)
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (local.get $ptr))
      (i32.store (i32.const 24) (local.get $len))
      (i32.const 16))
    (func $err (param $ptr i32) (param $len i32) (result i32)
      (i32.store (i32.const 16) (i32.const 1))
      (i32.store (i32.const 20) (local.get $ptr))
      (i32.store (i32.const 24) (local.get $len))
      (i32.const 16))
    ${fragment})
  (core instance $main-i (instantiate $main
    (with "env" (instance $memory-i))
    (with "log" (instance (export "write" (func $write))))))
${LIFT_RUN})`
}

/**
 * The hello-http micro-app (`examples/hello-http/hello-http.wat`) with its handler's body
 * replaced by `body`: WAT that leaves the address of an `outgoing-response` on the stack. The
 * handler's parameters are `$mp $ml $pp $pl $qp $ql $hp $hl $bp $bl` (method, path, query,
 * headers, body) and `$alloc` is the module's allocator.
 */
export async function helloHttpWith(locals: string, body: string): Promise<string> {
  const hello = await readFile(
    new URL('../../examples/hello-http/hello-http.wat', import.meta.url),
    'utf8',
  )
  const start = hello.indexOf('    (func (export "warden:platform/handler@0.1.0#handle")')
  const end = hello.indexOf('  (core instance $main-i (instantiate $main))')
  const handle = `    (func (export "warden:platform/handler@0.1.0#handle")
      (param $mp i32) (param $ml i32) (param $pp i32) (param $pl i32) (param $qp i32) (param $ql i32)
      (param $hp i32) (param $hl i32) (param $bp i32) (param $bl i32) (result i32)
      ${locals}
${body}))
`
  return hello.slice(0, start) + handle + hello.slice(end)
}
