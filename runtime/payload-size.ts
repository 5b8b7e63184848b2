/**
 * The size of a value crossing from a guest: bytes of its strings (UTF-16 units) and byte
 * lists, and how many values (strings, numbers, list elements, fields) it holds. Counting stops
 * as soon as either passes its `stop`, so a hostile value costs at most that much walking. A
 * list or record nested deeper than {@link MAX_PAYLOAD_DEPTH} (no world's types are) counts as
 * past any stop on values. Used by the worker (a host call's arguments, a run's answer) and by
 * `openWarden` (an answer against its route's cap, before redaction).
 */

/** Lists and records nested deeper than this are not walked. */
export const MAX_PAYLOAD_DEPTH = 32

/** What {@link payloadSize} counted. */
export interface PayloadSize {
  bytes: number
  values: number
}

/**
 * @example
 * payloadSize({ a: 'xy', b: [1, 2] }, { bytes: 1e6, values: 1e3 }) // { bytes: 2, values: 6 }
 */
export function payloadSize(value: unknown, stop: PayloadSize): PayloadSize {
  const size = { bytes: 0, values: 0 }
  walk(value, stop, size, 0)
  return size
}

function walk(value: unknown, stop: PayloadSize, size: PayloadSize, depth: number): void {
  size.values++
  if (typeof value === 'string') {
    size.bytes += value.length
  } else if (ArrayBuffer.isView(value)) {
    // Any realm's typed array: the glue's realm makes the ones a guest passes.
    size.bytes += value.byteLength
  } else if (value !== null && typeof value === 'object' && depth > MAX_PAYLOAD_DEPTH) {
    size.values = Number.POSITIVE_INFINITY
  } else if (value !== null && typeof value === 'object') {
    for (const item of Array.isArray(value) ? value : Object.values(value)) {
      walk(item, stop, size, depth + 1)
      if (size.bytes > stop.bytes || size.values > stop.values) {
        return
      }
    }
  }
}
