/**
 * `warden keys list|rotate|jwks`: the token signing key ring. Private keys never leave the
 * ring; these show public facts and public keys only.
 */
import type { Jwks, KeyInfo, Warden } from '../../runtime/index.js'

/** Every key, retired ones included, newest first. Empty until the first token is signed. */
export function listKeys(warden: Pick<Warden, 'keys'>): Promise<KeyInfo[]> {
  return warden.keys.list()
}

/**
 * Make a new signing key. Tokens signed by older keys keep verifying until those are retired.
 *
 * @example
 * const { kid } = await rotateKey(warden)
 */
export function rotateKey(warden: Pick<Warden, 'keys'>): Promise<KeyInfo> {
  return warden.keys.rotate()
}

/** The public JWKS: the keys that verify tokens (not retired). */
export function publicJwks(warden: Pick<Warden, 'keys'>): Promise<Jwks> {
  return warden.keys.jwks()
}

/** One line per key for a terminal: `kid  created  signing|verifies|retired <when>`. */
export function formatKeys(keys: readonly KeyInfo[]): string[] {
  return keys.map((k) => {
    const state = k.retired ? `retired ${k.retired}` : k.signing ? 'signing' : 'verifies'
    return `${k.kid}  ${k.created}  ${state}`
  })
}
