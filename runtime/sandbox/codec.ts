/**
 * The wire format of the shared channel: a small tagged binary encoding of the values that
 * cross it (jco-lifted WIT values and the protocol's plain objects). It replaces
 * `v8.serialize`, which costs ~7 µs per small message just to set up, on the bridge's hot path.
 *
 * Tags: undefined, null, false, true, int32, float64, bigint (signed or unsigned 64-bit),
 * string (UTF-8), bytes (Uint8Array), array, object (string keys). Anything else (another
 * typed array, a Map, …) is carried as a `v8.serialize` blob, so nothing is lost, only slower.
 */
import { Buffer } from 'node:buffer'
import { deserialize, serialize } from 'node:v8'

const UNDEFINED = 0
const NULL = 1
const FALSE = 2
const TRUE = 3
const INT32 = 4
const FLOAT64 = 5
const INT64 = 6
const UINT64 = 7
const STRING = 8
const BYTES = 9
const ARRAY = 10
const OBJECT = 11
const V8 = 12

const MAX_DEPTH = 256

/**
 * Prototypes of plain objects and of byte arrays: this realm's, plus those of every glue realm
 * (see `glue-realm.ts`), whose values cross the channel as often as ours.
 */
const PLAIN_PROTOTYPES = new WeakSet<object>([Object.prototype])
const BYTES_PROTOTYPES = new WeakSet<object>([Uint8Array.prototype])

/** Encode values made in another realm (a glue realm) as this realm's plain objects and bytes. */
export function adoptRealm(intrinsics: {
  Object: ObjectConstructor
  Uint8Array: Uint8ArrayConstructor
}): void {
  PLAIN_PROTOTYPES.add(intrinsics.Object.prototype)
  BYTES_PROTOTYPES.add(intrinsics.Uint8Array.prototype)
}
const SCRATCH_KEEP_BYTES = 4 * 1024 * 1024

/** Reused per thread: a message is encoded here, then copied out by the caller at once. */
let scratch = Buffer.allocUnsafeSlow(64 * 1024)
let pos = 0

function ensure(extra: number): void {
  if (pos + extra <= scratch.length) {
    return
  }
  let size = scratch.length * 2
  while (size < pos + extra) {
    size *= 2
  }
  const grown = Buffer.allocUnsafeSlow(size)
  scratch.copy(grown, 0, 0, pos)
  scratch = grown
}

function writeU32(value: number): void {
  ensure(4)
  scratch.writeUInt32LE(value, pos)
  pos += 4
}

function writeString(value: string): void {
  const n = value.length
  if (n < 128) {
    // Short strings (keys, names, URLs) are usually ASCII: copy them without a C++ call.
    ensure(4 + n)
    let i = 0
    for (; i < n; i++) {
      const c = value.charCodeAt(i)
      if (c > 0x7f) {
        break
      }
      scratch[pos + 4 + i] = c
    }
    if (i === n) {
      scratch.writeUInt32LE(n, pos)
      pos += 4 + n
      return
    }
  }
  // Exact size: a guest's 48 MiB string must not become a 144 MiB allocation here.
  const max = Buffer.byteLength(value)
  ensure(4 + max)
  const written = scratch.write(value, pos + 4, max, 'utf8')
  scratch.writeUInt32LE(written, pos)
  pos += 4 + written
}

