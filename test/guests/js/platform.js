// A componentize-js app that uses all three platform capabilities in one run:
// http (with a secret placeholder the guest never sees), secrets (hmac), data (get, list).
// Input: JSON { url }. Output: JSON describing what each call returned.
import { write } from 'warden:platform/log@0.1.0'
import { fetch } from 'warden:platform/http@0.1.0'
import { hmacSha256 } from 'warden:platform/secrets@0.1.0'
import { get, listKeys } from 'warden:platform/data@0.1.0'

function hex(bytes) {
  let out = ''
  for (let i = 0; i < bytes.length; i++) {
    out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16)
  }
  return out
}

function text(bytes) {
  let out = ''
  for (let i = 0; i < bytes.length; i++) {
    out += String.fromCharCode(bytes[i])
  }
  return out
}

function attempt(fn) {
  try {
    return { ok: fn() }
  } catch (error) {
    if (error && typeof error === 'object' && 'payload' in error) {
      return { err: error.payload }
    }
    return { thrown: String(error) }
  }
}

export function run(input) {
  const { url } = JSON.parse(input)
  const out = {
    http: attempt(() => {
      const response = fetch({
        method: 'GET',
        url,
        headers: [{ name: 'authorization', value: 'Bearer {{secret:api_key}}' }],
        body: undefined,
        timeoutMs: undefined,
      })
      return { status: response.status, body: text(response.body) }
    }),
    hmac: attempt(() => hex(hmacSha256('api_key', new Uint8Array([109, 115, 103])))),
    data: attempt(() => get('crm', 'contacts/alice') ?? null),
    keys: attempt(() => listKeys('crm', 'contacts/', undefined, 10).entries.map((e) => e.key)),
  }
  write('info', 'platform app done')
  return JSON.stringify(out)
}
