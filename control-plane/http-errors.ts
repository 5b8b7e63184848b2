/**
 * Every error the API answers is `{ "error": { "code", "message" } }` with a stable code and
 * the code's status (`docs/errors.md`). Messages are WardenError messages, which never carry a
 * secret, a token or a stack; anything else becomes `internal` with a generic message.
 */
import type { Context } from 'hono'
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { toWardenError, WardenError } from '../runtime/index.js'
import type { WardenErrorCode } from '../runtime/index.js'
import { RateLimited } from './rate-limit.js'

/** The body of every error answer. */
export interface ErrorBody {
  error: { code: WardenErrorCode; message: string }
}

/** The error body and status of any thrown value. */
export function errorAnswer(error: unknown): { body: ErrorBody; status: ContentfulStatusCode } {
  let wardenError: WardenError
  if (error instanceof HTTPException) {
    // Hono's own refusals: a body that is not JSON, a body over the cap.
    wardenError =
      error.status === 413
        ? new WardenError('payload_too_large', 'the request body is over the size cap')
        : new WardenError('invalid_request', 'the request body is not valid JSON')
  } else {
    wardenError = toWardenError(error)
  }
  return {
    body: { error: { code: wardenError.code, message: wardenError.message } },
    status: wardenError.status as ContentfulStatusCode,
  }
}

/** Answer `error` on `c`. */
export function answerError(c: Context, error: unknown): Response {
  const { body, status } = errorAnswer(error)
  c.set('errorCode', body.error.code)
  if (error instanceof RateLimited) {
    c.header('retry-after', String(error.retryAfterSeconds))
  }
  if (status === 413) {
    // The rest of the body was never read: the connection cannot carry another request.
    c.header('connection', 'close')
  }
  return c.json(body, status)
}
