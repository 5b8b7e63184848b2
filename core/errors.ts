/**
 * Warden's typed errors. Every failure that crosses a boundary (worker → host, host → HTTP,
 * host → CLI, host → audit) carries one stable `code` from {@link WARDEN_ERROR_CODES}.
 *
 * Codes are permanent: never renamed or reused. `docs/errors.md` lists each one with its
 * blame, HTTP status and fix, and `runtime/errors.test.ts` keeps the two in sync.
 */

/** Every stable error code, in the order of DESIGN.md; new codes go at the end. */
export const WARDEN_ERROR_CODES = [
  'invalid_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'payload_too_large',
  'unsupported_media_type',
  'invalid_component',
  'unsupported_import',
  'token_invalid',
  'token_expired',
  'token_revoked',
  'app_disabled',
  'capability_denied',
  'limit_exceeded',
  'fuel_exhausted',
  'memory_limit',
  'timeout',
  'guest_trap',
  'upstream_error',
  'internal',
  'store_unavailable',
  'app_not_approved',
  'rate_limited',
  'method_not_allowed',
  'conflict',
  'guest_error',
  'invalid_response',
  'client_closed',
] as const

/** One stable error code. */
export type WardenErrorCode = (typeof WARDEN_ERROR_CODES)[number]

/** Who caused the failure: the guest (its code, its input) or the host (us, the operator). */
export type Blame = 'guest' | 'host'

/** The wire form of an error: what crosses the worker boundary, the HTTP API and the CLI. */
export interface SerializedError {
  code: WardenErrorCode
  message: string
}

/** Status and blame of each code. The message is per instance; these are per code. */
export const ERROR_META: Readonly<Record<WardenErrorCode, { status: number; blame: Blame }>> = {
  invalid_request: { status: 400, blame: 'guest' },
  unauthorized: { status: 401, blame: 'guest' },
  forbidden: { status: 403, blame: 'guest' },
  not_found: { status: 404, blame: 'guest' },
  payload_too_large: { status: 413, blame: 'guest' },
  unsupported_media_type: { status: 415, blame: 'guest' },
  invalid_component: { status: 422, blame: 'guest' },
  unsupported_import: { status: 422, blame: 'guest' },
  token_invalid: { status: 401, blame: 'guest' },
  token_expired: { status: 401, blame: 'guest' },
  token_revoked: { status: 401, blame: 'guest' },
  app_disabled: { status: 403, blame: 'guest' },
  capability_denied: { status: 403, blame: 'guest' },
  limit_exceeded: { status: 429, blame: 'guest' },
  fuel_exhausted: { status: 422, blame: 'guest' },
  memory_limit: { status: 422, blame: 'guest' },
  timeout: { status: 504, blame: 'guest' },
  guest_trap: { status: 422, blame: 'guest' },
  upstream_error: { status: 502, blame: 'host' },
  internal: { status: 500, blame: 'host' },
  store_unavailable: { status: 503, blame: 'host' },
  app_not_approved: { status: 403, blame: 'guest' },
  rate_limited: { status: 429, blame: 'guest' },
  method_not_allowed: { status: 405, blame: 'guest' },
  conflict: { status: 409, blame: 'guest' },
  guest_error: { status: 422, blame: 'guest' },
  invalid_response: { status: 502, blame: 'guest' },
  client_closed: { status: 499, blame: 'guest' },
}

/**
 * The one error class Warden throws on purpose. Its message is public: it never contains a
 * secret, a token or guest data. Put detail in `cause`, which is never serialised.
 *
 * @example
 * throw new WardenError('fuel_exhausted', 'the run used its 1000000 units of fuel')
 */
export class WardenError extends Error {
  readonly code: WardenErrorCode
  readonly blame: Blame
  readonly status: number

  constructor(code: WardenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'WardenError'
    this.code = code
    this.blame = ERROR_META[code].blame
    this.status = ERROR_META[code].status
  }

  /** The wire form: code and message only, never the cause. */
  toJSON(): SerializedError {
    return { code: this.code, message: this.message }
  }

  /** Rebuild an error sent across a boundary with {@link WardenError.toJSON}. */
  static fromJSON(error: SerializedError): WardenError {
    const code = isWardenErrorCode(error.code) ? error.code : 'internal'
    return new WardenError(code, String(error.message))
  }
}

/** True when `value` is one of the stable codes. */
export function isWardenErrorCode(value: unknown): value is WardenErrorCode {
  return typeof value === 'string' && (WARDEN_ERROR_CODES as readonly string[]).includes(value)
}

/** Any thrown value as a WardenError; unknown failures become `internal` with a generic message. */
export function toWardenError(error: unknown): WardenError {
  if (error instanceof WardenError) {
    return error
  }
  return new WardenError('internal', 'internal error', { cause: error })
}
