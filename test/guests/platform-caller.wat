;; platform-caller: one core module that calls each warden:platform capability, chosen by its
;; input, and describes what came back. Built into a component against the `platform-caller`
;; world with jco's componentEmbed + componentNew (see test/support/platform-guest.ts).
;;
;; Input: fields separated by `|`.
;;   fetch|<method>|<url>          → "ok <status> <body>"      | "err <tag> <message>"
;;   hmac|<secret name>|<data>     → "ok <hex of the mac>"     | "err <tag> <message>"
;;   reveal|<secret name>          → "ok <value>"              | "err <tag> <message>"
;;   get|<collection>|<key>        → "ok some <value>" | "ok none" | "err <tag> <message>"
;;   log|<message>                 → "ok"   (one log line at level info)
;;   many|<n>|<message>            → "ok"   (n log lines, n in decimal)
;; Error tags are host-error case numbers: 0 denied, 1 limit-exceeded, 2 invalid, 3 upstream.
;; Ops may follow one another (`fetch|GET|<a>|fetch|GET|<b>`): one call each, in order, their
;; answers separated by newlines.
(module
  (import "warden:platform/http@0.1.0" "fetch"
    (func $fetch (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "warden:platform/secrets@0.1.0" "hmac-sha256" (func $hmac (param i32 i32 i32 i32 i32)))
  (import "warden:platform/secrets@0.1.0" "reveal" (func $reveal (param i32 i32 i32)))
  (import "warden:platform/data@0.1.0" "get" (func $get (param i32 i32 i32 i32 i32)))
  (import "warden:platform/log@0.1.0" "write" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (global $out (mut i32) (i32.const 16384))
  (global $in (mut i32) (i32.const 0))
  (global $in_end (mut i32) (i32.const 0))
  ;; 0..64: return areas; 64..: constant strings; 16384..: output; 65536..: heap.
  (data (i32.const 64) "ok err some none 0123456789abcdef")

  (func (export "cabi_realloc") (param $old i32) (param $old_len i32) (param $align i32) (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.shr_u (local.get $len) (i32.const 16)) (i32.const 1))))))
    (if (local.get $old_len) (then (memory.copy (local.get $p) (local.get $old) (local.get $old_len))))
    (local.get $p))

  ;; Output buffer.
  (func $emit (param $ptr i32) (param $len i32)
    (memory.copy (global.get $out) (local.get $ptr) (local.get $len))
    (global.set $out (i32.add (global.get $out) (local.get $len))))
  (func $emit_byte (param $b i32)
    (i32.store8 (global.get $out) (local.get $b))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))
  (func $emit_ok (call $emit (i32.const 64) (i32.const 2)) (call $emit_byte (i32.const 32)))
  (func $emit_digit (param $d i32) (call $emit_byte (i32.add (local.get $d) (i32.const 48))))
  ;; "err <tag> <message>" from a host-error variant stored at $at (tag u8, string at +4, +8).
  (func $emit_err (param $at i32)
    (call $emit (i32.const 67) (i32.const 3))
    (call $emit_byte (i32.const 32))
    (call $emit_digit (i32.load8_u (local.get $at)))
    (call $emit_byte (i32.const 32))
    (call $emit (i32.load offset=4 (local.get $at)) (i32.load offset=8 (local.get $at))))

  ;; Next `|`-separated field of the input: (ptr, len).
  (func $field (result i32 i32)
    (local $start i32)
    (local.set $start (global.get $in))
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (global.get $in) (global.get $in_end)))
        (br_if $done (i32.eq (i32.load8_u (global.get $in)) (i32.const 124)))
        (global.set $in (i32.add (global.get $in) (i32.const 1)))
        (br $scan)))
    (local.get $start)
    (i32.sub (global.get $in) (local.get $start))
    ;; skip the separator
    (if (i32.lt_u (global.get $in) (global.get $in_end))
      (then (global.set $in (i32.add (global.get $in) (i32.const 1))))))

  (func $op_fetch
    (local $mp i32) (local $ml i32) (local $up i32) (local $ul i32)
    (call $field) (local.set $ml) (local.set $mp)
    (call $field) (local.set $ul) (local.set $up)
    ;; method, url, no headers, no body, no timeout; result at 0
    (call $fetch (local.get $mp) (local.get $ml) (local.get $up) (local.get $ul)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 0) (i32.const 0) (i32.const 0))
    (if (i32.load8_u (i32.const 0))
      (then (call $emit_err (i32.const 4)) (return)))
    (call $emit_ok)
    ;; status (u16 at 4) as three digits
    (call $emit_digit (i32.div_u (i32.load16_u (i32.const 4)) (i32.const 100)))
    (call $emit_digit (i32.rem_u (i32.div_u (i32.load16_u (i32.const 4)) (i32.const 10)) (i32.const 10)))
    (call $emit_digit (i32.rem_u (i32.load16_u (i32.const 4)) (i32.const 10)))
    (call $emit_byte (i32.const 32))
    ;; body list<u8> at 16, 20
    (call $emit (i32.load (i32.const 16)) (i32.load (i32.const 20))))

  (func $op_hmac
    (local $np i32) (local $nl i32) (local $dp i32) (local $dl i32) (local $p i32) (local $end i32)
    (call $field) (local.set $nl) (local.set $np)
    (call $field) (local.set $dl) (local.set $dp)
    (call $hmac (local.get $np) (local.get $nl) (local.get $dp) (local.get $dl) (i32.const 0))
    (if (i32.load8_u (i32.const 0))
      (then (call $emit_err (i32.const 4)) (return)))
    (call $emit_ok)
    (local.set $p (i32.load (i32.const 4)))
    (local.set $end (i32.add (local.get $p) (i32.load (i32.const 8))))
    (block $done
      (loop $hex
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (call $emit_byte (i32.load8_u (i32.add (i32.const 81) (i32.shr_u (i32.load8_u (local.get $p)) (i32.const 4)))))
        (call $emit_byte (i32.load8_u (i32.add (i32.const 81) (i32.and (i32.load8_u (local.get $p)) (i32.const 15)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $hex))))

  (func $op_reveal
    (local $np i32) (local $nl i32)
    (call $field) (local.set $nl) (local.set $np)
    (call $reveal (local.get $np) (local.get $nl) (i32.const 0))
    (if (i32.load8_u (i32.const 0))
      (then (call $emit_err (i32.const 4)) (return)))
    (call $emit_ok)
    (call $emit (i32.load (i32.const 4)) (i32.load (i32.const 8))))

  (func $op_get
    (local $cp i32) (local $cl i32) (local $kp i32) (local $kl i32)
    (call $field) (local.set $cl) (local.set $cp)
    (call $field) (local.set $kl) (local.set $kp)
    (call $get (local.get $cp) (local.get $cl) (local.get $kp) (local.get $kl) (i32.const 0))
    (if (i32.load8_u (i32.const 0))
      (then (call $emit_err (i32.const 4)) (return)))
    (call $emit_ok)
    (if (i32.eqz (i32.load8_u (i32.const 4)))
      (then (call $emit (i32.const 76) (i32.const 4)) (return)))
    (call $emit (i32.const 71) (i32.const 5))
    (call $emit (i32.load (i32.const 8)) (i32.load (i32.const 12))))

  (func $op_log
    (local $mp i32) (local $ml i32)
    (call $field) (local.set $ml) (local.set $mp)
    (call $log (i32.const 1) (local.get $mp) (local.get $ml))
    (call $emit (i32.const 64) (i32.const 2)))

  (func $op_many
    (local $np i32) (local $nl i32) (local $mp i32) (local $ml i32) (local $n i32)
    (call $field) (local.set $nl) (local.set $np)
    (call $field) (local.set $ml) (local.set $mp)
    ;; n: the decimal digits of its field
    (block $parsed
      (loop $digit
        (br_if $parsed (i32.eqz (local.get $nl)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
          (i32.sub (i32.load8_u (local.get $np)) (i32.const 48))))
        (local.set $np (i32.add (local.get $np) (i32.const 1)))
        (local.set $nl (i32.sub (local.get $nl) (i32.const 1)))
        (br $digit)))
    (block $done
      (loop $line
        (br_if $done (i32.eqz (local.get $n)))
        (call $log (i32.const 1) (local.get $mp) (local.get $ml))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $line)))
    (call $emit (i32.const 64) (i32.const 2)))

  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (local $op i32)
    (global.set $in (local.get $ptr))
    (global.set $in_end (i32.add (local.get $ptr) (local.get $len)))
    (global.set $out (i32.const 16384))
    (block $done
      (loop $next
        ;; the op is told apart by its first letter: f(etch), h(mac), r(eveal), g(et), l(og), m(any)
        (local.set $op (i32.load8_u (global.get $in)))
        (drop (call $field))
        (drop)
        (if (i32.eq (local.get $op) (i32.const 102)) (then (call $op_fetch)))
        (if (i32.eq (local.get $op) (i32.const 104)) (then (call $op_hmac)))
        (if (i32.eq (local.get $op) (i32.const 114)) (then (call $op_reveal)))
        (if (i32.eq (local.get $op) (i32.const 103)) (then (call $op_get)))
        (if (i32.eq (local.get $op) (i32.const 108)) (then (call $op_log)))
        (if (i32.eq (local.get $op) (i32.const 109)) (then (call $op_many)))
        ;; more fields: the next op, its answer after a newline
        (br_if $done (i32.ge_u (global.get $in) (global.get $in_end)))
        (call $emit_byte (i32.const 10))
        (br $next)))
    ;; result<string, string>::ok(output)
    (i32.store (i32.const 48) (i32.const 0))
    (i32.store (i32.const 52) (i32.const 16384))
    (i32.store (i32.const 56) (i32.sub (global.get $out) (i32.const 16384)))
    (i32.const 48))
)
