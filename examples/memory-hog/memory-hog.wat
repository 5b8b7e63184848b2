;; memory-hog: an action that grows its memory one page at a time, forever. Warden ends it
;; with `memory_limit` when it reaches the run's cap.
(component
  (core module $main
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param i32 i32) (result i32)
      (loop $more (drop (memory.grow (i32.const 1))) (br $more))
      (i32.const 0)))
  (core instance $m (instantiate $main))
  (func (export "run") (param "input" string) (result (result string (error string)))
    (canon lift (core func $m "run") (memory $m "memory")
      (realloc (func $m "cabi_realloc")) string-encoding=utf8))
)
