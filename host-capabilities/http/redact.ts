/**
 * Redaction of substituted secrets from what an upstream sends back. Best effort against
 * reflection (an echo endpoint, a redirect carrying a header): the value is found as written,
 * JSON-escaped and percent-encoded, as UTF-8 and Latin-1 bytes. What keeps a secret safe is that
 * it is only ever sent to the hosts its grant names; this keeps an honest echo from handing it to
 * the guest.
 */

/** A secret substituted into a request, as {@link redactSecrets} needs it. */
export interface SubstitutedSecret {
  name: string
  value: string
}

/** The forms a substituted secret may come back in, longest first. */
function secretForms(value: string): string[] {
  const forms = new Set([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)])
  return [...forms].filter((f) => f.length > 0).sort((a, b) => b.length - a.length)
}

/**
 * Replace every occurrence of each secret's value in `text` with `[redacted:NAME]`. The value
 * is also searched JSON-escaped and percent-encoded. Longer values are replaced first, so a
 * secret that contains another is redacted whole. Empty values are ignored.
 *
 * @example
 * redactSecrets('Bearer s3cr3t', [{ name: 'token', value: 's3cr3t' }]) // 'Bearer [redacted:token]'
 */
export function redactSecrets(text: string, secrets: readonly SubstitutedSecret[]): string {
  const pairs = secrets
    .flatMap((s) => secretForms(s.value).map((form) => ({ form, name: s.name })))
    .sort((a, b) => b.form.length - a.form.length)
  let out = text
  for (const { form, name } of pairs) {
    out = out.split(form).join(`[redacted:${name}]`)
  }
  return out
}

/** {@link redactSecrets} over bytes: each form is searched as UTF-8 and as Latin-1. */
export function redactSecretBytes(
  body: Uint8Array,
  secrets: readonly SubstitutedSecret[],
): Uint8Array {
  const pairs = secrets
    .flatMap((s) =>
      secretForms(s.value).flatMap((form) => {
        const utf8 = { needle: Buffer.from(form, 'utf8'), name: s.name }
        // Latin-1 only when it can spell the value: Node sends header values that way.
        return /^[\u0000-\u00ff]*$/.test(form)
          ? [utf8, { needle: Buffer.from(form, 'latin1'), name: s.name }]
          : [utf8]
      }),
    )
    .sort((a, b) => b.needle.length - a.needle.length)
  let buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  let changed = false
  for (const { needle, name } of pairs) {
    let at = buf.indexOf(needle)
    if (at === -1) {
      continue
    }
    const replacement = Buffer.from(`[redacted:${name}]`)
    const parts: Buffer[] = []
    let from = 0
    while (at !== -1) {
      parts.push(buf.subarray(from, at), replacement)
      from = at + needle.length
      at = buf.indexOf(needle, from)
    }
    parts.push(buf.subarray(from))
    buf = Buffer.concat(parts)
    changed = true
  }
  return changed ? copyBytes(buf) : body
}

/** A fresh Uint8Array that owns its memory (not a view on Node's shared Buffer pool). */
function copyBytes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength)
  out.set(bytes)
  return out
}
