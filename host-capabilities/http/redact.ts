/**
 * Redaction of secrets from what an upstream sends back. Best effort against reflection (an
 * echo endpoint, a redirect carrying a header, an upstream that keeps a token and hands it back
 * later): the work is done by the secrets redactor (`../secrets/redact.ts`), which finds a value
 * as written, JSON-escaped, percent-encoded, in hex and in base64/base64url (issue 7), here also
 * as raw Latin-1 bytes (how Node writes header values) and whatever its length. What keeps a
 * secret safe is that it is only ever sent where its binding says; this keeps an honest echo
 * from handing it to the guest.
 *
 * May import the secrets capability's redactor, and types from `./transport.js`; no I/O.
 */
import { createHash } from 'node:crypto'
import { createRedactor } from '../secrets/redact.js'
import type { Redactor } from '../secrets/redact.js'
import type { HttpResponse } from './transport.js'

/** A secret to redact from responses, as {@link redactSecrets} needs it. */
export interface SubstitutedSecret {
  name: string
  value: string
}

/**
 * The redactor for upstream responses: every secret, whatever its length (empty values are
 * ignored), in every form the secrets redactor knows, plus raw Latin-1 bytes.
 *
 * @example
 * responseRedactor([{ name: 'token', value: 's3cr3t' }]).text('czNjcjN0') // '[redacted:token]'
 */
export function responseRedactor(secrets: readonly SubstitutedSecret[]): Redactor {
  return createRedactor(secrets, { minBytes: 1, latin1: true })
}

/**
 * Replace every occurrence of each secret's value in `text` with `[redacted:NAME]`, in every
 * form {@link responseRedactor} knows. Overlapping values are covered as one span, the longest
 * first. Empty values are ignored.
 *
 * @example
 * redactSecrets('Bearer s3cr3t', [{ name: 'token', value: 's3cr3t' }]) // 'Bearer [redacted:token]'
 */
export function redactSecrets(text: string, secrets: readonly SubstitutedSecret[]): string {
  return responseRedactor(secrets).text(text)
}

/** {@link redactSecrets} over bytes: each form is searched as UTF-8 and as Latin-1. */
export function redactSecretBytes(
  body: Uint8Array,
  secrets: readonly SubstitutedSecret[],
): Uint8Array {
  return responseRedactor(secrets).bytes(body)
}

/**
 * A memo of {@link responseRedactor} for one capability: building a redactor compiles its
 * patterns, and a run's calls mostly carry the same secrets. Keyed by a digest of the names and
 * values (never the values themselves); past `size` entries the oldest is dropped. Default 16.
 *
 * @example
 * const redactorFor = responseRedactorCache()
 * const secrets = [{ name: 'token', value: 's3cr3t' }]
 * redactorFor(secrets) === redactorFor([...secrets]) // true: compiled once
 */
export function responseRedactorCache(
  size = 16,
): (secrets: readonly SubstitutedSecret[]) => Redactor {
  const redactors = new Map<string, Redactor>()
  return (secrets) => {
    const key = createHash('sha256')
      .update(JSON.stringify(secrets.map((s) => [s.name, s.value])))
      .digest('base64')
    let redactor = redactors.get(key)
    if (redactor === undefined) {
      redactor = responseRedactor(secrets)
      if (redactors.size >= size) {
        redactors.delete(redactors.keys().next().value!)
      }
      redactors.set(key, redactor)
    }
    return redactor
  }
}

/** The upstream's answer with `redactor` applied to every header name, value and the body. */
export function redactResponse(redactor: Redactor, response: HttpResponse): HttpResponse {
  return {
    status: response.status,
    headers: response.headers.map((h) => ({
      name: redactor.text(h.name),
      value: redactor.text(h.value),
    })),
    body: redactor.bytes(response.body),
  }
}
