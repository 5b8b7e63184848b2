/**
 * A componentize-js guest of `test/bridge.test.ts` (world `guest` of `test/support/js-guest.ts`).
 *
 * `run(input)` parses `{ "op": ..., ... }` and calls `warden:test/echo` (or `log`), so the test
 * sees, from inside a real guest, what crossed the bridge. JSON cannot carry bytes or
 * `undefined`, so items travel as `{ name, tags, score: number | null, blob: number[] }`, and
 * every value coming back is shape-checked here: a wrong shape fails the run with `err`.
 *
 * NB: with componentize-js 0.23, `instanceof Uint8Array` is false for the byte lists the bindings
 * hand the guest (their constructor is named Uint8Array but is not this module's), so bytes are
 * recognised by their `toStringTag`.
 */
import { write } from 'warden:platform/log@0.1.0'
import { bytes, echoItem, echoList, fail, hang } from 'warden:test/echo@0.1.0'

/** JSON item → WIT `item`: an absent option is `undefined`, `list<u8>` a Uint8Array. */
function toItem(json) {
  return {
    name: json.name,
    tags: json.tags,
    score: json.score === null ? undefined : json.score,
    blob: Uint8Array.from(json.blob),
  }
}

/** True for a Uint8Array of any realm. */
function isBytes(value) {
  return Object.prototype.toString.call(value) === '[object Uint8Array]'
}

/** WIT `item` → JSON item, refusing anything that is not exactly the shape jco promises. */
function fromItem(item) {
  const keys = Object.keys(item).sort().join(',')
  if (keys !== 'blob,name,score,tags') {
    throw `item has fields ${keys}`
  }
  if (typeof item.name !== 'string') {
    throw 'name is not a string'
  }
  if (!Array.isArray(item.tags) || item.tags.some((t) => typeof t !== 'string')) {
    throw 'tags is not a list of strings'
  }
  if (item.score !== undefined && typeof item.score !== 'number') {
    throw 'score is neither a number nor undefined'
  }
  if (!isBytes(item.blob)) {
    throw 'blob is not a Uint8Array'
  }
  return {
    name: item.name,
    tags: item.tags,
    score: item.score === undefined ? null : item.score,
    blob: Array.from(item.blob),
  }
}

/** FNV-1a over the bytes, as an unsigned 32-bit number. */
function fnv1a(data) {
  let hash = 0x811c9dc5
  for (let i = 0; i < data.length; i++) {
    hash ^= data[i]
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/** Bytes per chunk of {@link checksum}. */
const CHUNK = 4096

/**
 * FNV-1a (over 32-bit words) of the FNV-1a of each 4 KiB chunk: a function of every byte and
 * its position. Identical chunks are hashed once, found through a Map keyed by the chunk's text
 * (built and hashed natively). A loop iteration costs ~11k fuel in this interpreter, so a plain
 * per-byte loop over 3 MiB would run for half a minute; the echo pattern repeats every 256
 * bytes, so all its full chunks are one.
 */
function checksum(data) {
  const seen = new Map()
  let hash = 0x811c9dc5
  for (let start = 0; start < data.length; start += CHUNK) {
    const chunk = data.subarray(start, start + CHUNK)
    const key = String.fromCharCode.apply(null, chunk)
    let chunkHash = seen.get(key)
    if (chunkHash === undefined) {
      chunkHash = fnv1a(chunk)
      seen.set(key, chunkHash)
    }
    hash = Math.imul(hash ^ chunkHash, 0x01000193)
  }
  return hash >>> 0
}

/** `size` bytes of the echo pattern, `(i * 31 + 7) mod 256`, filled natively past 256. */
function pattern(size) {
  const data = new Uint8Array(size)
  for (let i = 0; i < Math.min(size, 256); i++) {
    data[i] = (i * 31 + 7) & 0xff
  }
  for (let filled = 256; filled < size; filled *= 2) {
    data.copyWithin(filled, 0, Math.min(filled, size - filled))
  }
  return data
}

/** A caught host error: the WIT `err` payload when there is one, else what was thrown. */
function caught(error) {
  if (error && typeof error === 'object' && 'payload' in error) {
    return { err: error.payload }
  }
  return { thrown: String(error) }
}

function dispatch(request) {
  switch (request.op) {
    case 'echoItem':
      try {
        return { ok: fromItem(echoItem(toItem(request.item))) }
      } catch (error) {
        return caught(error)
      }
    case 'echoList': {
      const items = echoList(request.items.map(toItem))
      if (!Array.isArray(items)) {
        throw 'echoList did not return a list'
      }
      return { ok: items.map(fromItem) }
    }
    case 'bytes': {
      const data = bytes(request.size)
      if (!isBytes(data)) {
        throw 'bytes did not return a Uint8Array'
      }
      return { ok: { length: data.length, checksum: checksum(data) } }
    }
    case 'echoBig': {
      // A request past the shared channel: `size` bytes of the echo pattern, sent and echoed.
      const blob = pattern(request.size)
      const back = echoItem({ name: 'big', tags: [], score: undefined, blob })
      if (!isBytes(back.blob)) {
        throw 'echoItem did not return a Uint8Array blob'
      }
      return { ok: { length: back.blob.length, checksum: checksum(back.blob) } }
    }
    case 'fail':
      try {
        return { ok: fail(request.reason) }
      } catch (error) {
        return caught(error)
      }
    case 'hang':
      hang()
      return { ok: 'hang returned' }
    case 'log':
      write('info', request.text)
      return { ok: 'logged' }
    default:
      throw `unknown op ${String(request.op)}`
  }
}

/** The `action` export: JSON in, JSON out. */
export function run(input) {
  return JSON.stringify(dispatch(JSON.parse(input)))
}
