/**
 * The token index on local files: `tokens.jsonl`, a log of what changed. A save appends one
 * line per entry added or changed (`{"put":{…}}`) and one per entry taken out
 * (`{"del":"<jti>"}`); opening replays the lines. When the log holds more than twice as many
 * lines as entries (and 1,024 more), a save rewrites it whole, atomically, one line per entry:
 * the cost of a token operation is its own entry, and the rewrites are paid for by the
 * appends before them. The whole index used to be one JSON document rewritten on every mint
 * and attenuation: with 20,000 tokens, one attenuation serialised 17.8 MB on the main thread
 * (thirteenth outside attack). A `tokens.json` of an earlier version is read once and replaced.
 */
import { open, readFile, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { z } from 'zod'
import { ensurePrivateDir, WardenError, writeFileAtomic } from '../runtime/index.js'
import type { JsonFile } from './json-file.js'

/** The file of the log in a data dir. */
export const TOKEN_LOG_FILE = 'tokens.jsonl'
/** The whole-document file of earlier versions, read once and replaced. */
const LEGACY_FILE = 'tokens.json'

/** The index document, as `token-index.ts` works on it. */
export interface TokenDoc<E> {
  version: 1
  tokens: E[]
}

const line = <S extends z.ZodType>(entry: S) =>
  z.union([z.strictObject({ put: entry }), z.strictObject({ del: z.string() })])

/**
 * Open the log of `dataDir` (`entry` checks each entry read; `idOf` names it). A line that does
 * not parse is refused with `internal`, never skipped, but for a torn last line (a crash during
 * an append), which is dropped.
 *
 * @example
 * const doc = await openTokenLog(dataDir, tokenEntrySchema, (t) => t.jti)
 * doc.data.tokens.push(entry)
 * await doc.save([entry.jti])
 */
export async function openTokenLog<S extends z.ZodType>(
  dataDir: string,
  entry: S,
  idOf: (item: z.output<S>) => string,
  legacy: z.ZodType<TokenDoc<z.output<S>>>,
): Promise<JsonFile<TokenDoc<z.output<S>>>> {
  type E = z.output<S>
  const file = join(dataDir, TOKEN_LOG_FILE)
  const schema = line(entry)
  const data: TokenDoc<E> = { version: 1, tokens: [] }
  let text = await read(file)
  let migrate = false
  if (text === undefined) {
    const old = await read(join(dataDir, LEGACY_FILE))
    if (old !== undefined) {
      const parsed = legacy.safeParse(parseJson(old))
      if (!parsed.success) {
        throw new WardenError('internal', 'the token index is not valid: not read')
      }
      data.tokens.push(...parsed.data.tokens)
      migrate = true
    }
    text = ''
  }
  const { byId, count, torn } = replay(text, schema, idOf, data.tokens)
  data.tokens = [...byId.values()]
  // What the file holds, by id: what a save compares the document with to find deletions.
  const stored = new Set(byId.keys())
  let lineCount = count

  let writing: Promise<void> = Promise.resolve()
  const queue = (write: () => Promise<void>): Promise<void> => {
    writing = writing
      .catch(() => undefined)
      .then(async () => {
        await ensurePrivateDir(dirname(file))
        await write()
      })
      .catch((error: unknown) => {
        throw new WardenError('store_unavailable', 'the token index could not be written', {
          cause: error,
        })
      })
    return writing
  }
  const rewrite = (): Promise<void> => {
    const body = data.tokens.map((t) => `${JSON.stringify({ put: t })}\n`).join('')
    stored.clear()
    for (const t of data.tokens) {
      stored.add(idOf(t))
    }
    lineCount = data.tokens.length
    return queue(() => writeFileAtomic(file, body))
  }
  if (migrate || torn) {
    await rewrite()
    await rm(join(dataDir, LEGACY_FILE), { force: true })
  }

  return {
    data,
    save(changed) {
      if (changed === undefined || lineCount > 2 * data.tokens.length + 1024) {
        return rewrite()
      }
      let body = ''
      const present = new Set<string>()
      for (const t of data.tokens) {
        present.add(idOf(t))
      }
      for (const id of stored) {
        if (!present.has(id)) {
          body += `${JSON.stringify({ del: id })}\n`
          stored.delete(id)
          lineCount++
        }
      }
      const wanted = new Set(changed)
      for (const t of data.tokens) {
        const id = idOf(t)
        if (wanted.has(id)) {
          body += `${JSON.stringify({ put: t })}\n`
          stored.add(id)
          lineCount++
        }
      }
      if (body === '') {
        return writing.catch(() => undefined)
      }
      return queue(async () => {
        const handle = await open(file, 'a', 0o600)
        try {
          await handle.appendFile(body)
          await handle.datasync()
        } finally {
          await handle.close()
        }
      })
    },
  }
}

/**
 * The entries of a data dir's log as a reader sees them (for tests and tools): replayed, never
 * written.
 */
export async function readTokenLog<S extends z.ZodType>(
  dataDir: string,
  entry: S,
  idOf: (item: z.output<S>) => string,
): Promise<z.output<S>[]> {
  const text = (await read(join(dataDir, TOKEN_LOG_FILE))) ?? ''
  return [...replay(text, line(entry), idOf, []).byId.values()]
}

/** The entries after the lines of `text`, over `initial`; a torn last line is dropped. */
function replay<E>(
  text: string,
  schema: z.ZodType,
  idOf: (item: E) => string,
  initial: readonly E[],
): { byId: Map<string, E>; count: number; torn: boolean } {
  const byId = new Map<string, E>(initial.map((t) => [idOf(t), t]))
  const lines = text.split('\n')
  let count = 0
  let torn = false
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    if (raw === '') {
      continue
    }
    const parsed = schema.safeParse(parseJson(raw))
    if (!parsed.success) {
      if (i === lines.length - 1) {
        // Torn by a crash during its append (never acknowledged): the opener rewrites the
        // file, so that the next append does not run on from it.
        torn = true
        break
      }
      throw new WardenError('internal', 'the token index is not valid: not read')
    }
    count++
    const change = parsed.data as { put: E } | { del: string }
    if ('put' in change) {
      byId.set(idOf(change.put), change.put) // a changed entry keeps its place
    } else {
      byId.delete(change.del)
    }
  }
  return { byId, count, torn }
}

async function read(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined
    }
    throw new WardenError('store_unavailable', 'the token index cannot be read', { cause: error })
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
