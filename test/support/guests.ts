/**
 * The WAT guests of the sandbox tests, one per behaviour. Each is a complete `action`
 * component (see `actionWat`); `atomic-wait` and `echo` live in `test/guests/*.wat`.
 */
import { actionWat } from './wat.js'

/** Returns "done" from a data segment. */
const DONE = `(data (i32.const 512) "done")`

/** `run` never returns: a bare loop. */
export const infiniteLoop = actionWat(`
  (func (export "run") (param i32 i32) (result i32)
    (loop $l (br $l))
    (i32.const 0))`)

/** Grows memory by one page at a time until something stops it. */
export const growForever = actionWat(`
  (func (export "run") (param i32 i32) (result i32)
    (loop $l (drop (memory.grow (i32.const 1))) (br $l))
    (i32.const 0))`)

/** One grow of 65535 pages (4 GiB). */
export const hugeGrow = actionWat(`
  ${DONE}
  (func (export "run") (param i32 i32) (result i32)
    (drop (memory.grow (i32.const 65535)))
    (call $ok (i32.const 512) (i32.const 4)))`)

/** Grows by `pages` pages once, then answers "done": a guest that fits a cap. */
export function growBy(pages: number): string {
  return actionWat(`
  ${DONE}
  (func (export "run") (param i32 i32) (result i32)
    (drop (memory.grow (i32.const ${pages})))
    (call $ok (i32.const 512) (i32.const 4)))`)
}

/** Unbounded recursion. */
export const deepRecursion = actionWat(`
  (func $down (param i32) (result i32)
    (i32.add (call $down (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "run") (param i32 i32) (result i32)
    (drop (call $down (i32.const 0)))
    (i32.const 0))`)

/** Spins in its start function, before `run` can even be called. */
export const startLoop = actionWat(`
  (func $spin (loop $l (br $l)))
  (start $spin)
  (func (export "run") (param i32 i32) (result i32) (i32.const 0))`)

/** Calls `log.write` in a loop forever. */
export const hostCallFlood = actionWat(`
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (loop $l
      (call $log (i32.const 1) (local.get $ptr) (local.get $len))
      (br $l))
    (i32.const 0))`)

/** Calls `log.write` five times, then loops until something stops it. */
export const logsThenLoops = actionWat(`
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (local $i i32)
    (loop $calls
      (call $log (i32.const 1) (local.get $ptr) (local.get $len))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $calls (i32.lt_u (local.get $i) (i32.const 5))))
    (loop $l (br $l))
    (i32.const 0))`)

/**
 * A CPU kernel: `iterations` rounds of multiply-add over a 4 KiB buffer, then "done".
 * The same kernel costs the same fuel on every run.
 */
export function cpuKernel(iterations: number): string {
  return actionWat(`
  ${DONE}
  (func (export "run") (param i32 i32) (result i32)
    (local $i i32) (local $acc i32) (local $p i32)
    (loop $outer
      (local.set $p (i32.const 4096))
      (loop $inner
        (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31))
                                 (i32.load (local.get $p))))
        (i32.store (local.get $p) (local.get $acc))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br_if $inner (i32.lt_u (local.get $p) (i32.const 8192))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (i32.const ${iterations}))))
    (call $ok (i32.const 512) (i32.const 4)))`)
}

/** Returns its input as its `err` case: the guest's own failure. */
export const guestError = actionWat(`
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (call $err (local.get $ptr) (local.get $len)))`)

/** Traps with `unreachable`. */
export const trap = actionWat(`
  (func (export "run") (param i32 i32) (result i32) unreachable)`)

/**
 * Calls `warden:test/echo`: input `hang…` calls `hang()` (answered only when the run ends);
 * any other input calls `fail(input)` and returns the reason that came back in `refused`.
 */
export const ECHO_CALLER = `(component
  (import "warden:test/echo@0.1.0" (instance $echo
    (type $err-def (variant (case "refused" string) (case "broken")))
    (export $err "echo-error" (type (eq $err-def)))
    (export "fail" (func (param "reason" string) (result (result string (error $err)))))
    (export "hang" (func))))
  (core module $memory (memory (export "memory") 1))
  (core instance $memory-i (instantiate $memory))
  (core module $alloc
    (import "env" "memory" (memory 1))
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (local.get $p)))
  (core instance $alloc-i (instantiate $alloc (with "env" (instance $memory-i))))
  (core func $fail (canon lower (func $echo "fail") (memory $memory-i "memory")
    (realloc (func $alloc-i "realloc")) string-encoding=utf8))
  (core func $hang (canon lower (func $echo "hang")))
  (core module $main
    (import "env" "memory" (memory 1))
    (import "echo" "fail" (func $fail (param i32 i32 i32)))
    (import "echo" "hang" (func $hang))
    (func (export "run") (param $ptr i32) (param $len i32) (result i32)
      (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 104)) (then (call $hang)))
      (call $fail (local.get $ptr) (local.get $len) (i32.const 32))
      ;; result<string, echo-error> at 32: err (1) at 32, refused (0) at 36, its string at 40.
      (i32.store (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (i32.load (i32.const 40)))
      (i32.store (i32.const 24) (i32.load (i32.const 44)))
      (i32.const 16)))
  (core instance $main-i (instantiate $main
    (with "env" (instance $memory-i))
    (with "echo" (instance (export "fail" (func $fail)) (export "hang" (func $hang))))))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $main-i "run") (memory $memory-i "memory")
      (realloc (func $alloc-i "realloc")) string-encoding=utf8))
)`
