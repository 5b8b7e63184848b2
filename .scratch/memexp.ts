// module: (memory 145) or (import "m" "mem" (memory 145 16384)), data segment 2.7 MB at 1 MiB, func touching a few pages
function leb(n: number): number[] { const o: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b) } while (n); return o }
function sleb(n: number): number[] { const o: number[] = []; for (;;) { const b = n & 0x7f; n >>= 7; if ((n === 0 && !(b & 0x40)) || (n === -1 && (b & 0x40))) { o.push(b); return o } o.push(b | 0x80) } }
function sec(id: number, body: number[]): number[] { return [id, ...leb(body.length), ...body] }
function str(s: string): number[] { return [...leb(s.length), ...Buffer.from(s)] }
const PAGES = 145, MAX = 16384
function build(imported: boolean): Uint8Array {
  const seg = new Uint8Array(2_700_000); for (let i = 0; i < seg.length; i += 97) seg[i] = i & 255
  const parts: number[] = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]
  parts.push(...sec(1, [1, 0x60, 0, 1, 0x7f]))
  if (imported) parts.push(...sec(2, [1, ...str('m'), ...str('mem'), 2, 1, ...leb(PAGES), ...leb(MAX)]))
  parts.push(...sec(3, [1, 0]))
  if (!imported) parts.push(...sec(5, [1, 1, ...leb(PAGES), ...leb(MAX)]))
  parts.push(...sec(7, [1, ...str('f'), 0, 0]))
  // f: store to 64 spread addresses, return load
  const body: number[] = [0]
  for (let k = 0; k < 64; k++) { body.push(0x41, ...sleb(k * 65536 * 2 + 8), 0x41, 1, 0x36, 2, 0) }
  body.push(0x41, 8, 0x28, 2, 0, 0x0b)
  parts.push(...sec(10, [1, ...leb(body.length), ...body]))
  const dataHead = [1, 0, 0x41, 0x80, 0x80, 0xc0, 0x00, 0x0b, ...leb(seg.length)]
  const out = new Uint8Array(parts.length + 1 + leb(dataHead.length + seg.length).length + dataHead.length + seg.length)
  let p = 0; out.set(parts, p); p += parts.length
  const sh = [11, ...leb(dataHead.length + seg.length), ...dataHead]; out.set(sh, p); p += sh.length; out.set(seg, p)
  return out
}
const modDef = new WebAssembly.Module(build(false))
const modImp = new WebAssembly.Module(build(true))
function cpu(): number { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
function measure(name: string, n: number, f: () => void) {
  for (let i = 0; i < 50; i++) f()
  const t0 = performance.now(), c0 = cpu()
  for (let i = 0; i < n; i++) f()
  const t1 = performance.now(), c1 = cpu()
  console.log(`${name}: wall ${((t1 - t0) / n * 1000).toFixed(0)} µs, cpu ${((c1 - c0) / n * 1000).toFixed(0)} µs per op`)
}
const N = Number(process.argv[2] ?? 1000)
for (let r = 0; r < 2; r++) {
measure('fresh defined memory', N, () => { const i = new WebAssembly.Instance(modDef, {}); (i.exports.f as () => number)() })
let spare = new WebAssembly.Memory({ initial: PAGES, maximum: MAX })
measure('reused memory, fill(0)', N, () => { new Uint8Array(spare.buffer).fill(0); const i = new WebAssembly.Instance(modImp, { m: { mem: spare } }); (i.exports.f as () => number)() })
const snap = new Uint8Array(spare.buffer).slice()
measure('reused memory, set(snapshot) (no data seg would be needed)', N, () => { new Uint8Array(spare.buffer).set(snap); const i = new WebAssembly.Instance(modImp, { m: { mem: spare } }); (i.exports.f as () => number)() })
measure('fresh Memory imported', N, () => { const m = new WebAssembly.Memory({ initial: PAGES, maximum: MAX }); const i = new WebAssembly.Instance(modImp, { m: { mem: m } }); (i.exports.f as () => number)() })
}
