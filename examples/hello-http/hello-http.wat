;; hello-http: the smallest Warden HTTP micro-app (world `micro-app`, export `handler`).
;; GET answers "hello from Warden at <path>"; a request with a body gets its body back.
;; Every answer is 200 with `content-type: text/plain; charset=utf-8` and `x-method: <method>`.
;; It imports nothing, so it is low risk and approved on upload.
(component
  ;; `header` comes from the platform's types interface.
  (type $types-t (instance
    (type $header-def (record (field "name" string) (field "value" string)))
    (export "header" (type (eq $header-def)))))
  (import "warden:platform/types@0.1.0" (instance $types (type $types-t)))

  (core module $main
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 1024))
    (data (i32.const 256) "content-type")              ;; 12 bytes
    (data (i32.const 272) "text/plain; charset=utf-8") ;; 25 bytes
    (data (i32.const 304) "x-method")                  ;; 8 bytes
    (data (i32.const 320) "hello from Warden at ")     ;; 21 bytes

    ;; A bump allocator that grows memory as needed (a request body can be 1 MiB).
    (func $alloc (param $align i32) (param $size i32) (result i32)
      (local $p i32) (local $end i32) (local $have i32)
      (local.set $p (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $p) (local.get $size)))
      (local.set $have (i32.mul (memory.size) (i32.const 65536)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq (i32.const -1) (memory.grow (i32.shr_u
                (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                (i32.const 16))))
            (then unreachable))))
      (global.set $bump (local.get $end))
      (local.get $p))
    (func (export "cabi_realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
      (call $alloc (local.get $align) (local.get $size)))

    (func $copy (param $dst i32) (param $src i32) (param $len i32)
      (block $done
        (loop $next
          (br_if $done (i32.eqz (local.get $len)))
          (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
          (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
          (local.set $src (i32.add (local.get $src) (i32.const 1)))
          (local.set $len (i32.sub (local.get $len) (i32.const 1)))
          (br $next))))

    ;; handle(req) -> outgoing-response. The request record comes flattened: method, path,
    ;; query, headers and body, each as (pointer, length). The response is written at 128:
    ;; status u16 @0, headers list @4, body list @12.
    (func (export "warden:platform/handler@0.1.0#handle")
      (param $mp i32) (param $ml i32) (param $pp i32) (param $pl i32) (param $qp i32) (param $ql i32)
      (param $hp i32) (param $hl i32) (param $bp i32) (param $bl i32) (result i32)
      (local $out i32)
      ;; Two headers at 512: content-type, and x-method with the request's method.
      (i32.store (i32.const 512) (i32.const 256))
      (i32.store (i32.const 516) (i32.const 12))
      (i32.store (i32.const 520) (i32.const 272))
      (i32.store (i32.const 524) (i32.const 25))
      (i32.store (i32.const 528) (i32.const 304))
      (i32.store (i32.const 532) (i32.const 8))
      (i32.store (i32.const 536) (local.get $mp))
      (i32.store (i32.const 540) (local.get $ml))
      (i32.store16 (i32.const 128) (i32.const 200))
      (i32.store (i32.const 132) (i32.const 512))
      (i32.store (i32.const 136) (i32.const 2))
      (if (i32.gt_u (local.get $bl) (i32.const 0))
        (then
          ;; Echo the body.
          (i32.store (i32.const 140) (local.get $bp))
          (i32.store (i32.const 144) (local.get $bl)))
        (else
          ;; "hello from Warden at " + path
          (local.set $out (call $alloc (i32.const 1) (i32.add (i32.const 21) (local.get $pl))))
          (call $copy (local.get $out) (i32.const 320) (i32.const 21))
          (call $copy (i32.add (local.get $out) (i32.const 21)) (local.get $pp) (local.get $pl))
          (i32.store (i32.const 140) (local.get $out))
          (i32.store (i32.const 144) (i32.add (i32.const 21) (local.get $pl)))))
      (i32.const 128)))
  (core instance $main-i (instantiate $main))

  (alias export $types "header" (type $header))
  (type $incoming-request (record
    (field "method" string) (field "path" string) (field "query" string)
    (field "headers" (list $header)) (field "body" (list u8))))
  (type $outgoing-response (record
    (field "status" u16) (field "headers" (list $header)) (field "body" (list u8))))
  (func $handle (param "req" $incoming-request) (result $outgoing-response)
    (canon lift (core func $main-i "warden:platform/handler@0.1.0#handle")
      (memory $main-i "memory") (realloc (func $main-i "cabi_realloc")) string-encoding=utf8))

;; The exported interface: its types named as the WIT names them, and `handle`.
  (component $handler-c
    (type $header-def (record (field "name" string) (field "value" string)))
    (import "import-type-header" (type $header-in (eq $header-def)))
    (type $req-def (record
      (field "method" string) (field "path" string) (field "query" string)
      (field "headers" (list $header-in)) (field "body" (list u8))))
    (import "import-type-incoming-request" (type $req-in (eq $req-def)))
    (type $resp-def (record
      (field "status" u16) (field "headers" (list $header-in)) (field "body" (list u8))))
    (import "import-type-outgoing-response" (type $resp-in (eq $resp-def)))
    (import "import-func-handle" (func $f (param "req" $req-in) (result $resp-in)))
    (export $header-out "header" (type $header-in))
    (type $req-out-def (record
      (field "method" string) (field "path" string) (field "query" string)
      (field "headers" (list $header-out)) (field "body" (list u8))))
    (export $req-out "incoming-request" (type $req-out-def))
    (type $resp-out-def (record
      (field "status" u16) (field "headers" (list $header-out)) (field "body" (list u8))))
    (export $resp-out "outgoing-response" (type $resp-out-def))
    (export "handle" (func $f) (func (param "req" $req-out) (result $resp-out))))
  (instance $handler (instantiate $handler-c
    (with "import-type-header" (type $header))
    (with "import-type-incoming-request" (type $incoming-request))
    (with "import-type-outgoing-response" (type $outgoing-response))
    (with "import-func-handle" (func $handle))))
  (export "warden:platform/handler@0.1.0" (instance $handler))
)
