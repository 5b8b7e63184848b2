/**
 * Atomic, private file writes: write a temporary file beside the target with mode 0o600,
 * fsync it, rename it over the target, then fsync the directory (best effort). A reader sees
 * either the old file or the new one, never a torn write.
 * Shared by the file-backed stores (secrets, data, the control plane's keys and registry).
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readdir, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** Create `dir` (and parents) if needed, and set its mode to 0o700. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  // mkdir's mode is masked by the umask and ignored for an existing directory.
  await chmod(dir, 0o700)
}

/** The name of a temporary file beside `path`. Starts with `.` and ends with `.tmp`. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`)
}

/** Write `data` to `path` atomically, with mode 0o600. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempPathFor(path)
  try {
    const handle = await open(tmp, 'wx', 0o600)
    try {
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(tmp, path)
  } catch (error) {
    await unlink(tmp).catch(() => undefined)
    throw error
  }
  await syncDir(dirname(path))
}

/** fsync a directory so a rename survives a crash. Best effort: not every platform allows it. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch {
    // Windows cannot open a directory; durability there is the OS's business.
  }
}

/** True when `error` is a Node system error with this `code` (`ENOENT`, `EEXIST`, …). */
export function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code
}

/** The names in `dir`, or none when it does not exist yet. */
export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch (error) {
    if (isErrno(error, 'ENOENT')) {
      return []
    }
    throw error
  }
}
