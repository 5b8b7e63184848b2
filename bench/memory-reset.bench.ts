/**
 * What a fresh linear memory costs a new instance, against one kept from an earlier run and
 * reset (runtime/sandbox/memories.ts). The module is shaped like a componentize-js guest's main
 * module: 145 pages (9.5 MB), a 2.7 MB data segment, and a run that touches a page in every two.
 * CPU is what counts: part of a fresh memory's cost is paid later, by V8's helper threads, when
 * the collector frees it. Baseline: a fresh memory per instance, as before memories were kept.
 */
import { ByteWriter } from '../runtime/limits/instrument/bytes.js'
import { measure } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'a new instance of a 9.5 MB guest: fresh memory vs a kept one, reset'
const PAGES = 145
const MAX_PAGES = 16_384
const SEGMENT_AT = 1 << 20
const SEGMENT_BYTES = 2_700_000

/** A section: its id, then its body (written by `body`) with its size in front. */
function section(out: ByteWriter, id: number, body: (w: ByteWriter) => void): void {
  const w = new ByteWriter(1 << 12)
  body(w)
  out.byte(id)
  out.u32(w.pos)
  out.copy(w.buf, 0, w.pos)
}

/** The module, with its memory defined, or imported as `m.memory` (as the loader makes it). */
function guest(imported: boolean): WebAssembly.Module {
  const limits = (w: ByteWriter) => {
    w.byte(0x01)
    w.u32(PAGES)
    w.u32(MAX_PAGES)
  }
  const segment = new Uint8Array(SEGMENT_BYTES)
  for (let i = 0; i < segment.length; i += 97) {
    segment[i] = i & 0xff
  }
  const out = new ByteWriter(SEGMENT_BYTES + (1 << 16))
  out.copy(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), 0, 8)
  section(out, 1, (w) => w.copy(new Uint8Array([1, 0x60, 0, 1, 0x7f]), 0, 5))
  if (imported) {
    section(out, 2, (w) => {
      w.u32(1)
      w.name('m')
      w.name('memory')
      w.byte(0x02)
      limits(w)
    })
  }
  section(out, 3, (w) => w.copy(new Uint8Array([1, 0]), 0, 2))
  if (!imported) {
    section(out, 5, (w) => {
      w.u32(1)
      limits(w)
    })
  }
  section(out, 7, (w) => {
    w.u32(1)
    w.name('touch')
    w.byte(0)
    w.u32(0)
  })
  // `touch`: one store in every other page, then a load.
  const body = new ByteWriter(1 << 12)
  body.byte(0) // no locals
  for (let page = 0; page < PAGES; page += 2) {
    body.byte(0x41) // i32.const address
    body.s64(page * 65_536 + 8)
    body.copy(new Uint8Array([0x41, 1, 0x36, 2, 0]), 0, 5) // i32.const 1; i32.store
  }
  body.copy(new Uint8Array([0x41, 8, 0x28, 2, 0, 0x0b]), 0, 6) // i32.load 8; end
  section(out, 10, (w) => {
    w.u32(1)
    w.u32(body.pos)
    w.copy(body.buf, 0, body.pos)
  })
  section(out, 11, (w) => {
    w.u32(1)
    w.byte(0) // active, memory 0
    w.byte(0x41) // i32.const offset
    w.s64(SEGMENT_AT)
    w.byte(0x0b)
    w.u32(SEGMENT_BYTES)
    w.copy(segment, 0, SEGMENT_BYTES)
  })
  return new WebAssembly.Module(out.buf.slice(0, out.pos) as Uint8Array<ArrayBuffer>)
}

export async function run(): Promise<Row[]> {
  const defined = guest(false)
  const imported = guest(true)
  const touch = (instance: WebAssembly.Instance) => (instance.exports.touch as () => number)()
  const kept = new WebAssembly.Memory({ initial: PAGES, maximum: MAX_PAGES })
  const image = new Uint8Array(PAGES * 65_536)
  new WebAssembly.Instance(imported, { m: { memory: kept } })
  image.set(new Uint8Array(kept.buffer))
  const m = await measure({
    fresh: () => touch(new WebAssembly.Instance(defined)),
    zeroed: () => {
      new Uint8Array(kept.buffer).fill(0)
      touch(new WebAssembly.Instance(imported, { m: { memory: kept } }))
    },
    image: () => {
      new Uint8Array(kept.buffer).set(image)
      touch(new WebAssembly.Instance(imported, { m: { memory: kept } }))
    },
  })
  const row = (key: string, label: string): Row => ({
    question: QUESTION,
    name: label,
    medianUs: m[key]!.cpuUs,
    ...(key === 'fresh' ? {} : { ratio: m[key]!.cpuUs / m.fresh!.cpuUs, baseline: 'fresh' }),
    note: `CPU per instance, every thread; wall median ${m[key]!.medianUs.toFixed(0)} µs`,
  })
  return [
    row('fresh', 'fresh memory per instance (baseline)'),
    row('zeroed', 'kept memory: zeroed, data segments written at instantiation (Warden)'),
    row('image', 'kept memory: an image of the initial memory copied over it'),
  ]
}
