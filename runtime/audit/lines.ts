/**
 * Internal: stream a JSONL file line by line, byte-exact. Unlike `readline`, only `\n` ends a
 * line (a stray `\r` or U+2028 stays inside it, where verification sees it), a final line with
 * no `\n` is flagged, invalid UTF-8 is reported rather than replaced, and a line is never held
 * in memory past a cap.
 */
import { createReadStream } from 'node:fs'

/** No record comes near this: each of its ~10 text fields is capped at 1024 code units. */
export const MAX_LINE_BYTES = 1 << 20

/**
 * How many times {@link readLines} started reading a file (each call is one pass over part of
 * it), and how many lines it gave. Tests use it to prove that lookups and verifications share
 * passes, skip them, or read only what is new.
 */
export const lineReads = { count: 0, lines: 0 }

/** One line of a file. */
export interface FileLine {
  /** 1-based. */
  n: number
  /** The line without its `\n`; null when it is not valid UTF-8 or longer than the cap. */
  text: string | null
  /** False for a final line with no `\n` after it (a torn write, or a write in progress). */
  terminated: boolean
}

/**
 * The lines of `file` from byte `start` (default 0, which must begin a line) up to byte `end`
 * (exclusive; default: the whole file). Stops reading when the consumer stops iterating.
 */
export async function* readLines(
  file: string,
  options: { start?: number; end?: number; maxLineBytes?: number } = {},
): AsyncGenerator<FileLine> {
  lineReads.count++
  const max = options.maxLineBytes ?? MAX_LINE_BYTES
  const start = options.start ?? 0
  if (options.end !== undefined && options.end <= start) {
    return
  }
  const stream = createReadStream(file, {
    highWaterMark: 1 << 16,
    start,
    ...(options.end === undefined ? {} : { end: options.end - 1 }),
  })
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
  const decode = (parts: Buffer[], length: number): string | null => {
    try {
      return decoder.decode(Buffer.concat(parts, length))
    } catch {
      return null
    }
  }
  let parts: Buffer[] = []
  let length = 0
  let oversize = false
  let n = 0
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let pos = 0
      while (pos < chunk.length) {
        const newline = chunk.indexOf(10, pos)
        const stop = newline === -1 ? chunk.length : newline
        if (!oversize) {
          if (length + (stop - pos) > max) {
            oversize = true
            parts = []
            length = 0
          } else if (stop > pos) {
            parts.push(chunk.subarray(pos, stop))
            length += stop - pos
          }
        }
        if (newline === -1) {
          break
        }
        n++
        lineReads.lines++
        yield { n, text: oversize ? null : decode(parts, length), terminated: true }
        parts = []
        length = 0
        oversize = false
        pos = newline + 1
      }
    }
    if (length > 0 || oversize) {
      n++
      yield { n, text: oversize ? null : decode(parts, length), terminated: false }
    }
  } finally {
    stream.destroy()
  }
}
