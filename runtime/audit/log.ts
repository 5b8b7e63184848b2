/**
 * The append-only JSONL audit log (the default sink of DESIGN.md "Audit record"): one canonical
 * JSON record per line, hash-chained, each append durable on disk before it resolves. Given a
 * signing key, it also appends a signed checkpoint every so many records and on close, and it
 * holds a lock file so that it is the file's only writer.
 */
import type { KeyObject } from 'node:crypto'
import { constants } from 'node:fs'
import { mkdir, open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { WardenError } from '../errors.js'
import {
  DEFAULT_CHECKPOINT_EVERY,
  MAX_CHECKPOINT_EVERY,
  buildCheckpointRecord,
  openAuditSigningKey,
} from './checkpoint.js'
import type { AuditSigningKey } from './checkpoint.js'
import { syncDirectory } from './fsync.js'
import { MAX_LINE_BYTES, readLines } from './lines.js'
import { createLimit } from './limit.js'
import { acquireAuditLock } from './lock.js'
import { matchesQuery } from './query.js'
import type { AuditLock, AuditLockOwner } from './lock.js'
import { canonicalJson } from './canonical.js'
import { GENESIS_HASH, buildSealedRecord } from './record.js'
import type { SealedRecord } from './record-json.js'
import type { AuditDecision, AuditEntry, AuditRecord } from './record.js'
import { createInvocationIndex } from './invocation-index.js'
import { parseRecordLine, verifyAuditFileUpTo } from './verify.js'
import { createVerifyCache } from './verify-cache.js'
import type { AuditVerifyOptions, AuditVerifyResult } from './verify.js'

/** Options of {@link openAuditLog}. */
export interface AuditLogOptions {
  /**
   * The JSONL file. It and its directory are created if missing. One writer per file: opening
   * takes the lock file `<file>.lock`, and closing releases it (see {@link AuditLog.staleLock}).
   */
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
  /**
   * The Ed25519 key (PKCS#8 PEM) that signs checkpoints; made there, mode 0600, on first open.
   * Keep it where whoever can write the log cannot read it. Without it no checkpoint is written,
   * and a rebuilt chain is only detectable against a head kept elsewhere.
   */
  signingKeyFile?: string
  /**
   * With a signing key: a signed checkpoint after this many records (and on close, and on
   * open when the log does not end with one). 1 to 1 000 000; default 1000.
   */
  checkpointEvery?: number
  /**
   * At most this many records in the in-memory index of invocation ids that serves
   * `read({ invocationId })`; past it, the index keeps the most recent records only, and a read
   * it cannot answer scans the file (one scan at a time, shared by the reads waiting for it),
   * unless `indexedOnly`. Default 200 000.
   */
  indexLimit?: number
}

/** A query of {@link AuditLog.read}. Filters combine with AND. */
export interface AuditQuery {
  /** The first seq to return. Default 1. */
  fromSeq?: number
  /** At most this many records, 1 to 10 000. Default 1000. */
  limit?: number
  invocationId?: string
  appId?: string
  actor?: string
  decision?: AuditDecision
  /** Records at or after this ISO 8601 time. */
  since?: string
  /** Records before this ISO 8601 time. */
  until?: string
  /**
   * With `invocationId`: never scan the log for it. A file log past its index bound
   * (`indexLimit`) then finds only the invocations it indexed recently; the stream, whose
   * index is in Redis, always finds them. What a capability-token bearer's lookup uses.
   */
  indexedOnly?: boolean
}

/** An open audit log. */
export interface AuditLog {
  readonly file: string
  /** True when opening cut a torn final line (a write a crash interrupted, never acknowledged). */
  readonly recovered: boolean
  /** How many bytes that cut removed (0 when `recovered` is false). */
  readonly recoveredBytes: number
  /**
   * The owner of a stale lock this log took over on open (its process was not running: a
   * crash), or null. The takeover is also recorded in the log (`op: 'audit.lock.takeover'`).
   */
  readonly staleLock: AuditLockOwner | null
  /**
   * The last durable record's seq and hash (`{ 0, GENESIS_HASH }` for an empty log), as this
   * host last appended or saw it (in Redis mode, another host may be ahead: see `readHead`).
   */
  readonly head: { seq: number; hash: string }
  /**
   * The head of the whole log, read now: the same as `head` for a file; the stream's one
   * global head in Redis mode, the same answer on every host (`GET /v1/audit/head`).
   */
  readHead(): Promise<{ seq: number; hash: string }>
  /**
   * The public half of the key that signs this log's checkpoints, and its id (the `keyId` of
   * each checkpoint), or null when the log is not signed: what an auditor verifies with
   * (`GET /v1/audit/key`, `warden audit verify --public-key`).
   */
  readonly checkpointKey: { keyId: string; publicKey: KeyObject } | null
  /**
   * Append one entry. Resolves with its record once it is on disk (written through `O_DSYNC`,
   * or written and `datasync`ed where the platform has no `O_DSYNC`); concurrent appends share
   * one write (and one `datasync`) and keep their call order.
   * Rejects with a TypeError for an invalid entry (nothing is written), and with `internal`
   * when the log is closed or failed: after a failed write the log refuses every append until
   * it is reopened, since its chain may be ahead of the file.
   */
  append(entry: AuditEntry): Promise<AuditRecord>
  /**
   * Durable records matching `query`, in seq order, checkpoints included. With `invocationId`,
   * reads only that invocation's lines (an index kept in memory, built by one scan on first
   * use); otherwise scans the file, at most {@link MAX_CONCURRENT_SCANS} reads at a time.
   */
  read(query?: AuditQuery): Promise<AuditRecord[]>
  /**
   * {@link verifyAuditFile} over the durable part of this log, with its checkpoint key. Without
   * options, concurrent calls share one check, and a check after only appends verifies only
   * what is new (the earlier bytes are hashed and compared; see `verify-cache.ts`).
   */
  verify(options?: AuditVerifyOptions): Promise<AuditVerifyResult>
  /**
   * Wait for pending appends, append a checkpoint if records followed the last one, close the
   * file and release the lock. Idempotent. Rejects when that checkpoint could not be written.
   */
  close(): Promise<void>
}

interface Pending {
  record: AuditRecord
  line: string
  resolve: (record: AuditRecord) => void
  reject: (error: unknown) => void
}

/**
 * Open (or create) the audit log at `file`, as its only writer: a second open of the same file,
 * in this process or another, is refused with `store_unavailable` until this one is closed.
 *
 * Reads only the tail: the last record gives the next seq and `prevHash`. A final line with no
 * newline is a write a crash interrupted: it was never acknowledged, so it is cut, and
 * `recovered` says so. A last complete line that is not an intact record is not cut: opening
 * fails with `internal`, and the file is left for {@link verifyAuditFile} and a human. With a
 * signing key, the records from the last checkpoint on are verified too, so that the next
 * checkpoint never signs a chain rebuilt while the log was closed; a log with records but no
 * checkpoint is refused unless its key is new (a log from before checkpoints, adopted). The
 * whole chain is not verified here (that is O(size)); call `log.verify()` at start-up for that.
 *
 * @example
 * const audit = await openAuditLog({ file: join(dataDir, 'audit', 'audit.jsonl'),
 *   signingKeyFile: join(dataDir, 'audit-signing.key'), redact: secrets.redact })
 * const record = await audit.append({ kind: 'admin', actor: 'admin:k1', op: 'app.disable',
 *   target: appId, decision: 'allow' })
 */
export async function openAuditLog(options: AuditLogOptions): Promise<AuditLog> {
  const { file } = options
  if (typeof file !== 'string' || file === '') {
    throw new TypeError('openAuditLog: file must be a path')
  }
  const every = options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY
  if (!Number.isSafeInteger(every) || every < 1 || every > MAX_CHECKPOINT_EVERY) {
    throw new TypeError('openAuditLog: checkpointEvery must be an integer from 1 to 1000000')
  }
  await mkdir(dirname(file), { recursive: true })
  const lock = await acquireAuditLock(`${file}.lock`)
  try {
    return await openLocked(options, every, lock)
  } catch (error) {
    await lock.release()
    throw error
  }
}

async function openLocked(
  options: AuditLogOptions,
  every: number,
  lock: AuditLock,
): Promise<AuditLog> {
  const { file, redact, onAppend } = options
  const now = options.now ?? Date.now
  const signing =
    options.signingKeyFile === undefined
      ? undefined
      : await openAuditSigningKey(options.signingKeyFile)
  const key = signing?.key
  const tail = await recoverTail(file)
  // Records since the last checkpoint, and whether to write one right away.
  let since = 0
  let checkpointNow = false
  if (signing) {
    const state = await checkSinceLastCheckpoint(file, tail, signing.key, signing.created)
    since = state.since
    checkpointNow = tail.seq === 0 || state.since > 0 || state.every !== every
  }
  // Private, like every other file of the data dir (the outside attack saw 0644).
  const handle = await open(file, APPEND_FLAGS, 0o600)
  await handle.chmod(0o600)
  try {
    if (!tail.existed) {
      await syncDirectory(dirname(file))
    }
  } catch (error) {
    await handle.close()
    throw error
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
  const index = createInvocationIndex(file, tail.size, options.indexLimit)
  const verifyCached = createVerifyCache(
    file,
    key ? { checkpointKey: key.publicKey } : {},
    () => durableBytes,
  )

  async function flush(): Promise<void> {
    // NB: one microtask first, so every append made in the same tick joins the first batch.
    await undefined
    while (pending.length > 0) {
      const batch = pending
      pending = []
      const bytes = Buffer.from(batch.map((p) => p.line).join(''), 'utf8')
      try {
        await writeAll(handle, bytes)
        if (!SYNCED_WRITES) {
          await handle.datasync()
        }
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
      for (const p of batch) {
        const end = durableBytes + Buffer.byteLength(p.line, 'utf8')
        index.add(p.record.invocationId, durableBytes, end)
        durableBytes = end
      }
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

  /** Queue `record` as the next line (its seq and prevHash must follow the chain). */
  function enqueue(record: AuditRecord, line: string): Promise<AuditRecord> {
    // Synchronously, so that concurrent appends get consecutive seqs in call order.
    seq = record.seq
    lastHash = record.hash
    return new Promise<AuditRecord>((resolve, reject) => {
      pending.push({ record, line, resolve, reject })
      flushing ??= flush()
    })
  }

  /** Queue a checkpoint over the chain so far. */
  function checkpoint(signer: AuditSigningKey): Promise<AuditRecord> {
    const ms = now()
    const ts = new Date(Number.isFinite(ms) ? ms : Date.now()).toISOString()
    since = 0
    const record = buildCheckpointRecord({ seq, hash: lastHash }, { ts, every, key: signer })
    return enqueue(record, `${canonicalJson(record)}\n`)
  }

  const log: AuditLog = {
    file,
    recovered: tail.tornBytes > 0,
    recoveredBytes: tail.tornBytes,
    staleLock: lock.tookOver,
    get head() {
      return { ...durable }
    },

    async readHead() {
      return { ...durable }
    },

    checkpointKey: key ? { keyId: key.keyId, publicKey: key.publicKey } : null,

    append(entry) {
      if (failure) {
        return Promise.reject(failure)
      }
      if (closing) {
        return Promise.reject(new WardenError('internal', 'the audit log is closed'))
      }
      let sealed: SealedRecord
      try {
        sealed = buildSealedRecord(entry, { seq: seq + 1, prevHash: lastHash, now, redact })
      } catch (error) {
        return Promise.reject(error)
      }
      const appended = enqueue(sealed.record, sealed.line)
      if (key && ++since >= every) {
        // Its failure is the failure of the append it follows, which reports it.
        checkpoint(key).catch(() => undefined)
      }
      return appended
    },

    async read(query = {}) {
      const end = durableBytes
      const { invocationId } = query
      if (invocationId === undefined) {
        return scans(() => readRecords(file, query, end))
      }
      checkQuery(query)
      const spans = await index.spans(invocationId, end, { scan: query.indexedOnly !== true })
      return readSpans(file, invocationId, spans, query)
    },

    verify(verifyOptions = {}) {
      if (Object.keys(verifyOptions).length === 0) {
        return verifyCached()
      }
      const withKey = key ? { checkpointKey: key.publicKey, ...verifyOptions } : verifyOptions
      return verifyAuditFileUpTo(file, withKey, durableBytes)
    },

    close() {
      closing ??= (async () => {
        try {
          while (flushing) {
            await flushing
          }
          if (key && !failure && since > 0) {
            await checkpoint(key)
          }
        } finally {
          await handle.close()
          await lock.release()
        }
      })()
      return closing
    },
  }

  try {
    const opening: Promise<AuditRecord>[] = []
    if (key && checkpointNow) {
      opening.push(checkpoint(key))
    }
    if (lock.tookOver) {
      const { pid, host, startedAt } = lock.tookOver
      opening.push(
        log.append({
          kind: 'admin',
          actor: 'warden',
          op: 'audit.lock.takeover',
          target: `pid ${pid}${host === '' ? '' : ` on ${host}`}, since ${startedAt}`,
          decision: 'allow',
          reason: 'the lock was stale: its process was not running',
        }),
      )
    }
    await Promise.all(opening)
  } catch (error) {
    await handle.close()
    throw error
  }
  return log
}

/**
 * The records of an audit log file matching `query`, in seq order, reading it without opening
 * it for writing, so without its lock (`warden audit tail` while Warden runs). A final line
 * with no newline yet is a write in progress and is left out. A missing file rejects (ENOENT).
 *
 * @example
 * const last = await readAuditFile('.warden/audit/audit.jsonl', { appId: 'hello', limit: 50 })
 */
export function readAuditFile(file: string, query: AuditQuery = {}): Promise<AuditRecord[]> {
  return readRecords(file, query)
}

/** Full reads of a log's file at once, at most (`GET /v1/audit` with filters reads it all). */
export const MAX_CONCURRENT_SCANS = 2

const scans = createLimit(MAX_CONCURRENT_SCANS)

/** Internal: `fromSeq` and `limit` of `query`, checked (the file and the stream). */
export function checkQuery(query: AuditQuery): { fromSeq: number; limit: number } {
  const fromSeq = query.fromSeq ?? 1
  const limit = query.limit ?? 1000
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) {
    throw new TypeError('audit read: fromSeq must be a positive integer')
  }
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
    throw new TypeError('audit read: limit must be an integer from 1 to 10000')
  }
  return { fromSeq, limit }
}

function corrupt(file: string, at: { line: number } | { offset: number }): WardenError {
  return new WardenError('internal', 'the audit log is corrupt; verify it', {
    cause: { file, ...at },
  })
}

/** The records of the lines at `spans` (from the index) that match `query`. */
async function readSpans(
  file: string,
  invocationId: string,
  spans: number[],
  query: AuditQuery,
): Promise<AuditRecord[]> {
  const { limit } = checkQuery(query)
  const out: AuditRecord[] = []
  if (spans.length === 0) {
    return out
  }
  const handle = await open(file, 'r')
  try {
    for (let i = 0; i < spans.length && out.length < limit; i += 2) {
      const start = spans[i] as number
      const length = (spans[i + 1] as number) - start
      let record: AuditRecord | undefined
      try {
        record = JSON.parse(await readText(handle, start, length - 1))
      } catch {
        record = undefined
      }
      // The index is of what this log wrote; anything else there was written by someone else.
      if (typeof record !== 'object' || record === null || record.invocationId !== invocationId) {
        throw corrupt(file, { offset: start })
      }
      if (matchesQuery(record, query)) {
        out.push(record)
      }
    }
  } finally {
    await handle.close()
  }
  return out
}

async function readRecords(file: string, query: AuditQuery, end?: number): Promise<AuditRecord[]> {
  const { fromSeq, limit } = checkQuery(query)
  const out: AuditRecord[] = []
  for await (const line of readLines(file, end === undefined ? {} : { end })) {
    if (!line.terminated) {
      break
    }
    let record: AuditRecord | undefined
    try {
      record = line.text !== null ? JSON.parse(line.text) : undefined
    } catch {
      record = undefined
    }
    if (typeof record !== 'object' || record === null) {
      throw corrupt(file, { line: line.n })
    }
    if (!matchesQuery(record, { ...query, fromSeq })) {
      continue
    }
    out.push(record)
    if (out.length >= limit) {
      break
    }
  }
  return out
}

/**
 * Check the records from the last checkpoint to the tail (normally at most `every` of them):
 * the checkpoint's signature, the chain after it, and that no checkpoint is missing. Answers how
 * many records followed it and what `every` it promised.
 */
async function checkSinceLastCheckpoint(
  file: string,
  tail: Tail,
  key: AuditSigningKey,
  keyIsNew: boolean,
): Promise<{ since: number; every: number | undefined }> {
  if (tail.seq === 0) {
    return { since: 0, every: undefined }
  }
  const found = await findLastCheckpoint(file, tail.size)
  if (!found) {
    if (keyIsNew) {
      // A log from before checkpoints: its first checkpoint vouches for what it already holds.
      return { since: tail.seq, every: undefined }
    }
    throw new WardenError(
      'internal',
      'the audit log has records but no signed checkpoint, though its signing key exists: ' +
        'it may have been rebuilt; run `warden audit verify`',
      { cause: { file } },
    )
  }
  const { offset, record } = found
  const result = await verifyAuditFileUpTo(
    file,
    { after: { seq: record.seq - 1, hash: record.prevHash }, checkpointKey: key.publicKey },
    tail.size,
    offset,
  )
  if (!result.ok) {
    throw new WardenError(
      'internal',
      `the audit log does not match its last signed checkpoint (first bad seq ` +
        `${result.firstBadSeq}, ${result.reason}); run \`warden audit verify\``,
      { cause: { file, result } },
    )
  }
  return { since: tail.seq - record.seq, every: record.checkpoint?.every }
}

// Canonical JSON escapes every `"` inside a string, so these bytes only ever appear as the
// `kind` of a checkpoint record itself.
const CHECKPOINT_MARK = Buffer.from('"kind":"checkpoint"')

/** The last checkpoint record before byte `end`, and the offset of its line. */
async function findLastCheckpoint(
  file: string,
  end: number,
): Promise<{ offset: number; record: AuditRecord } | undefined> {
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(CHUNK + CHECKPOINT_MARK.length)
    let stop = end
    while (stop > 0) {
      const from = Math.max(0, stop - CHUNK)
      // NB: overlap the chunk after, so a mark across the boundary is not missed.
      const length = Math.min(end, stop + CHECKPOINT_MARK.length) - from
      await readFully(handle, buffer, length, from)
      const at = buffer.subarray(0, length).lastIndexOf(CHECKPOINT_MARK)
      if (at !== -1) {
        const offset = (await lastIndexOfNewline(handle, from + at)) + 1
        const lineEnd = await indexOfNewline(handle, from + at, end)
        const record =
          lineEnd - offset <= MAX_LINE_BYTES
            ? parseRecordLine(await readText(handle, offset, lineEnd - offset))
            : undefined
        if (record?.kind !== 'checkpoint') {
          throw new WardenError('internal', 'an audit record is corrupt; verify the log', {
            cause: { file, offset },
          })
        }
        return { offset, record }
      }
      stop = from
    }
    return undefined
  } finally {
    await handle.close()
  }
}

/** The offset of the first `\n` at or after `from`, before `end` (which ends a line). */
async function indexOfNewline(handle: FileHandle, from: number, end: number): Promise<number> {
  const buffer = Buffer.alloc(CHUNK)
  let start = from
  while (start < end) {
    const length = Math.min(CHUNK, end - start)
    await readFully(handle, buffer, length, start)
    const index = buffer.subarray(0, length).indexOf(10)
    if (index !== -1) {
      return start + index
    }
    start += length
  }
  return end
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

/**
 * Where the platform has `O_DSYNC` (Linux, macOS), the log is opened with it: each `write`
 * returns once its bytes and the size that reaches them are on disk, as `write` + `fdatasync`
 * would leave them, in one call to the thread pool instead of two (a batch costs ~25 % less
 * CPU and returns sooner: bench/README.md, "The server's CPU per request"). Elsewhere
 * `'a'` and a `datasync` after each batch's write.
 */
const SYNCED_WRITES = constants.O_DSYNC !== undefined
const APPEND_FLAGS = SYNCED_WRITES
  ? constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC
  : 'a'

async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let done = 0
  while (done < bytes.length) {
    // The file is open with O_APPEND: every write lands at the end, whatever the position.
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done)
    done += bytesWritten
  }
}
