/**
 * Revoked token ids. Verification asks a {@link RevocationList} about a token's `jti` and
 * every ancestor in its `chain`; the file-backed list is the default store.
 */
import { mkdir, open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { WardenError } from '../errors.js'
import { jtiSchema } from './claims.js'

/** Answers whether a token id is revoked. Implementations fail closed: they throw on I/O errors. */
export interface RevocationList {
  /** True when `jti` is revoked. */
  isRevoked(jti: string): Promise<boolean>
}

/** A revocation list that can also revoke. */
export interface WritableRevocationList extends RevocationList {
  /** Revoke `jti`. Resolves once the revocation is durable; revoking twice is harmless. */
  revoke(jti: string): Promise<void>
}

/** The file-backed list of {@link createFileRevocationList}. */
export interface FileRevocationList extends WritableRevocationList {
  /** The append-only file: one revoked `jti` per line. */
  readonly path: string
}

const FILE_NAME = 'revoked-tokens.txt'
const NEWLINE = 0x0a

/**
 * The append-only revocation file `<dataDir>/revoked-tokens.txt` (mode 0600), one `jti` per
 * line, read into a Set. `revoke` resolves only after the line is fsynced; the id counts as
 * revoked in this process from the moment `revoke` is called (fail closed), even if the write
 * then fails. Each `isRevoked` of an id not yet known reads whatever other processes appended
 * since the last read, so every process on the same data dir sees every revocation.
 * Unreadable lines (a torn write from a crash) are skipped.
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
  let running: Promise<void> | undefined
  let queued: Promise<void> | undefined
  let writes: Promise<unknown> = Promise.resolve()

  async function readNew(): Promise<void> {
    let handle: FileHandle
    try {
      handle = await open(path, 'r')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return
      }
      throw error
    }
    try {
      const { size } = await handle.stat()
      if (size < offset) {
        // Append-only, so this is a replaced file: read it all again (nothing is un-revoked).
        offset = 0
      }
      if (size === offset) {
        return
      }
      const bytes = Buffer.alloc(size - offset)
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, offset)
      const end = bytes.subarray(0, bytesRead).lastIndexOf(NEWLINE)
      if (end < 0) {
        return
      }
      for (const line of bytes.subarray(0, end).toString('utf8').split('\n')) {
        const jti = line.trim()
        if (jtiSchema.safeParse(jti).success) {
          revoked.add(jti)
          durable.add(jti)
        }
      }
      offset += end + 1
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
      await refresh()
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
      await write
    },
  }
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
