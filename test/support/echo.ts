/** A component for the TEST-ONLY `warden:test/echo` capability. */

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
