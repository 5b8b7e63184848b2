/**
 * Canonical JSON: the one encoding the audit chain hashes and writes, so that the same record
 * always has the same bytes (and so the same hash) wherever it is re-encoded.
 */

/**
 * Encode `value` as canonical JSON: object keys sorted by UTF-16 code unit (as RFC 8785 and
 * `Array.prototype.sort` do), no whitespace, strings and numbers exactly as `JSON.stringify`
 * writes them (so lone surrogates come out as `\udXXX` escapes). `toJSON` is honoured and
 * properties whose value is `undefined` are left out, as in `JSON.stringify`.
 *
 * Throws a TypeError for what JSON cannot carry faithfully: non-finite numbers, BigInt,
 * functions, symbols, cycles, and `undefined` at the top level or inside an array (where
 * `JSON.stringify` would quietly write `null`).
 *
 * @example
 * canonicalJson({ b: 1, a: [true, null, 'x'] }) // '{"a":[true,null,"x"],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  const encoded = encode(value, '', [], [])
  if (encoded === undefined) {
    throw new TypeError('canonicalJson: undefined has no JSON encoding')
  }
  return encoded
}

// What JSON.stringify escapes: `"`, `\`, C0 controls, and (well-formed JSON.stringify) surrogates
// when lone. Strings without any of these are quoted as they are, which is most of a record.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

function quote(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`
}

/** `$.a[0].b`, built only when there is an error to report. */
function where(path: readonly string[]): string {
  return `$${path.map((key) => (/^\d+$/.test(key) ? `[${key}]` : `.${key}`)).join('')}`
}

function invalid(what: string, path: readonly string[]): TypeError {
  return new TypeError(`canonicalJson: ${what} at ${where(path)}`)
}

// NB: `stack` holds the objects being encoded (cycle check), `path` their keys; both are pushed
// and popped rather than copied, since this runs twice per audit record.
function encode(input: unknown, key: string, stack: object[], path: string[]): string | undefined {
  let value = input
  if (typeof value === 'object' && value !== null) {
    const toJSON = (value as { toJSON?: unknown }).toJSON
    if (typeof toJSON === 'function') {
      value = (toJSON as (key: string) => unknown).call(value, key)
    }
    if (value instanceof Number || value instanceof String || value instanceof Boolean) {
      value = value.valueOf()
    }
  }
  switch (typeof value) {
    case 'string':
      return quote(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'number':
      if (!Number.isFinite(value)) {
        throw invalid('a non-finite number', path)
      }
      // Number#toString is what JSON.stringify writes (-0 included: both give '0').
      return String(value)
    case 'undefined':
      return undefined
    case 'bigint':
      throw invalid('a BigInt', path)
    case 'function':
    case 'symbol':
      throw invalid(`a ${typeof value}`, path)
    default:
      break
  }
  if (value === null) {
    return 'null'
  }
  const object = value as object
  if (stack.includes(object)) {
    throw invalid('a cycle', path)
  }
  stack.push(object)
  let out: string
  if (Array.isArray(object)) {
    out = '['
    for (let i = 0; i < object.length; i++) {
      const name = String(i)
      path.push(name)
      const part = encode(object[i], name, stack, path)
      if (part === undefined) {
        throw invalid('undefined', path)
      }
      path.pop()
      out += i === 0 ? part : `,${part}`
    }
    out += ']'
  } else {
    const record = object as Record<string, unknown>
    out = '{'
    let first = true
    for (const name of Object.keys(record).sort()) {
      path.push(name)
      const part = encode(record[name], name, stack, path)
      path.pop()
      if (part !== undefined) {
        out += `${first ? '' : ','}${quote(name)}:${part}`
        first = false
      }
    }
    out += '}'
  }
  stack.pop()
  return out
}
