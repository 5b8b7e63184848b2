/**
 * The append-only JSONL audit log (the default sink of DESIGN.md "Audit record"): one canonical
 * JSON record per line, hash-chained, each append durable on disk before it resolves.
 */
import { mkdir, open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { WardenError } from '../errors.js'
import { canonicalJson } from './canonical.js'
import { MAX_LINE_BYTES, readLines } from './lines.js'
import { GENESIS_HASH, buildRecord } from './record.js'
import type { AuditEntry, AuditRecord } from './record.js'
import { parseRecordLine, verifyAuditFileUpTo } from './verify.js'
import type { AuditVerifyOptions, AuditVerifyResult } from './verify.js'

/** Options of {@link openAuditLog}. */
export interface AuditLogOptions {
  /** The JSONL file. It and its directory are created if missing. One writer per file. */
  file: string
  /**
   * Applied to every free-text field of every entry before it is sanitised and hashed; pass
   * the secrets redactor so no secret value ever reaches a record. Must return a string.
   */
  redact?: (text: string) => string
  /**
   * Called with each record once it is durable, in seq order, before its `append` resolves
   * (the Redis stream and OpenTelemetry sinks). Not awaited; what it throws or rejects is
   * ignored, so a sink must handle its own failures.
   */
  onAppend?: (record: AuditRecord) => void | Promise<void>
  /** The clock for records without `ts`, in epoch ms. Default `Date.now`. */
  now?: () => number
}

/** A query of {@link AuditLog.read}. Filters combine with AND. */
export interface AuditQuery {
  /** The first seq to return. Default 1. */
  fromSeq?: number
  /** At most this many records, 1 to 10 000. Default 1000. */
  limit?: number
  invocationId?: string
  appId?: string
}

/** An open audit log. */
export interface AuditLog {
  readonly file: string
  /** True when opening cut a torn final line (a write a crash interrupted, never acknowledged). */
  readonly recovered: boolean
  /** How many bytes that cut removed (0 when `recovered` is false). */
  readonly recoveredBytes: number
  /** The last durable record's seq and hash (`{ 0, GENESIS_HASH }` for an empty log). */
  readonly head: { seq: number; hash: string }
  /**
   * Append one entry. Resolves with its record once it is on disk (written and `datasync`ed);
   * concurrent appends share one write and one `datasync` and keep their call order.
   * Rejects with a TypeError for an invalid entry (nothing is written), and with `internal`
   * when the log is closed or failed: after a failed write the log refuses every append until
   * it is reopened, since its chain may be ahead of the file.
   */
  append(entry: AuditEntry): Promise<AuditRecord>
  /** Durable records matching `query`, in seq order. Scans the file from the start. */
  read(query?: AuditQuery): Promise<AuditRecord[]>
  /** {@link verifyAuditFile} over the durable part of this log. */
  verify(options?: AuditVerifyOptions): Promise<AuditVerifyResult>
  /** Wait for pending appends, then close the file. Idempotent. */
  close(): Promise<void>
}

interface Pending {
  record: AuditRecord
  line: string
  resolve: (record: AuditRecord) => void
  reject: (error: unknown) => void
}

/**
 * Open (or create) the audit log at `file`. Reads only the tail: the last record gives the next
 * seq and `prevHash`. A final line with no newline is a write a crash interrupted: it was never
 * acknowledged, so it is cut, and `recovered` says so. A last complete line that is not an
 * intact record is not cut: opening fails with `internal`, and the file is left for
 * {@link verifyAuditFile} and a human. The whole chain is not verified here (that is O(size));
 * call `log.verify()` at start-up for that.
 *
 * @example
 * const audit = await openAuditLog({ file: join(dataDir, 'audit.jsonl'), redact: secrets.redact })
 * const record = await audit.append({ kind: 'admin', actor: 'admin:k1', op: 'app.disable',
 *   target: appId, decision: 'allow' })
 */
export async function openAuditLog(options: AuditLogOptions): Promise<AuditLog> {
  const { file, redact, onAppend } = options
  const now = options.now ?? Date.now
  if (typeof file !== 'string' || file === '') {
    throw new TypeError('openAuditLog: file must be a path')
  }
  await mkdir(dirname(file), { recursive: true })
  const tail = await recoverTail(file)
  const handle = await open(file, 'a')
  if (!tail.existed) {
    await syncDirectory(dirname(file))
  }

  // The chain as appends see it (ahead of the disk while a batch is in flight)…
  let seq = tail.seq
  let lastHash = tail.hash
  // …and as it is on disk.
  let durable = { seq: tail.seq, hash: tail.hash }
  let durableBytes = tail.size
  let pending: Pending[] = []
  let flushing: Promise<void> | undefined
  let failure: WardenError | undefined
  let closing: Promise<void> | undefined

  async function flush(): Promise<void> {
    // NB: one microtask first, so every append made in the same tick joins the first batch.
    await undefined
    while (pending.length > 0) {
      const batch = pending
      pending = []
      const bytes = Buffer.from(batch.map((p) => p.line).join(''), 'utf8')
      try {
        await writeAll(handle, bytes)
        await handle.datasync()
      } catch (error) {
        // The chain in memory is now ahead of what is known to be on disk: refuse to go on.
        failure = new WardenError('internal', 'the audit log could not be written', {
          cause: error,
        })
        for (const p of [...batch, ...pending]) {
          p.reject(failure)
        }
        pending = []
        break
      }
      durableBytes += bytes.length
      const last = batch[batch.length - 1] as Pending
      durable = { seq: last.record.seq, hash: last.record.hash }
      for (const p of batch) {
        emit(p.record)
        p.resolve(p.record)
      }
    }
    flushing = undefined
  }

  function emit(record: AuditRecord): void {
    if (!onAppend) {
      return
    }
    try {
      const result = onAppend(record)
      if (result && typeof result.then === 'function') {
        result.then(undefined, () => undefined)
      }
    } catch {
      // a sink's failure is the sink's: the record is already durable here
    }
  }

  const log: AuditLog = {
    file,
    recovered: tail.tornBytes > 0,
    recoveredBytes: tail.tornBytes,
    get head() {
      return { ...durable }
    },

    append(entry) {
      if (failure) {
        return Promise.reject(failure)
      }
      if (closing) {
        return Promise.reject(new WardenError('internal', 'the audit log is closed'))
      }
      let record: AuditRecord
      let line: string
      try {
        record = buildRecord(entry, { seq: seq + 1, prevHash: lastHash, now, redact })
        line = `${canonicalJson(record)}\n`
      } catch (error) {
        return Promise.reject(error)
      }
      // Synchronously, so that concurrent appends get consecutive seqs in call order.
      seq = record.seq
      lastHash = record.hash
      return new Promise<AuditRecord>((resolve, reject) => {
        pending.push({ record, line, resolve, reject })
        flushing ??= flush()
      })
    },

    async read(query = {}) {
      const fromSeq = query.fromSeq ?? 1
      const limit = query.limit ?? 1000
      if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) {
        throw new TypeError('audit read: fromSeq must be a positive integer')
      }
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
        throw new TypeError('audit read: limit must be an integer from 1 to 10000')
      }
      const out: AuditRecord[] = []
      for await (const line of readLines(file, { end: durableBytes })) {
        let record: AuditRecord | undefined
        try {
          record = line.terminated && line.text !== null ? JSON.parse(line.text) : undefined
        } catch {
          record = undefined
        }
        if (typeof record !== 'object' || record === null) {
          throw new WardenError('internal', 'the audit log is corrupt; verify it', {
            cause: { file, line: line.n },
          })
        }
        if (
          record.seq < fromSeq ||
          (query.invocationId !== undefined && record.invocationId !== query.invocationId) ||
          (query.appId !== undefined && record.appId !== query.appId)
        ) {
          continue
        }
        out.push(record)
        if (out.length >= limit) {
          break
        }
      }
      return out
    },

    verify(verifyOptions = {}) {
      return verifyAuditFileUpTo(file, verifyOptions, durableBytes)
    },

    close() {
      closing ??= (async () => {
        while (flushing) {
          await flushing
        }
        await handle.close()
      })()
      return closing
    },
  }
  return log
}

