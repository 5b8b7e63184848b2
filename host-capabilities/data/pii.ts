/**
 * PII masking: replace the schema's PII fields in a document with {@link PII_MASK}.
 *
 * Paths are top-level names (`email`) or dotted paths (`address.street`). Arrays are
 * transparent: `phones.number` masks `number` in every element of `phones`, and a path applies
 * to every element of a top-level array. A field is masked whenever it is present, whatever its
 * value (`null`, an object, a list), so the mask never tells what kind of value was there. A
 * field whose own name contains `.` cannot be addressed.
 */

/** What a masked field reads as. */
export const PII_MASK = '[pii]'

/**
 * A copy of `value` with every path in `paths` masked. `value` itself is never modified.
 *
 * @example
 * maskPii({ name: 'Al', address: { street: '1 Main St' } }, ['address.street'])
 * // { name: 'Al', address: { street: '[pii]' } }
 */
export function maskPii(value: unknown, paths: readonly string[]): unknown {
  let out = value
  for (const path of paths) {
    out = maskPath(out, path.split('.'))
  }
  return out
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function maskPath(node: unknown, segments: readonly string[]): unknown {
  if (Array.isArray(node)) {
    return node.map((item) => maskPath(item, segments))
  }
  const [head, ...rest] = segments
  if (head === undefined || !isRecord(node) || !Object.hasOwn(node, head)) {
    return node
  }
  const next = rest.length === 0 ? PII_MASK : maskPath(node[head], rest)
  if (next === node[head]) {
    return node
  }
  const copy = { ...node }
  // defineProperty, not assignment: a field named `__proto__` must stay a plain field.
  Object.defineProperty(copy, head, {
    value: next,
    enumerable: true,
    writable: true,
    configurable: true,
  })
  return copy
}
