/**
 * Revoked token ids. Verification asks a {@link RevocationList} about a token's `jti` and
 * every ancestor in its `chain`; the file-backed list is the default store.
 */
import { statSync } from 'node:fs'
import type { BigIntStats } from 'node:fs'
import { mkdir, open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { WardenError } from '../errors.js'
import { jtiSchema } from './claims.js'

/**
 * Answers whether a token id is revoked. Implementations fail closed: when they cannot tell,
 * they throw (preferably `store_unavailable`), never answer false. Verification turns any
 * throw into `store_unavailable`.
 */
export interface RevocationList {
  /** True when `jti` is revoked. */
  isRevoked(jti: string): Promise<boolean>
}

/** A revocation list that can also revoke. */
export interface WritableRevocationList extends RevocationList {
  /**
   * Revoke `jti`. Resolves once the revocation is durable; revoking twice is harmless. Rejects
   * with `store_unavailable` when it cannot be made durable.
   */
  revoke(jti: string): Promise<void>
}

/** The file-backed list of {@link createFileRevocationList}. */
export interface FileRevocationList extends WritableRevocationList {
  /** The append-only file: one revoked `jti` per line. */
  readonly path: string
}

const FILE_NAME = 'revoked-tokens.txt'
const NEWLINE = 0x0a
// What a crash can leave of a line being appended: a prefix of a token id, possibly empty.
const TORN_ID = /^[A-Za-z0-9_-]{0,128}$/

function unavailable(message: string, cause: unknown): WardenError {
  if (cause instanceof WardenError && cause.code === 'store_unavailable') {
    return cause
  }
  return new WardenError('store_unavailable', message, { cause })
}

/**
 * The append-only revocation file `<dataDir>/revoked-tokens.txt` (mode 0600), one `jti` per
 * line, read into a Set. `revoke` resolves only after the line is fsynced; the id counts as
 * revoked in this process from the moment `revoke` is called (fail closed), even if the write
 * then fails.
 *
 * Every process on the same data dir sees every revocation at its next check: each `isRevoked`
 * of an id not known to be revoked first `stat`s the file (synchronously: a few µs on a local
 * disk, and no thread-pool round trip) and compares its device, inode, size, mtime and ctime
 * with the file as last read. Unchanged, the answer comes from memory; changed (another process
 * or handle appended, or the file was replaced), what was appended since is read first (all of
 * it after a replacement; nothing is ever un-revoked). `fs.watch` is not used: it reports a
 * change some time after it happened, so a check made in between would miss a revocation that
 * was already durable.
 *
 * Fails closed: when the file cannot be stat'ed or read (an I/O or permission error, a
 * directory in its place) or holds a line that is not a token id, `isRevoked` rejects with
 * `store_unavailable`, for every id not already known to be revoked, until it is repaired; it
 * never answers false for what it could not read (a failed read is never remembered as read,
 * so the next check reads again). The one tolerated defect is what a crash leaves of a line
 * being appended: a prefix of an id (skipped when too short to be one; the next line starts
 * fresh). `revoke` rejects with `store_unavailable` when the line cannot be made durable.
 *
 * @example
 * const revocations = createFileRevocationList('.warden')
 * await revocations.revoke(claims.jti)
 * await revocations.isRevoked(claims.jti) // true, in this process and every other
 */
export function createFileRevocationList(dataDir: string): FileRevocationList {
  const path = join(dataDir, FILE_NAME)
  const revoked = new Set<string>()
  // Ids known to be on disk (read from the file, or appended and fsynced).
  const durable = new Set<string>()
  let offset = 0
  // The file as `offset` was reached in it: a new inode, or a change that did not grow it, is
  // a rewritten file, read again from its start.
  let file: FileStamp | undefined
  // The file as of the last read that got to its end (null: there was no file), or undefined
  // when the next check must read: never read yet, or the last read failed.
  let seen: FileStamp | null | undefined
  let running: Promise<void> | undefined
  let queued: Promise<void> | undefined
  let writes: Promise<unknown> = Promise.resolve()

  async function readNew(): Promise<void> {
    seen = undefined
    let handle: FileHandle
    try {
      handle = await open(path, 'r')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        seen = null
        return
      }
      throw error
    }
    try {
      const stats = await handle.stat({ bigint: true })
      const stamp = stampOf(stats)
      const size = Number(stats.size)
      const appended = file?.dev === stamp.dev && file.ino === stamp.ino && size > offset
      if (!appended && !sameStamp(file ?? null, stamp)) {
        // Append-only, so this is a replaced file: read it all again (nothing is un-revoked).
        offset = 0
      }
      if (size === offset) {
        seen = stamp
        file = stamp
        return
      }
      const bytes = Buffer.alloc(size - offset)
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, offset)
      // After a short read the stamp's size is ahead of what was read: not remembered, so the
      // next check reads again.
      const complete = bytesRead === bytes.length ? stamp : undefined
      const end = bytes.subarray(0, bytesRead).lastIndexOf(NEWLINE)
      if (end < 0) {
        seen = complete
        file = stamp
        return
      }
      for (const line of bytes.subarray(0, end).toString('utf8').split('\n')) {
        const jti = line.trim()
        if (!TORN_ID.test(jti)) {
          // Not what a crash leaves: the file is corrupt, or not ours. Skipping the line could
          // skip a revocation. The ids before it still count (revoking more is safe), but the
          // offset stays, so every later read fails the same way until the file is repaired.
          throw new WardenError('store_unavailable', 'the revocation list is corrupt')
        }
        if (jtiSchema.safeParse(jti).success) {
          revoked.add(jti)
          durable.add(jti)
        }
      }
      offset += end + 1
      seen = complete
      file = stamp
    } finally {
      await handle.close()
    }
  }

  // Each caller waits for a read that started after it asked; concurrent callers share one.
  function refresh(): Promise<void> {
    if (!running) {
      running = readNew().finally(() => {
        running = undefined
      })
      return running
    }
    queued ??= running
      .catch(() => undefined)
      .then(() => {
        queued = undefined
        return refresh()
      })
    return queued
  }

  async function append(jti: string): Promise<void> {
    if (durable.has(jti)) {
      return
    }
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    const handle = await open(path, 'a+', 0o600)
    try {
      const { size } = await handle.stat()
      let line = `${jti}\n`
      if (size > 0) {
        // After a torn write, start on a fresh line.
        const last = Buffer.alloc(1)
        await handle.read(last, 0, 1, size - 1)
        if (last[0] !== NEWLINE) {
          line = `\n${line}`
        }
      } else {
        await handle.chmod(0o600)
      }
      await handle.appendFile(line)
      await handle.sync()
      if (size === 0) {
        await syncDir(dataDir)
      }
    } finally {
      await handle.close()
    }
    durable.add(jti)
  }

  return {
    path,
    async isRevoked(jti) {
      if (revoked.has(jti)) {
        return true
      }
      try {
        if (seen !== undefined && sameStamp(seen, statNow(path))) {
          return false
        }
        await refresh()
      } catch (error) {
        throw unavailable('the revocation list cannot be read', error)
      }
      return revoked.has(jti)
    },
    async revoke(jti) {
      if (!jtiSchema.safeParse(jti).success) {
        throw new WardenError('invalid_request', 'not a token id')
      }
      revoked.add(jti)
      const write = writes.then(
        () => append(jti),
        () => append(jti),
      )
      writes = write.catch(() => undefined)
      try {
        await write
      } catch (error) {
        throw unavailable('the revocation list cannot be written', error)
      }
    },
  }
}

/** What tells one state of the file from another without reading it. */
interface FileStamp {
  dev: bigint
  ino: bigint
  size: bigint
  mtimeNs: bigint
  ctimeNs: bigint
}

function stampOf(stats: BigIntStats): FileStamp {
  const { dev, ino, size, mtimeNs, ctimeNs } = stats
  return { dev, ino, size, mtimeNs, ctimeNs }
}

/** The file's stamp now, or null when there is no file. Throws what stat(2) fails with. */
function statNow(path: string): FileStamp | null {
  const stats = statSync(path, { bigint: true, throwIfNoEntry: false })
  return stats ? stampOf(stats) : null
}

function sameStamp(a: FileStamp | null, b: FileStamp | null): boolean {
  if (a === null || b === null) {
    return a === b
  }
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  )
}

/**
 * An in-memory revocation list, for tests and single-process tools. Nothing survives a restart.
 *
 * @example
 * const revocations = createMemoryRevocationList(['0b5e…'])
 */
export function createMemoryRevocationList(jtis: Iterable<string> = []): WritableRevocationList {
  const revoked = new Set(jtis)
  return {
    async isRevoked(jti) {
      return revoked.has(jti)
    },
    async revoke(jti) {
      revoked.add(jti)
    },
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