interface Tail {
  seq: number
  hash: string
  /** Bytes of complete lines: where appends start. */
  size: number
  /** Bytes of a torn final line, cut on open. */
  tornBytes: number
  existed: boolean
}

/** Find the last record, and cut a torn final line. */
async function recoverTail(file: string): Promise<Tail> {
  let handle: FileHandle
  try {
    handle = await open(file, 'r+')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return { seq: 0, hash: GENESIS_HASH, size: 0, tornBytes: 0, existed: false }
    }
    throw error
  }
  try {
    const { size } = await handle.stat()
    const lastNewline = await lastIndexOfNewline(handle, size)
    const complete = lastNewline + 1
    let seq = 0
    let hash = GENESIS_HASH
    if (complete > 0) {
      const start = (await lastIndexOfNewline(handle, lastNewline)) + 1
      const record =
        lastNewline - start <= MAX_LINE_BYTES
          ? parseRecordLine(await readText(handle, start, lastNewline - start))
          : undefined
      if (!record) {
        throw new WardenError('internal', 'the last audit record is corrupt; verify the log', {
          cause: { file, offset: start },
        })
      }
      seq = record.seq
      hash = record.hash
    }
    if (complete < size) {
      await handle.truncate(complete)
      await handle.sync()
    }
    return { seq, hash, size: complete, tornBytes: size - complete, existed: true }
  } finally {
    await handle.close()
  }
}

const CHUNK = 1 << 16

/** The offset of the last `\n` before `end`, or -1. */
async function lastIndexOfNewline(handle: FileHandle, end: number): Promise<number> {
  const buffer = Buffer.alloc(CHUNK)
  let stop = end
  while (stop > 0) {
    const from = Math.max(0, stop - CHUNK)
    const length = stop - from
    await readFully(handle, buffer, length, from)
    const index = buffer.subarray(0, length).lastIndexOf(10)
    if (index !== -1) {
      return from + index
    }
    stop = from
  }
  return -1
}

async function readText(handle: FileHandle, position: number, length: number): Promise<string> {
  const buffer = Buffer.alloc(length)
  await readFully(handle, buffer, length, position)
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buffer)
  } catch {
    return ''
  }
}

async function readFully(
  handle: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
): Promise<void> {
  let done = 0
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, position + done)
    if (bytesRead === 0) {
      throw new WardenError('internal', 'the audit log shrank while it was being opened')
    }
    done += bytesRead
  }
}

async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let done = 0
  while (done < bytes.length) {
    // The file is open with 'a' (O_APPEND): every write lands at the end, whatever the position.
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done)
    done += bytesWritten
  }
}

/** Make a new file's directory entry durable (fsync(2): a new file needs its directory synced). */
async function syncDirectory(directory: string): Promise<void> {
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
