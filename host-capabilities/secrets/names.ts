/**
 * Secret names: lowercase ASCII, safe as file names and Redis keys, never confusable with a
 * path. Shared by the grant (pure) and the store (I/O).
 */

/** What a secret name looks like: `^[a-z][a-z0-9_]{0,63}$`. */
export const SECRET_NAME_PATTERN = /^[a-z][a-z0-9_]{0,63}$/

/**
 * True when `name` is a valid secret name.
 *
 * @example
 * isSecretName('github_token') // true
 * isSecretName('../etc/passwd') // false
 */
export function isSecretName(name: unknown): name is string {
  return typeof name === 'string' && SECRET_NAME_PATTERN.test(name)
}

/** Throw a `TypeError` (host misuse) unless `name` is a valid secret name. */
export function assertSecretName(name: unknown): asserts name is string {
  if (!isSecretName(name)) {
    throw new TypeError('secret name must match ^[a-z][a-z0-9_]{0,63}$')
  }
}
