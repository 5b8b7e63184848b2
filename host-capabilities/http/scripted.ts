/**
 * A transport that answers from a function instead of the network, for authors' tests
 * (`warden/testing`). It sits where the real transport does, after every check of the broker
 * (grant, secrets bindings and substitution, header rules) and before the redaction of the
 * answer, so a test exercises Warden's own authorisation path. It keeps the run's deadline and
 * egress budget; it has no DNS, addresses, TLS or connections to check.
 */
import { HostCallError } from '../types.js'
import type { HttpHeader } from './checks.js'
import type { HttpResponse, Transport } from './transport.js'

/** An authorised request as a script receives it: secrets substituted, as it would be sent. */
export interface ScriptedRequest {
  method: string
  /** `scheme://host[:port]/path?query`, normalised as the grant matched it. */
  url: string
  headers: readonly HttpHeader[]
  body: Uint8Array | undefined
}

/** Answers one request; `undefined` when the script has no answer for it. */
export type HttpScriptFunction = (
  request: ScriptedRequest,
) => HttpResponse | undefined | Promise<HttpResponse | undefined>

/**
 * A transport answering each authorised request with `script(request)`. A request the script
 * does not answer, or a script that throws, is an `upstream` error the guest sees (naming the
 * method and URL, which the guest wrote; never a header, which may hold a secret).
 *
 * @example
 * const transport = createScriptedTransport((req) =>
 *   req.url.endsWith('/labels') ? { status: 200, headers: [], body: bytes('[]') } : undefined)
 * openWarden({ ...config, http: { transport } })
 */
export function createScriptedTransport(script: HttpScriptFunction): Transport {
  return {
    async send(request, call) {
      const { budget, deadline } = call
      const charge = (bytes: number) => {
        budget.counters.egressBytes += bytes
        if (budget.counters.egressBytes > budget.limits.egressBytes) {
          throw new HostCallError(
            'limit-exceeded',
            `the run's egress budget of ${budget.limits.egressBytes} bytes is spent`,
          )
        }
      }
      charge(request.requestBytes)
      const url = `${request.url.origin}${request.url.path}`
      let answer: HttpResponse | undefined
      try {
        answer = await deadline.race(
          Promise.resolve().then(() =>
            script({
              method: request.method,
              url,
              headers: request.headers,
              body: request.body,
            }),
          ),
        )
      } catch (error) {
        if (error instanceof HostCallError) {
          throw error
        }
        throw new HostCallError('upstream', `the test's script failed on ${request.method} ${url}`)
      }
      if (answer === undefined) {
        throw new HostCallError(
          'upstream',
          `the test's script has no answer for ${request.method} ${url}`,
        )
      }
      charge(
        answer.body.byteLength +
          answer.headers.reduce((n, h) => n + h.name.length + h.value.length + 4, 0),
      )
      return answer
    },
  }
}
