/**
 * `warden token grant|attenuate|revoke|inspect`: mint, narrow, revoke and look at capability
 * tokens. The pure halves of the commands; `program.ts` reads flags and prints.
 */
import { basename, extname } from 'node:path'
import {
  appIdSchema,
  grantsSchema,
  jtiSchema,
  limitsRequestSchema,
  WardenError,
} from '../../runtime/index.js'
import type {
  CapabilityClaims,
  LimitsRequest,
  MintedToken,
  TokenOp,
  Warden,
} from '../../runtime/index.js'
import { parseJson, parseWith } from './io.js'
import { loadComponentFile } from './load-file.js'

/** Lifetime of a token when `--ttl` is left out, in seconds. */
export const DEFAULT_TOKEN_TTL_SECONDS = 3600

/** Options of {@link grantToken}. */
export interface GrantTokenOptions {
  /** The component the token is for: its digest binds the token to this build. */
  file: string
  /** The grants, as parsed JSON (`{ "log": true }`); checked against `grantsSchema`. */
  grants: unknown
  /** The limits, as parsed JSON; checked against `limitsRequestSchema`. Default: none asked. */
  limits?: unknown
  /** Seconds until the token expires. Default {@link DEFAULT_TOKEN_TTL_SECONDS}. */
  ttlSeconds?: number
  /** The app id. Default: {@link defaultAppId} of `file`. */
  appId?: string
  /** Told when a slow step starts (first transpilation of a build). */
  onProgress?: (message: string) => void
}

/**
 * Load `file` (for its digest) and mint a token for it. Throws `invalid_request` for bad grants,
 * limits, ttl or app id (checked before the component is loaded), and what loading throws.
 * Every refusal is in the audit log, as the Warden's own are.
 *
 * @example
 * const { token, claims } = await grantToken(warden, {
 *   file: 'examples/hello/hello.wat', grants: { log: true },
 * })
 */
export async function grantToken(warden: Warden, options: GrantTokenOptions): Promise<MintedToken> {
  const request = await auditRefusal(warden, 'token.grant', async () => {
    const grants = parseWith(grantsSchema, options.grants, 'grants')
    const limits = parseLimits(options.limits)
    const lifetimeSeconds = checkTtl(options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS)
    const appId = parseWith(appIdSchema, options.appId ?? defaultAppId(options.file), 'app id')
    const app = await loadComponentFile(warden, options.file, options.onProgress)
    return { appId, digest: app.digest, grants, ...(limits ? { limits } : {}), lifetimeSeconds }
  })
  return warden.grantToken(request)
}

/** Options of {@link attenuateToken}. */
export interface AttenuateTokenOptions {
  /** The parent token (its holder derives the child). */
  parent: string
  /** The child's grants, as parsed JSON; each within one of the parent's. */
  grants: unknown
  /** The child's limits, as parsed JSON; a field left out is the parent's. */
  limits?: unknown
  /** Seconds until the child expires. Default: the parent's `exp`. */
  ttlSeconds?: number
}

/**
 * Derive a narrower child of `parent`. Throws what verifying the parent throws (`token_invalid`,
 * `token_expired`, `token_revoked`, `store_unavailable`), `invalid_request` for a malformed
 * request, and `forbidden`, naming the grant, for anything wider than the parent. Every refusal
 * is in the audit log, as the Warden's own are.
 *
 * @example
 * const child = await attenuateToken(warden, { parent: token, grants: {}, ttlSeconds: 60 })
 */
export async function attenuateToken(
  warden: Warden,
  options: AttenuateTokenOptions,
): Promise<MintedToken> {
  const request = await auditRefusal(warden, 'token.attenuate', () => {
    const grants = parseWith(grantsSchema, options.grants, 'grants')
    const limits = parseLimits(options.limits)
    const ttl = options.ttlSeconds
    return {
      grants,
      ...(limits ? { limits } : {}),
      ...(ttl === undefined ? {} : { lifetimeSeconds: checkTtl(ttl) }),
    }
  })
  return warden.attenuateToken(options.parent.trim(), request)
}

