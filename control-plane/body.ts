/**
 * Reading a request body under a byte cap, streamed: a declared `Content-Length` over the cap is
 * refused before anything is read, and an undeclared (chunked) body is cut where it passes the
 * cap, the rest never read. Used by the upload and by HTTP micro-apps, whose bodies are not
 * JSON and so are not under hono's `bodyLimit`.
 */
import { WardenError } from '../runtime/index.js'

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