function write(value: unknown, depth: number): void {
  if (depth > MAX_DEPTH) {
    throw new TypeError('value nested too deeply to cross the channel')
  }
  switch (typeof value) {
    case 'undefined':
      ensure(1)
      scratch[pos++] = UNDEFINED
      return
    case 'boolean':
      ensure(1)
      scratch[pos++] = value ? TRUE : FALSE
      return
    case 'number':
      if (
        Number.isInteger(value) &&
        value >= -0x80000000 &&
        value <= 0x7fffffff &&
        !Object.is(value, -0)
      ) {
        ensure(5)
        scratch[pos++] = INT32
        scratch.writeInt32LE(value, pos)
        pos += 4
      } else {
        ensure(9)
        scratch[pos++] = FLOAT64
        scratch.writeDoubleLE(value, pos)
        pos += 8
      }
      return
    case 'bigint':
      ensure(9)
      if (value >= -(1n << 63n) && value < 1n << 63n) {
        scratch[pos++] = INT64
        scratch.writeBigInt64LE(value, pos)
      } else if (value >= 0n && value < 1n << 64n) {
        scratch[pos++] = UINT64
        scratch.writeBigUInt64LE(value, pos)
      } else {
        writeBlob(value)
        return
      }
      pos += 8
      return
    case 'string':
      ensure(1)
      scratch[pos++] = STRING
      writeString(value)
      return
    case 'object': {
      if (value === null) {
        ensure(1)
        scratch[pos++] = NULL
        return
      }
      const proto = Object.getPrototypeOf(value) as object | null
      if (proto !== null && BYTES_PROTOTYPES.has(proto) && ArrayBuffer.isView(value)) {
        const bytes = value as Uint8Array
        ensure(5 + bytes.length)
        scratch[pos++] = BYTES
        scratch.writeUInt32LE(bytes.length, pos)
        scratch.set(bytes, pos + 4)
        pos += 4 + bytes.length
        return
      }
      if (Array.isArray(value)) {
        ensure(1)
        scratch[pos++] = ARRAY
        writeU32(value.length)
        for (let i = 0; i < value.length; i++) {
          write(value[i], depth + 1)
        }
        return
      }
      if (proto !== null && PLAIN_PROTOTYPES.has(proto)) {
        const keys = Object.keys(value)
        ensure(1)
        scratch[pos++] = OBJECT
        writeU32(keys.length)
        for (const key of keys) {
          writeString(key)
          write((value as Record<string, unknown>)[key], depth + 1)
        }
        return
      }
      writeBlob(value)
      return
    }
    default:
      throw new TypeError(`a ${typeof value} cannot cross the channel`)
  }
}

function writeBlob(value: unknown): void {
  const blob = serialize(value)
  ensure(5 + blob.length)
  scratch[pos++] = V8
  scratch.writeUInt32LE(blob.length, pos)
  blob.copy(scratch, pos + 4)
  pos += 4 + blob.length
}

/**
 * Encode `value`. The result is a view of a buffer reused by the next call: copy it (into the
 * channel) before encoding anything else.
 */
export function encode(value: unknown, options: { native?: boolean } = {}): Uint8Array {
  pos = 0
  if (scratch.length > SCRATCH_KEEP_BYTES) {
    // The previous (large) message has been copied out: give its memory back.
    scratch = Buffer.allocUnsafeSlow(64 * 1024)
  }
  if (options.native) {
    // Large, many-object messages (a run's logs and decisions) are faster through V8's own
    // serialiser; small ones are faster here.
    writeBlob(value)
  } else {
    write(value, 0)
  }
  return scratch.subarray(0, pos)
}

/** Decode a message produced by {@link encode}. `bytes` may be a view of shared memory. */
export function decode(bytes: Uint8Array): unknown {
  // One copy out of shared memory: decoded bytes and strings must not alias the channel.
  const buf = Buffer.from(bytes)
  const reader = { at: 0 }
  const value = read(buf, reader, 0)
  if (reader.at !== buf.length) {
    throw new TypeError('trailing bytes after a channel message')
  }
  return value
}

