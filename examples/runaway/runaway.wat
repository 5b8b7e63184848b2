;; runaway: an action that never stops. Warden ends it with `fuel_exhausted` (deterministic)
;; or, if its fuel would outlast the deadline, with `timeout`.
(component
  (core module $main
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param i32 i32) (result i32)
      (loop $forever (br $forever))
      (i32.const 0)))
  (core instance $m (instantiate $main))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $m "run") (memory $m "memory")
      (realloc (func $m "cabi_realloc")) string-encoding=utf8))
)
