/**
 * Byte-level reading and writing: LEB128 decoding over the input, and a growable output buffer.
 * Nothing here allocates per byte.
 */
import { malformed } from './errors.js'

export const utf8 = new TextEncoder()
export const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/** Growable byte buffer; no per-byte allocation. */
export class ByteWriter {
  buf: Uint8Array
  pos = 0

  constructor(capacity: number) {
    this.buf = new Uint8Array(Math.max(64, capacity))
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) {
      this.grow(n)
    }
  }

  private grow(n: number): void {
    let cap = this.buf.length * 2
    while (cap < this.pos + n) {
      cap *= 2
    }
    const next = new Uint8Array(cap)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }

  byte(v: number): void {
    if (this.pos >= this.buf.length) {
      this.grow(1)
    }
    this.buf[this.pos++] = v
  }

  u32(v: number): void {
    this.ensure(5)
    const buf = this.buf
    let x = v >>> 0
    for (;;) {
      const low = x & 0x7f
      x >>>= 7
      if (x === 0) {
        buf[this.pos++] = low
        return
      }
      buf[this.pos++] = low | 0x80
    }
  }

  /** Signed LEB128 of a non-negative safe integer (an i64.const immediate). */
  s64(v: number): void {
    this.ensure(10)
    const buf = this.buf
    let x = v
    for (;;) {
      const low = x % 128
      x = Math.floor(x / 128)
      if (x === 0 && (low & 0x40) === 0) {
        buf[this.pos++] = low
        return
      }
      buf[this.pos++] = low | 0x80
    }
  }

  copy(src: Uint8Array, from: number, to: number): void {
    const n = to - from
    if (n <= 0) {
      return
    }
    this.ensure(n)
    if (n < 48) {
      const buf = this.buf
      let pos = this.pos
      for (let i = from; i < to; i++) {
        buf[pos++] = src[i]
      }
      this.pos = pos
    } else {
      this.buf.set(src.subarray(from, to), this.pos)
      this.pos += n
    }
  }

  /** A WebAssembly name: LEB128 length, then UTF-8 bytes. */
  name(s: string): void {
    const enc = utf8.encode(s)
    this.u32(enc.length)
    this.copy(enc, 0, enc.length)
  }
}

/** End of the LEB128 starting at p: at most `max` bytes, all before `end`. */
export function lebEnd(b: Uint8Array, p: number, end: number, max: number): number {
  const limit = p + max
  while (p < end) {
    if ((b[p++] & 0x80) === 0) {
      return p
    }
    if (p >= limit) {
      throw malformed('integer representation too long', p)
    }
  }
  throw malformed('unexpected end', p)
}

/** Value of the unsigned LEB128 in b[p, q) (as found by lebEnd with max 5); rejects > u32. */
export function decodeU32(b: Uint8Array, p: number, q: number): number {
  let v = 0
  let scale = 1
  for (let i = p; i < q; i++) {
    v += (b[i] & 0x7f) * scale
    scale *= 128
  }
  if (v > 0xffff_ffff) {
    throw malformed('integer too large', p)
  }
  return v
}

/** Bytes of the unsigned LEB128 encoding of v. */
export function lebLength(v: number): number {
  let n = 1
  while (v >= 0x80) {
    v = Math.floor(v / 128)
    n++
  }
  return n
}

export function bytesEqual(b: Uint8Array, p: number, len: number, want: Uint8Array): boolean {
  if (len !== want.length) {
    return false
  }
  for (let i = 0; i < len; i++) {
    if (b[p + i] !== want[i]) {
      return false
    }
  }
  return true
}
