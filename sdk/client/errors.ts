/** The one error {@link WardenClient} throws. */
import type { MeteringReport } from '../../runtime/index.js'

/**
 * A refusal or failure of the Warden API: `code` is the stable code of the answer's
 * `{ error: { code, message } }` (docs/errors.md), `status` its HTTP status. A server that
 * could not be reached is `upstream_error` with `status` 0; an answer that is not the API's
 * error shape is `internal` with its status. The message is the server's, which never holds a
 * secret; no key or token of the client is ever put in it.
 *
 * @example
 * try { await client.invoke('hello', {}, token) }
 * catch (e) { if (e instanceof WardenApiError && e.code === 'fuel_exhausted') console.log(e.report) }
 */
export class WardenApiError extends Error {
  readonly code: string
  readonly status: number
  /** The metering report of a run Warden ended or the app refused (`invoke` only). */
  readonly report: MeteringReport | undefined
  /** The app's own error value, for `guest_error` (`invoke` only). */
  readonly guestError: unknown
  /** The run's id, when it ran (`invoke` and `run`). */
  readonly invocationId: string | undefined
  /** A script's own frames (`name@script:LINE:COL`), for its `guest_error` (`run` only). */
  readonly scriptStack: string | undefined
  /** The run's log lines, when it ran (`run` only). */
  readonly logs: { level: string; message: string }[] | undefined

  constructor(
    code: string,
    message: string,
    status: number,
    options: {
      cause?: unknown
      report?: MeteringReport
      guestError?: unknown
      invocationId?: string
      scriptStack?: string
      logs?: { level: string; message: string }[]
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'WardenApiError'
    this.code = code
    this.status = status
    this.report = options.report
    this.guestError = options.guestError
    this.invocationId = options.invocationId
    this.scriptStack = options.scriptStack
    this.logs = options.logs
  }

  toJSON() {
    return { code: this.code, message: this.message }
  }
}
