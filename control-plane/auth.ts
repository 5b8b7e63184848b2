/**
 * Who is calling: an API key (`Authorization: Bearer wdn_…`) with a role, checked per route,
 * or a capability token, checked by the runtime when it runs. No credential, a malformed or
 * unknown or revoked key: `unauthorized`. A live key of another role: `forbidden`.
 */
import { createMiddleware } from 'hono/factory'
import { MAX_TOKEN_LENGTH, WardenError } from '../runtime/index.js'
import type { ApiKeyInfo, ApiKeyStore, ApiRole } from './api-keys.js'
import type { CapabilityClaims, WardenErrorCode } from '../runtime/index.js'

/** Hono's environment for the control plane's routes. */
export interface ControlPlaneEnv {
  Variables: {
    /** The authenticated API key, on routes that take one. */
    principal: ApiKeyInfo
    /** The verified capability token, on routes that take one (`tokenFirst`). */
    bearer: { token: string; claims: CapabilityClaims }
    /** The code of the error this request was answered with (`answerError`), for its span. */
    errorCode: WardenErrorCode
  }
}

// A credential: an API key, or a capability token of at most MAX_TOKEN_LENGTH characters.
const BEARER = new RegExp(`^Bearer ([\\x21-\\x7e]{1,${MAX_TOKEN_LENGTH}})$`)

/** The bearer credential of a request, or undefined. */
export function bearerOf(header: string | undefined): string | undefined {
  return header === undefined ? undefined : BEARER.exec(header)?.[1]
}

/** The actor string of a key in audit records and registry entries. */
export function actorOf(principal: ApiKeyInfo): string {
  return `key:${principal.id}`
}

/**
 * Middleware: the route needs an API key with one of `roles`.
 *
 * @example
 * createRoute({ …, middleware: [requireRole(keys, ['admin'])] })
 */
export function requireRole(keys: ApiKeyStore, roles: readonly ApiRole[]) {
  return createMiddleware<ControlPlaneEnv>(async (c, next) => {
    const presented = bearerOf(c.req.header('authorization'))
    if (presented === undefined) {
      throw new WardenError('unauthorized', 'send an API key: Authorization: Bearer <key>')
    }
    const principal = keys.authenticate(presented)
    if (!principal) {
      throw new WardenError('unauthorized', 'the API key is unknown or revoked')
    }
    if (!roles.includes(principal.role)) {
      throw new WardenError('forbidden', `this route needs the role ${roles.join(' or ')}`)
    }
    c.set('principal', principal)
    await next()
  })
}

/** The capability token of a request; `unauthorized` without one. */
export function requireToken(header: string | undefined): string {
  const token = bearerOf(header)
  if (token === undefined) {
    throw new WardenError('unauthorized', 'send a capability token: Authorization: Bearer <token>')
  }
  return token
}
