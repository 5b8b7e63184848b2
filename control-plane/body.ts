/**
 * Reading a request body under a byte cap, streamed: a declared `Content-Length` over the cap is
 * refused before anything is read, and an undeclared (chunked) body is cut where it passes the
 * cap, the rest never read. `readBodyCapped` serves the upload and HTTP micro-apps, whose bodies
 * are not JSON; `capBody` caps the JSON bodies of every other `/v1` route.
 */
import type { MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { WardenError } from '../runtime/index.js'

/**
 * Middleware: a request body over `cap` bytes is `payload_too_large`. A body with a declared
 * `Content-Length` and no `Transfer-Encoding` is judged by the header alone: Node's parser
 * never hands a handler more bytes than declared, and then the body is read later without a web
 * `Request` (hono's `bodyLimit` builds one per request just to look at it: a fifth of the invoke
 * route's CPU). Anything else (chunked) goes through hono's `bodyLimit`, which counts the
 * bytes as they stream and stops past the cap. GET and HEAD carry no body here.
 *
 * @example
 * app.use('/v1/*', capBody(1024 * 1024))
 */
export function capBody(cap: number): MiddlewareHandler {
  const tooLarge = () => {
    throw new WardenError('payload_too_large', `the request body is over ${cap} bytes`)
  }
  const streamed = bodyLimit({ maxSize: cap, onError: tooLarge })
  return (c, next) => {
    const method = c.req.method
    if (method === 'GET' || method === 'HEAD') {
      return next()
    }
    const length = c.req.header('content-length')
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      return Number.parseInt(length, 10) > cap ? tooLarge() : next()
    }
    return streamed(c, next)
  }
}

/**
 * The body of `request`, at most `cap` bytes; an empty `Uint8Array` when there is none. Past the
 * cap: `payload_too_large`, naming `what` (`the upload`, `the request body`).
 *
 * @example
 * const bytes = await readBodyCapped(c.req.raw, 1024 * 1024, 'the request body')
 */
export async function readBodyCapped(
  request: Request,
  cap: number,
  what: string,
): Promise<Uint8Array> {
  const tooLarge = () =>
    new WardenError('payload_too_large', `${what} is over the cap of ${cap} bytes`)
  const declared = Number(request.headers.get('content-length') ?? Number.NaN)
  if (declared > cap) {
    throw tooLarge()
  }
  if (!request.body) {
    return new Uint8Array()
  }
  const reader = request.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) {
      break
    }
    total += value.byteLength
    if (total > cap) {
      await reader.cancel().catch(() => undefined)
      throw tooLarge()
    }
    chunks.push(value)
  }
  return total === 0 ? new Uint8Array() : Buffer.concat(chunks, total)
}
