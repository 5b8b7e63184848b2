/**
 * Whether a string is one JSON text (RFC 8259, exactly what `JSON.parse` accepts), nested at
 * most `maxDepth` arrays and objects deep, found in one pass without building anything.
 *
 * The server answers a guest's output as JSON when it is JSON: parsing it into objects and
 * serialising them again on the main thread cost ~45 ms per MiB of `[{},{},…]` and blocked every
 * other request meanwhile (ninth outside attack); checking it costs a few ms per MiB, after which
 * the text itself goes into the answer. So this must accept nothing `JSON.parse` refuses: a text
 * it accepted would be spliced into the answer as it is (`control-plane/json-text.test.ts` compares the
 * two on generated and mutated texts).
 */

/** Nesting the answer of a run may have and still be answered as JSON (deeper: as a string). */
export const MAX_JSON_DEPTH = 1_000

const SPACE = 0x20
const TAB = 0x09
const LF = 0x0a
const CR = 0x0d
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d

/** Whether `text` is one JSON text nested at most `maxDepth` deep. */
export function isJsonText(text: string, maxDepth: number = MAX_JSON_DEPTH): boolean {
  const n = text.length
  // Per open container: 1 for an object, 0 for an array.
  const objects = new Uint8Array(maxDepth + 1)
  let depth = 0
  let i = whitespace(text, 0)
  for (;;) {
    // A value starts at i.
    const c = text.charCodeAt(i)
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth === maxDepth) {
        return false
      }
      const isObject = c === OPEN_OBJECT
      objects[depth++] = isObject ? 1 : 0
      i = whitespace(text, i + 1)
      if (text.charCodeAt(i) === (isObject ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        depth--
        i++
      } else {
        if (isObject) {
          i = member(text, i)
          if (i < 0) {
            return false
          }
        }
        continue
      }
    } else if (c === QUOTE) {
      i = string(text, i)
    } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
      i = number(text, i)
    } else if (text.startsWith('true', i) || text.startsWith('null', i)) {
      i += 4
    } else if (text.startsWith('false', i)) {
      i += 5
    } else {
      return false
    }
    if (i < 0) {
      return false
    }
    // After a value: close containers, or go on to the next element or member.
    for (;;) {
      i = whitespace(text, i)
      if (depth === 0) {
        return i === n
      }
      const next = text.charCodeAt(i)
      const isObject = objects[depth - 1] === 1
      if (next === COMMA) {
        i = whitespace(text, i + 1)
        if (isObject) {
          i = member(text, i)
          if (i < 0) {
            return false
          }
        }
        break
      }
      if (next !== (isObject ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        return false
      }
      depth--
      i++
    }
  }
}

function whitespace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i)
    if (c !== SPACE && c !== LF && c !== CR && c !== TAB) {
      return i
    }
    i++
  }
}

/** A member's key and colon at `i`: where its value starts, or -1. */
function member(text: string, i: number): number {
  if (text.charCodeAt(i) !== QUOTE) {
    return -1
  }
  i = string(text, i)
  if (i < 0) {
    return -1
  }
  i = whitespace(text, i)
  return text.charCodeAt(i) === COLON ? whitespace(text, i + 1) : -1
}

/** The end of the string starting with the quote at `i`, or -1. */
function string(text: string, i: number): number {
  const n = text.length
  i++
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      return i + 1
    }
    if (c < SPACE) {
      return -1
    }
    if (c === BACKSLASH) {
      const e = text.charCodeAt(i + 1)
      if (e === 0x75 /* u */) {
        for (let k = i + 2; k < i + 6; k++) {
          if (!isHex(text.charCodeAt(k))) {
            return -1
          }
        }
        i += 6
        continue
      }
      // " \ / b f n r t
      if (
        e !== QUOTE &&
        e !== BACKSLASH &&
        e !== 0x2f &&
        e !== 0x62 &&
        e !== 0x66 &&
        e !== 0x6e &&
        e !== 0x72 &&
        e !== 0x74
      ) {
        return -1
      }
      i += 2
      continue
    }
    i++
  }
  return -1
}

/** The end of the number starting at `i`, or -1. */
function number(text: string, i: number): number {
  if (text.charCodeAt(i) === MINUS) {
    i++
  }
  const first = text.charCodeAt(i)
  if (first === ZERO) {
    i++
  } else if (first > ZERO && first <= NINE) {
    i = digits(text, i)
  } else {
    return -1
  }
  if (text.charCodeAt(i) === DOT) {
    const end = digits(text, i + 1)
    if (end === i + 1) {
      return -1
    }
    i = end
  }
  const e = text.charCodeAt(i)
  if (e === 0x65 /* e */ || e === 0x45 /* E */) {
    i++
    const sign = text.charCodeAt(i)
    if (sign === PLUS || sign === MINUS) {
      i++
    }
    const end = digits(text, i)
    if (end === i) {
      return -1
    }
    i = end
  }
  return i
}

function digits(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i)
    // Past the end c is NaN, which is no digit either.
    if (!(c >= ZERO && c <= NINE)) {
      return i
    }
    i++
  }
}

function isHex(c: number): boolean {
  return (c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}
