/**
 * A JSON document kept in memory and written through to one file, atomically (mode 0600), one
 * write at a time, for the control plane's small stores (keys, registry, token index). One
 * process writes a data dir: the audit log's writer lock makes sure of it.
 */
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { z } from 'zod'
import { ensurePrivateDir, WardenError, writeFileAtomic } from '../runtime/index.js'

/** A document and how to save it. */
export interface JsonFile<T> {
  /** The document; change it, then {@link JsonFile.save}. */
  readonly data: T
  /**
   * Write the document as it is now. Rejects with `store_unavailable` when the write fails.
   * `changed`: the ids of the only items changed or added since the last save (items taken out
   * are found without it), so that a store which writes items one by one (Redis) serialises
   * those alone; a file is written whole either way.
   */
  save(changed?: readonly string[]): Promise<void>
}

/**
 * Read `file` with `schema`, or start from `empty()` when there is no file. A file that does
 * not parse is refused with `internal`, never read as empty.
 *
 * @example
 * const doc = await openJsonFile(join(dataDir, 'registry.json'), schema, () => ({ apps: [] }))
 * doc.data.apps.push(app)
 * await doc.save()
 */
export async function openJsonFile<S extends z.ZodType>(
  file: string,
  schema: S,
  empty: () => z.output<S>,
  /** What the file holds, for error messages (which never carry its path): `the registry`. */
  what = 'a control-plane file',
): Promise<JsonFile<z.output<S>>> {
  let text: string | undefined
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new WardenError('store_unavailable', `${what} cannot be read`, {
        cause: error,
      })
    }
  }
  let data: z.output<S>
  if (text === undefined) {
    data = empty()
  } else {
    const parsed = schema.safeParse(safeJson(text))
    if (!parsed.success) {
      throw new WardenError('internal', `${what} is not valid: not read`, { cause: { file } })
    }
    data = parsed.data
  }
  let writing: Promise<void> = Promise.resolve()
  return {
    data,
    save() {
      const body = `${JSON.stringify(data, null, 2)}\n`
      writing = writing
        .catch(() => undefined)
        .then(async () => {
          await ensurePrivateDir(dirname(file))
          await writeFileAtomic(file, body)
        })
        .catch((error: unknown) => {
          throw new WardenError('store_unavailable', `${what} could not be written`, {
            cause: error,
          })
        })
      return writing
    },
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
