/**
 * One writer per audit log: an exclusive lock file beside it, created with `wx` and holding the
 * owner's pid, host and start time. Two writers would interleave sequence numbers and fork the
 * chain; a second one is refused instead. Readers (`verify`, `tail`) take no lock.
 */
import type { FileHandle } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { WardenError } from '../errors.js'
import type { WardenErrorCode } from '../errors.js'

/** Who holds (or held) a lock, as written in the lock file. */
export interface AuditLockOwner {
  pid: number
  host: string
  /** ISO 8601: when the lock was taken. */
  startedAt: string
}

/** A held lock. Create it with {@link acquireAuditLock}. */
export interface AuditLock {
  readonly file: string
  /**
   * The lock this one replaced because its owner was not running (a crash), or null. An owner
   * that cannot be read (a lock file cut short long ago) has `pid` 0.
   */
  readonly tookOver: AuditLockOwner | null
  /** Remove the lock file if it is still ours. Idempotent. */
  release(): Promise<void>
}

/** Test seams of {@link acquireAuditLock}. */
export interface AuditLockOptions {
  /** Whether `pid` is a running process on this host. Default: `process.kill(pid, 0)`. */
  isAlive?: (pid: number) => boolean
}

/** The code of the error a held lock throws: the data dir's store is in use elsewhere. */
export const LOCKED_CODE: WardenErrorCode = 'store_unavailable'

// A lock file with no readable owner is one being written (`wx`, then the write) unless older.
const UNREADABLE_GRACE_MS = 10_000
const ATTEMPTS = 5

/**
 * Take the lock `file`, or throw a WardenError ({@link LOCKED_CODE}) naming the pid and host
 * holding it.
 * A lock whose owner is not running on this host is stale: it is taken over and `tookOver`
 * says whose it was. A lock held by another host is never taken over (its pid means nothing
 * here): delete the file by hand once that host is gone. A lock held by this very process (a
 * second `openWarden` on one data dir) is refused like any other.
 *
 * @example
 * const lock = await acquireAuditLock(`${file}.lock`)
 * try { … } finally { await lock.release() }
 */
export async function acquireAuditLock(
  file: string,
  options: AuditLockOptions = {},
): Promise<AuditLock> {
  const isAlive = options.isAlive ?? processIsAlive
  const owner: AuditLockOwner & { nonce: string } = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    // Tells our lock from a later one of the same pid when releasing.
    nonce: randomUUID(),
  }
  const text = `${JSON.stringify(owner)}\n`
  let tookOver: AuditLockOwner | null = null
  let holder: Holder | undefined
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (await create(file, text)) {
      let released = false
      return {
        file,
        tookOver,
        async release() {
          if (released) {
            return
          }
          released = true
          const current = await readFile(file, 'utf8').catch(() => undefined)
          if (current === text) {
            await unlink(file).catch(() => undefined)
          }
        },
      }
    }
    holder = await readHolder(file)
    if (!holder) {
      continue
    }
    if (!isStale(holder, isAlive)) {
      throw lockedError(file, holder)
    }
    if (await removeIfUnchanged(file, holder.raw)) {
      tookOver = holder.owner ?? {
        pid: 0,
        host: '',
        startedAt: new Date(holder.mtimeMs).toISOString(),
      }
    }
  }
  throw lockedError(file, holder)
}

interface Holder {
  raw: string
  owner: AuditLockOwner | undefined
  mtimeMs: number
}

/** Create the lock file with our owner in it; false when it already exists. */
async function create(file: string, text: string): Promise<boolean> {
  let handle: FileHandle
  try {
    handle = await open(file, 'wx', 0o644)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      return false
    }
    throw error
  }
  try {
    await handle.writeFile(text)
    await handle.sync()
  } catch (error) {
    await handle.close().catch(() => undefined)
    await unlink(file).catch(() => undefined)
    throw error
  }
  await handle.close()
  return true
}

async function readHolder(file: string): Promise<Holder | undefined> {
  let raw: string
  let mtimeMs: number
  try {
    raw = await readFile(file, 'utf8')
    mtimeMs = (await stat(file)).mtimeMs
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined
    }
    throw error
  }
  return { raw, owner: parseOwner(raw), mtimeMs }
}

function parseOwner(raw: string): AuditLockOwner | undefined {
  try {
    const value = JSON.parse(raw) as Partial<AuditLockOwner>
    if (
      Number.isSafeInteger(value.pid) &&
      (value.pid as number) > 0 &&
      typeof value.host === 'string' &&
      typeof value.startedAt === 'string' &&
      !Number.isNaN(Date.parse(value.startedAt))
    ) {
      return { pid: value.pid as number, host: value.host, startedAt: value.startedAt }
    }
  } catch {
    // unreadable: judged by its age
  }
  return undefined
}

function isStale(holder: Holder, isAlive: (pid: number) => boolean): boolean {
  const { owner } = holder
  if (!owner) {
    return Date.now() - holder.mtimeMs > UNREADABLE_GRACE_MS
  }
  if (owner.host !== hostname()) {
    return false
  }
  if (owner.pid === process.pid) {
    // Our pid: this process (another open, another thread) unless the lock predates us, as
    // when a container restarts and its process gets the same pid as the one that crashed.
    const started = Date.now() - process.uptime() * 1000
    return Date.parse(owner.startedAt) < started - 1000
  }
  return !isAlive(owner.pid)
}

/**
 * Remove the stale lock whose content is `raw`, and only that one: it is first renamed away
 * (atomic), so of two processes taking over at once only one removes it, and a fresh lock
 * renamed away by mistake is linked back.
 */
async function removeIfUnchanged(file: string, raw: string): Promise<boolean> {
  const aside = `${file}.stale-${process.pid}-${randomUUID()}`
  try {
    await rename(file, aside)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return false
    }
    throw error
  }
  const moved = await readFile(aside, 'utf8')
  if (moved !== raw) {
    await link(aside, file).catch(() => undefined)
    await unlink(aside)
    return false
  }
  await unlink(aside)
  return true
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

function lockedError(file: string, holder: Holder | undefined): WardenError {
  const owner = holder?.owner
  if (owner && owner.pid === process.pid && owner.host === hostname()) {
    return new WardenError(
      LOCKED_CODE,
      'the audit log is already open in this process; close the other Warden first',
      { cause: { file, owner } },
    )
  }
  const who = owner ? `pid ${owner.pid} on ${owner.host}, since ${owner.startedAt}` : 'unknown'
  return new WardenError(
    LOCKED_CODE,
    `the audit log is in use by another Warden process (${who}); stop it, or delete ${file} if ` +
      'it is not running',
    { cause: { file, owner } },
  )
}
