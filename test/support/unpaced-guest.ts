/** The seventh outside attack's guest: host work the fuel does not pace (test/unpaced-work.test.ts). */

/**
 * The attacker. Its start function flips a coin (`get-random-u64`): heads, it loops on
 * `get-random-bytes(1 MiB)` forever (fuel-light, CPU-heavy); tails, it makes 4 such calls
 * (so instantiation takes > 0.5 ms and the worker prepares the next instance) and returns.
 * `heavyOnly` makes it always loop (for attack A).
 */
export function attackerWat(mode: 'coin' | 'always'): string {
  const heavy =
    mode === 'always' ? '(i32.const 1)' : '(i64.eqz (i64.and (call $u64) (i64.const 1)))'
  return `(component
  (import "wasi:random/random@0.2.0" (instance $rand
    (export "get-random-bytes" (func (param "len" u64) (result (list u8))))
    (export "get-random-u64" (func (result u64)))))
  (core module $memory (memory (export "memory") 20))
  (core instance $memory-i (instantiate $memory))
  (core module $alloc
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096)))
  (core instance $alloc-i (instantiate $alloc))
  (core func $bytes (canon lower (func $rand "get-random-bytes")
    (memory $memory-i "memory") (realloc (func $alloc-i "realloc"))))
  (core func $u64 (canon lower (func $rand "get-random-u64")))
  (core module $main
    (import "env" "memory" (memory 20))
    (import "r" "bytes" (func $bytes (param i64 i32)))
    (import "r" "u64" (func $u64 (result i64)))
    (data (i32.const 512) "done")
    (func $init (local $i i32)
      (if ${heavy}
        (then (loop $l (call $bytes (i64.const 1048576) (i32.const 64)) (br $l))))
      (loop $l
        (call $bytes (i64.const 1048576) (i32.const 64))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 4)))))
    (start $init)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
    (func (export "run") (param i32 i32) (result i32)
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.const 512))
      (i32.store (i32.const 24) (i32.const 4))
      (i32.const 16)))
  (core instance $main-i (instantiate $main
    (with "env" (instance $memory-i))
    (with "r" (instance (export "bytes" (func $bytes)) (export "u64" (func $u64))))))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $main-i "run") (memory $memory-i "memory")
      (realloc (func $main-i "cabi_realloc")) string-encoding=utf8))
)`
}
