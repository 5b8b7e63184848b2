/** Internal: make a new file's directory entry durable. */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'

/** fsync(2) a directory: a new file is only durable once its directory entry is. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | undefined
  try {
    handle = await open(directory, 'r')
    await handle.sync()
  } catch (error) {
    // Windows cannot open or fsync a directory; the file's own syncs are all it offers there.
    const code = (error as NodeJS.ErrnoException).code
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') {
      throw error
    }
  } finally {
    await handle?.close()
  }
}
