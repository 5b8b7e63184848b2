/**
 * `warden secret set|list|delete`: write, list and delete secrets. Values go in and never
 * come out: there is no `get`, and `list` shows names and update times only.
 */
import { WardenError } from '../../runtime/index.js'
import type { Warden } from '../../runtime/index.js'
import { isSecretName, MAX_SECRET_BYTES } from '../../host-capabilities/secrets/index.js'

/** Where `secret set` reads the value: stdin, or a named environment variable. */
export type SecretValueSource =
  | { stdin: () => Promise<string> }
  | { fromEnv: string; env: Readonly<Record<string, string | undefined>> }

/**
 * The secret value from its source. From stdin, one trailing newline (`\n` or `\r\n`) is cut,
 * so `echo "$VALUE" | warden secret set name` stores `$VALUE`. Throws `invalid_request` for an
 * unset variable or an empty or oversized value. Never echoes the value.
 */
export async function readSecretValue(source: SecretValueSource): Promise<string> {
  let value: string
  if ('fromEnv' in source) {
    const found = source.env[source.fromEnv]
    if (found === undefined) {
      throw new WardenError('invalid_request', `environment variable ${source.fromEnv} is not set`)
    }
    value = found
  } else {
    value = (await source.stdin()).replace(/\r?\n$/, '')
  }
  const bytes = Buffer.byteLength(value, 'utf8')
  if (bytes === 0 || bytes > MAX_SECRET_BYTES || !value.isWellFormed()) {
    throw new WardenError(
      'invalid_request',
      `a secret value must be 1 to ${MAX_SECRET_BYTES} bytes of text (got ${bytes} bytes)`,
    )
  }
  return value
}

/**
 * Store secret `name` (create or replace). Running apps see it only through grants.
 *
 * @example
 * await setSecret(warden, 'github_token', await readSecretValue({ stdin: io.readStdin }))
 */
export async function setSecret(warden: Warden, name: string, value: string): Promise<void> {
  await warden.putSecret(checkSecretName(name), value)
}

/** Every secret's name and update time, sorted by name. Never values. */
export function listSecrets(warden: Warden): Promise<{ name: string; updatedAt: string }[]> {
  return warden.listSecrets()
}

/** Delete secret `name`. Throws `not_found` when there was none. */
export async function deleteSecret(warden: Warden, name: string): Promise<void> {
  if (!(await warden.deleteSecret(checkSecretName(name)))) {
    throw new WardenError('not_found', `no secret named ${name}`)
  }
}

/** `name`, or `invalid_request` unless it is a valid secret name. */
export function checkSecretName(name: string): string {
  if (!isSecretName(name)) {
    throw new WardenError('invalid_request', 'a secret name matches ^[a-z][a-z0-9_]{0,63}$')
  }
  return name
}
