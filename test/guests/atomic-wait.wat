;; Blocks forever in memory.atomic.wait32 on a private shared memory. Fuel cannot stop a
;; guest that is not executing, so only the wall-clock watchdog ends this run.
(component
  (core module $waiter
    (memory 1 1 shared)
    (func (export "wait")
      (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))))
  (core module $main
    (import "waiter" "wait" (func $wait))
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param i32 i32) (result i32)
      (call $wait)
      (i32.const 16)))
  (core instance $w (instantiate $waiter))
  (core instance $m (instantiate $main (with "waiter" (instance $w))))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $m "run") (memory $m "memory")
      (realloc (func $m "cabi_realloc")) string-encoding=utf8))
)
