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
