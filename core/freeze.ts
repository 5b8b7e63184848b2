/** Deep freezing, for values shared by every caller (cached token claims, registry records). */

/**
 * `value`, with every object and array reachable from it frozen; returned as is.
 *
 * @example
 * const claims = deepFreeze(parsed.data) // shared by every verification of the same token
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const item of Object.values(value)) {
      deepFreeze(item)
    }
  }
  return value
}