function read(buf: Buffer, r: { at: number }, depth: number): unknown {
  if (depth > MAX_DEPTH) {
    // The decoder reads what a worker wrote: a forged message must not overflow this stack.
    throw new TypeError('channel message nested too deeply')
  }
  const tag = buf[r.at++]
  switch (tag) {
    case UNDEFINED:
      return undefined
    case NULL:
      return null
    case FALSE:
      return false
    case TRUE:
      return true
    case INT32:
      r.at += 4
      return buf.readInt32LE(r.at - 4)
    case FLOAT64:
      r.at += 8
      return buf.readDoubleLE(r.at - 8)
    case INT64:
      r.at += 8
      return buf.readBigInt64LE(r.at - 8)
    case UINT64:
      r.at += 8
      return buf.readBigUInt64LE(r.at - 8)
    case STRING:
      return readString(buf, r)
    case BYTES: {
      const start = readSpan(buf, r)
      return new Uint8Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + r.at))
    }
    case ARRAY: {
      const count = buf.readUInt32LE(r.at)
      r.at += 4
      const out = new Array<unknown>(Math.min(count, buf.length))
      for (let i = 0; i < count; i++) {
        out[i] = read(buf, r, depth + 1)
      }
      return out
    }
    case OBJECT: {
      const count = buf.readUInt32LE(r.at)
      r.at += 4
      const out: Record<string, unknown> = {}
      for (let i = 0; i < count; i++) {
        const key = readKey(buf, r)
        const item = read(buf, r, depth + 1)
        if (key === '__proto__') {
          // NB: defineProperty, so a key named `__proto__` is data, not a prototype change.
          Object.defineProperty(out, key, {
            value: item,
            enumerable: true,
            writable: true,
            configurable: true,
          })
        } else {
          out[key] = item
        }
      }
      return out
    }
    case V8:
      return deserialize(buf.subarray(readSpan(buf, r), r.at))
    default:
      throw new TypeError(`unknown tag ${String(tag)} in a channel message`)
  }
}

function readString(buf: Buffer, r: { at: number }): string {
  const start = readSpan(buf, r)
  return r.at - start < 32 && isAscii(buf, start, r.at)
    ? buf.toString('latin1', start, r.at)
    : buf.toString('utf8', start, r.at)
}

function isAscii(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (buf[i]! > 0x7f) {
      return false
    }
  }
  return true
}

/**
 * Object keys decoded lately, by a hash of their bytes: a message's keys are nearly always the
 * same few dozen names, and a key made afresh each time costs a string and its internalisation
 * (V8's string table) when it is stored. Bounded (one key per slot, short ASCII keys only) and
 * checked byte for byte on a hit, so a forged message can only miss, never read as another key.
 */
const KEY_SLOTS = 4096
const MAX_CACHED_KEY = 32
const keyCache: (string | undefined)[] = new Array<string | undefined>(KEY_SLOTS).fill(undefined)

function readKey(buf: Buffer, r: { at: number }): string {
  const start = readSpan(buf, r)
  const end = r.at
  const n = end - start
  if (n > MAX_CACHED_KEY) {
    return buf.toString('utf8', start, end)
  }
  let h = n
  for (let i = start; i < end; i++) {
    const c = buf[i]!
    if (c > 0x7f) {
      return buf.toString('utf8', start, end)
    }
    h = (Math.imul(h, 31) + c) | 0
  }
  const slot = h & (KEY_SLOTS - 1)
  const hit = keyCache[slot]
  if (hit !== undefined && hit.length === n) {
    let i = 0
    while (i < n && hit.charCodeAt(i) === buf[start + i]) {
      i++
    }
    if (i === n) {
      return hit
    }
  }
  // NB: the key as V8's string table holds it (a property name is internalised), so a hit is
  // a store without a table lookup.
  const key = Object.keys({ [buf.toString('latin1', start, end)]: true })[0]!
  keyCache[slot] = key
  return key
}

/** A length-prefixed span: returns its start and moves `r.at` past its end. */
function readSpan(buf: Buffer, r: { at: number }): number {
  const start = r.at + 4
  r.at = start + buf.readUInt32LE(r.at)
  if (r.at > buf.length) {
    throw new RangeError('truncated channel message')
  }
  return start
}