/** `check()`; a refusal from it is audited like the Warden's own, then rethrown. */
async function auditRefusal<T>(
  warden: Warden,
  op: TokenOp,
  check: () => T | Promise<T>,
): Promise<T> {
  try {
    return await check()
  } catch (error) {
    await warden.auditTokenRefusal(op, error)
    throw error
  }
}

/**
 * Revoke the token `jti` and every token derived from it. Throws `invalid_request` for
 * something that is not a token id. Revoking an unknown id is not an error: it is recorded.
 */
export async function revokeToken(warden: Warden, jti: string): Promise<void> {
  await warden.revokeToken(parseWith(jtiSchema, jti, 'jti'))
}

/** What {@link inspectToken} shows: a token's header and claims, NOT verified. */
export interface InspectedToken {
  verified: false
  note: string
  header: Record<string, unknown>
  claims: Record<string, unknown>
}

/**
 * Decode a token's header and claims WITHOUT verifying anything (signature, expiry, revocation,
 * build). The signature is never returned. Throws `invalid_request` for something that is not
 * a compact JWS with JSON header and claims.
 *
 * @example
 * inspectToken(token).claims.jti
 */
export function inspectToken(token: string): InspectedToken {
  const [header, payload] = checkTokenShape(token).split('.')
  return {
    verified: false,
    note: 'decoded only: the signature, expiry, revocation and build were NOT checked',
    header: decodePart(header!, 'header'),
    claims: decodePart(payload!, 'claims'),
  }
}

/**
 * The default app id of a component file: its basename without extension, with every run of
 * characters outside `[A-Za-z0-9._-]` replaced by `-`, leading characters that cannot start an
 * id and trailing `-` dropped, cut to 128 characters; `app` if nothing is left.
 *
 * @example
 * defaultAppId('examples/hello/hello.wat') // 'hello'
 * defaultAppId('/tmp/My App (v2).wasm')    // 'My-App-v2'
 */
export function defaultAppId(file: string): string {
  const name = basename(file, extname(file))
  const id = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 128)
    .replace(/-+$/, '')
  return id === '' ? 'app' : id
}

/**
 * A short summary of a token's claims for stderr: app and build, jti, expiry, grants, limits.
 * Never the token itself.
 */
export function describeClaims(
  claims: Pick<CapabilityClaims, 'app' | 'jti' | 'exp'> & {
    parent?: string | undefined
    grants: unknown
    limits: unknown
  },
): string[] {
  const inSeconds = claims.exp - Math.floor(Date.now() / 1000)
  return [
    `app:    ${claims.app.id} (${claims.app.digest})`,
    `jti:    ${claims.jti}${claims.parent ? ` (child of ${claims.parent})` : ''}`,
    `exp:    ${new Date(claims.exp * 1000).toISOString()} (in ${inSeconds} s)`,
    `grants: ${JSON.stringify(claims.grants)}`,
    `limits: ${JSON.stringify(claims.limits)}`,
  ]
}

function parseLimits(limits: unknown): LimitsRequest | undefined {
  return limits === undefined ? undefined : parseWith(limitsRequestSchema, limits, 'limits')
}

function checkTtl(seconds: number): number {
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new WardenError('invalid_request', '--ttl must be a positive number of seconds')
  }
  return seconds
}

/** The token with surrounding whitespace cut; `invalid_request` unless it has three parts. */
function checkTokenShape(token: string): string {
  const trimmed = token.trim()
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(trimmed)) {
    throw new WardenError('invalid_request', 'not a token (a compact JWS: header.claims.signature)')
  }
  return trimmed
}

function decodePart(part: string, what: string): Record<string, unknown> {
  const value = parseJson(Buffer.from(part, 'base64url').toString('utf8'), `the token's ${what}`)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WardenError('invalid_request', `the token's ${what} is not a JSON object`)
  }
  return value as Record<string, unknown>
}
