/**
 * Internal: where each invocation's records are in the file audit log, so that
 * `read({ invocationId })` (behind `GET /v1/invocations/:id`, which any token may call) reads
 * only those lines instead of parsing the whole file on every request (third outside attack,
 * F2). The index maps an invocation id to the byte spans of its lines: the file as it was on
 * open is scanned once, on first use (one scan, shared by every caller waiting for it), and
 * each record appended afterwards is added as it becomes durable.
 *
 * Bounded: at most `limit` records are indexed (default 200 000: a few tens of MB in the worst
 * case of one record per invocation). Past that the index is no longer complete: it keeps only
 * the most recent records (the `limit` last, whole invocations, oldest dropped first), and a
 * lookup it cannot answer for sure falls back to a scan; those scans run one at a time, and
 * every lookup waiting for the next one shares it. A lookup that may not scan (`scan: false`,
 * for a capability-token bearer: outside attack 5, finding 06, where any token made every
 * lookup of an unknown id a full scan) answers from the recent records alone.
 */
import { WardenError } from '../errors.js'
import { readLines } from './lines.js'

/** Records indexed at most, by default. */
export const DEFAULT_INDEX_LIMIT = 200_000

/** See the module comment. */
export interface InvocationIndex {
  /** Note a durable line at bytes [start, end) (its record's invocation id, if any). */
  add(id: unknown, start: number, end: number): void
  /**
   * The byte spans `[start0, end0, start1, end1, …]` of `id`'s lines before byte `upTo`. With
   * `scan: false`, never scans the file past the first build of the index (itself bounded by
   * `limit` records): once the index overflowed, only the recent records it kept are found.
   */
  spans(id: string, upTo: number, options?: { scan?: boolean }): Promise<number[]>
}

/**
 * The index of `file`, whose first `openedSize` bytes (whole lines) were there on open; lines
 * after them must all be passed to `add`.
 */
export function createInvocationIndex(
  file: string,
  openedSize: number,
  limit = DEFAULT_INDEX_LIMIT,
): InvocationIndex {
  // Lines since open; and, once scanned, the lines of the file as opened.
  const live = new Map<string, number[]>()
  let opened: Map<string, number[]> | undefined
  let building: Promise<void> | undefined
  let indexed = 0
  let overflowed = false

  function note(map: Map<string, number[]>, id: unknown, start: number, end: number): void {
    if (typeof id !== 'string' || (overflowed && map !== live)) {
      return
    }
    const spans = map.get(id)
    if (spans) {
      spans.push(start, end)
    } else {
      map.set(id, [start, end])
    }
    if (++indexed > limit) {
      if (!overflowed) {
        // From now on: the recent records only (those since open, the oldest dropped first).
        overflowed = true
        opened = undefined
        indexed = 0
        for (const kept of live.values()) {
          indexed += kept.length / 2
        }
      }
      for (const [oldest, dropped] of live) {
        if (indexed <= limit || oldest === id) {
          break
        }
        live.delete(oldest)
        indexed -= dropped.length / 2
      }
    }
  }

  function build(): Promise<void> {
    building ??= (async () => {
      const map = new Map<string, number[]>()
      // NB: stops at the overflow, so the build reads at most `limit` records.
      await scan(file, openedSize, (id, start, end) => {
        note(map, id, start, end)
        return !overflowed
      })
      if (!overflowed) {
        opened = map
      }
    })().catch((error: unknown) => {
      building = undefined // a failed scan is retried by the next lookup
      throw error
    })
    return building
  }

  // Fallback scans, one at a time: the next one collects every id asked for until it starts.
  type Batch = { ids: Set<string>; upTo: number; result: Promise<Map<string, number[]>> }
  let next: Batch | undefined
  let previous: Promise<unknown> = Promise.resolve()

  function fallback(id: string, upTo: number): Promise<number[]> {
    if (!next) {
      const batch = { ids: new Set<string>(), upTo: 0 } as Batch
      batch.result = previous.then(async () => {
        next = undefined
        const found = new Map<string, number[]>()
        await scan(file, batch.upTo, (lineId, start, end) => {
          if (typeof lineId === 'string' && batch.ids.has(lineId)) {
            found.set(lineId, [...(found.get(lineId) ?? []), start, end])
          }
          return true
        })
        return found
      })
      previous = batch.result.catch(() => undefined)
      next = batch
    }
    next.ids.add(id)
    next.upTo = Math.max(next.upTo, upTo)
    return next.result.then((found) => found.get(id) ?? [])
  }

  return {
    add(id, start, end) {
      note(live, id, start, end)
    },
    async spans(id, upTo, options = {}) {
      if (!overflowed) {
        await build()
      }
      if (overflowed || !opened) {
        if (options.scan !== false) {
          return fallback(id, upTo)
        }
      }
      const all = [...(opened?.get(id) ?? []), ...(live.get(id) ?? [])]
      // Appends reach the index once durable, so nothing here is past upTo; keep it exact.
      let n = all.length
      while (n > 0 && (all[n - 1] as number) > upTo) {
        n -= 2
      }
      return all.slice(0, n)
    },
  }
}

/**
 * Call `found` with the invocation id (or undefined) and span of each line before `end`, until
 * it returns false.
 */
async function scan(
  file: string,
  end: number,
  found: (id: unknown, start: number, end: number) => boolean,
): Promise<void> {
  let position = 0
  for await (const line of readLines(file, { end })) {
    let record: { invocationId?: unknown } | undefined
    try {
      record = line.terminated && line.text !== null ? JSON.parse(line.text) : undefined
    } catch {
      record = undefined
    }
    if (typeof record !== 'object' || record === null || line.text === null) {
      throw new WardenError('internal', 'the audit log is corrupt; verify it', {
        cause: { file, line: line.n },
      })
    }
    const after = position + Buffer.byteLength(line.text, 'utf8') + 1
    if (!found(record.invocationId, position, after)) {
      return
    }
    position = after
  }
}
