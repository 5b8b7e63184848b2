/**
 * The audit log of a deployment: one Redis stream (`<prefix>audit`) with one hash chain for
 * every host. A record's stream id is `<seq>-1`, so reading from a seq is a range.
 *
 * Appending, under concurrent writers: each host builds its records (redacted, sanitised,
 * hashed) chained on the head it last saw, and a Lua script appends them only if the head
 * (`<prefix>audit:head`: seq and hash) is still that one, atomically; otherwise it answers the
 * current head and the host chains again (Redis's Lua has no SHA-256, so the script checks the
 * link instead of computing it). Concurrent appends of one host share one script call.
 *
 * When Redis is away: records are spooled to a local file (`fsync`ed before `append` resolves,
 * so an acknowledged record is never lost) and replayed, in order and chained on the head of
 * the moment, when Redis is back (a reconnect or a timer). Each spooled record carries an id
 * that the replay marks in Redis in the same script, so a replay cut short by a crash is not
 * appended twice. While a spool is pending, new records go to it too: order is kept.
 *
 * No signed checkpoints here: each host has its own signing key, and a shared one would be a
 * shared secret in Redis. The chain covers the stream; anchor its head elsewhere (see
 * docs/design-changes.md).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { WardenError } from '../errors.js'
import { canonicalJson } from '../audit/canonical.js'
import { acquireAuditLock } from '../audit/lock.js'
import { matchesQuery } from '../audit/query.js'
import type { AuditLog, AuditQuery } from '../audit/log.js'
import { GENESIS_HASH, buildRecord, computeRecordHash } from '../audit/record.js'
import type { AuditRecord } from '../audit/record.js'
import { verifyRecords } from '../audit/verify.js'
import type { AuditVerifyOptions, AuditVerifyResult } from '../audit/verify.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'

/** Options of {@link openRedisAuditLog}. */
export interface RedisAuditLogOptions {
  redis: RedisConnection
  /** The local spool, e.g. `<dataDir>/audit/redis-spool.jsonl` (locked: one host per file). */
  spoolFile: string
  /** The secrets redactor (as for the file log). */
  redact?: (text: string) => string
  /** Called with each record once it is in the stream (OpenTelemetry). Not awaited. */
  onAppend?: (record: AuditRecord) => void
  now?: () => number
  /** How often a pending spool is tried again, in ms. Default 500. */
  replayEveryMs?: number
}

/** The Redis audit log: an {@link AuditLog}, plus what the spool holds. */
export interface RedisAuditLog extends AuditLog {
  /** Records acknowledged but not yet in the stream (spooled). */
  spooled(): number
}

// KEYS[1] stream, KEYS[2] head, KEYS[3..] replay marks. ARGV[1] expected seq, ARGV[2] expected
// hash, ARGV[3] new head hash, ARGV[4..] the records' JSON, seq order.
const APPEND = `
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash')
local seq = tonumber(head[1] or '0')
local hash = head[2] or '${GENESIS_HASH}'
if seq ~= tonumber(ARGV[1]) or hash ~= ARGV[2] then
  return {0, seq, hash}
end
for i = 4, #ARGV do
  seq = seq + 1
  redis.call('XADD', KEYS[1], seq .. '-1', 'r', ARGV[i])
end
redis.call('HSET', KEYS[2], 'seq', seq, 'hash', ARGV[3])
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', 604800)
end
return {1, seq, ARGV[3]}
`

interface Item {
  /** Redacted and sanitised; seq, prevHash and hash set when chained. */
  record: AuditRecord
  /** Set for a spooled record: its replay mark. */
  spoolId?: string
  resolve?: (record: AuditRecord) => void
  reject?: (error: unknown) => void
}

const BATCH = 256
const READ_CHUNK = 1000

/** The record re-linked as record `seq` after `prevHash`. */
function chain(record: AuditRecord, seq: number, prevHash: string): AuditRecord {
  const linked = { ...record, seq, prevHash, hash: '' }
  linked.hash = computeRecordHash(linked)
  return linked
}

/**
 * Open the stream log of a deployment (and replay what a previous run of this host spooled).
 *
 * @example
 * const audit = await openRedisAuditLog({ redis, spoolFile: join(dataDir, 'audit', 'redis-spool.jsonl') })
 * await audit.append({ kind: 'admin', actor: 'admin:k1', op: 'app.disable', decision: 'allow' })
 */
export async function openRedisAuditLog(options: RedisAuditLogOptions): Promise<RedisAuditLog> {
  const { redis, spoolFile, redact } = options
  const now = options.now ?? Date.now
  const stream = redis.key('audit')
  const headKey = redis.key('audit:head')
  const markKey = (id: string) => redis.key(`audit:replayed:${id}`)
  await mkdir(dirname(spoolFile), { recursive: true, mode: 0o700 })
  const lock = await acquireAuditLock(`${spoolFile}.lock`)
  let spool: FileHandle
  try {
    spool = await open(spoolFile, 'a+', 0o600)
    await spool.chmod(0o600)
  } catch (error) {
    await lock.release()
    throw error
  }
  let head = { seq: 0, hash: GENESIS_HASH }
  try {
    const [seq, hash] = await redis.client.hmget(headKey, 'seq', 'hash')
    if (seq !== null && hash !== null) {
      head = { seq: Number(seq), hash }
    }
  } catch (error) {
    await spool.close()
    await lock.release()
    throw storeUnavailable('the audit stream cannot be read', error)
  }
  let spooledCount = (await readSpool()).length
  const pending: Item[] = []
  let pumping: Promise<void> | undefined
  let closing: Promise<void> | undefined

  async function readSpool(): Promise<Item[]> {
    const text = await readFile(spoolFile, 'utf8')
    const items: Item[] = []
    for (const line of text.split('\n')) {
      if (line === '') {
        continue
      }
      try {
        const { id, record } = JSON.parse(line) as { id: string; record: AuditRecord }
        items.push({ record, spoolId: id })
      } catch {
        // a torn last line: a write a crash cut, never acknowledged
      }
    }
    return items
  }

  /** Append `items` in order to the stream; throws when Redis is away. */
  async function appendToStream(items: Item[]): Promise<AuditRecord[]> {
    for (;;) {
      let prev = head
      const records = items.map((item) => {
        const linked = chain(item.record, prev.seq + 1, prev.hash)
        prev = { seq: linked.seq, hash: linked.hash }
        return linked
      })
      const marks = items.flatMap((item) => (item.spoolId ? [markKey(item.spoolId)] : []))
      const answer = (await redis.client.eval(
        APPEND,
        2 + marks.length,
        stream,
        headKey,
        ...marks,
        String(head.seq),
        head.hash,
        prev.hash,
        ...records.map((r) => canonicalJson(r)),
      )) as [number, number, string]
      head = { seq: Number(answer[1]), hash: String(answer[2]) }
      if (answer[0] === 1) {
        for (const record of records) {
          emit(record)
        }
        return records
      }
      // Another host appended first: chain on its head and try again.
    }
  }

  function emit(record: AuditRecord): void {
    try {
      options.onAppend?.(record)
    } catch {
      // a sink's failure is the sink's
    }
  }

  async function toSpool(items: Item[]): Promise<void> {
    const lines = items.map((item) => {
      item.spoolId = randomBytes(12).toString('base64url')
      return `${JSON.stringify({ id: item.spoolId, record: item.record })}\n`
    })
    await spool.appendFile(lines.join(''))
    await spool.datasync()
    spooledCount += items.length
  }

  /** Replay the spool; true when it is empty afterwards. */
  async function replay(): Promise<boolean> {
    const items = await readSpool()
    for (let i = 0; i < items.length; i += BATCH) {
      const batch = items.slice(i, i + BATCH)
      // Marks of a replay a crash cut short: those are in the stream already.
      const done = await redis.client.mget(...batch.map((item) => markKey(item.spoolId!)))
      const todo = batch.filter((_, j) => done[j] === null)
      if (todo.length > 0) {
        await appendToStream(todo)
      }
    }
    await spool.truncate(0)
    await spool.sync()
    spooledCount = 0
    return true
  }

  async function pump(): Promise<void> {
    // NB: one microtask first, so the appends of one tick share a batch.
    await undefined
    while (pending.length > 0 || spooledCount > 0) {
      if (spooledCount > 0) {
        if (redis.healthy() && (await replay().catch(() => false))) {
          continue
        }
        if (pending.length === 0) {
          break
        }
        // Behind the spool, to keep the order.
        await settleBySpool(pending.splice(0))
        continue
      }
      const batch = pending.splice(0, BATCH)
      try {
        const records = await appendToStream(batch)
        for (const [i, item] of batch.entries()) {
          item.resolve?.(records[i]!)
        }
      } catch {
        // Redis is away: keep the records locally, durably, and acknowledge them.
        await settleBySpool(batch)
      }
    }
    pumping = undefined
  }

  async function settleBySpool(batch: Item[]): Promise<void> {
    try {
      await toSpool(batch)
      for (const item of batch) {
        item.resolve?.(item.record)
      }
    } catch (error) {
      const failure = new WardenError('internal', 'the audit log could not be written', {
        cause: error,
      })
      for (const item of batch) {
        item.reject?.(failure)
      }
    }
  }

  const kick = () => {
    pumping ??= pump()
    return pumping
  }
  const timer = setInterval(() => {
    if (spooledCount > 0 && redis.healthy()) {
      void kick()
    }
  }, options.replayEveryMs ?? 500)
  timer.unref()
  const stopReconnect = redis.onReconnect(() => {
    void kick()
  })
  if (spooledCount > 0) {
    void kick()
  }

  const readRange = (fromSeq: number, count: number) => readStream(redis, fromSeq, count)

  return {
    file: `redis:${stream}`,
    recovered: false,
    recoveredBytes: 0,
    staleLock: lock.tookOver,
    get head() {
      return { ...head }
    },
    spooled: () => spooledCount + pending.length,
    append(entry) {
      if (closing) {
        return Promise.reject(new WardenError('internal', 'the audit log is closed'))
      }
      let record: AuditRecord
      try {
        // Chained later: seq and prevHash are placeholders until the stream takes it.
        record = buildRecord(entry, { seq: 1, prevHash: GENESIS_HASH, now, redact })
      } catch (error) {
        return Promise.reject(error)
      }
      return new Promise<AuditRecord>((resolve, reject) => {
        pending.push({ record, resolve, reject })
        void kick()
      })
    },
    async read(query: AuditQuery = {}) {
      const fromSeq = query.fromSeq ?? 1
      const limit = query.limit ?? 1000
      if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) {
        throw new TypeError('audit read: fromSeq must be a positive integer')
      }
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
        throw new TypeError('audit read: limit must be an integer from 1 to 10000')
      }
      const out: AuditRecord[] = []
      let from = fromSeq
      for (;;) {
        const chunk = await readRange(from, READ_CHUNK)
        for (const record of chunk) {
          if (matchesQuery(record, query)) {
            out.push(record)
            if (out.length >= limit) {
              return out
            }
          }
        }
        if (chunk.length < READ_CHUNK) {
          return out
        }
        from = chunk[chunk.length - 1]!.seq + 1
      }
    },
    verify(verifyOptions = {}) {
      return verifyAuditStream(redis, verifyOptions)
    },
    close() {
      closing ??= (async () => {
        clearInterval(timer)
        stopReconnect()
        while (pumping) {
          await pumping
        }
        await spool.close()
        await lock.release()
      })()
      return closing
    },
  }
}

/** Records of the stream from `fromSeq`, at most `count`. */
async function readStream(
  redis: RedisConnection,
  fromSeq: number,
  count: number,
): Promise<AuditRecord[]> {
  try {
    const entries = await redis.client.xrange(
      redis.key('audit'),
      `${fromSeq}-0`,
      '+',
      'COUNT',
      count,
    )
    return entries.map(([, fields]) => JSON.parse(fields[1] ?? 'null') as AuditRecord)
  } catch (error) {
    throw storeUnavailable('the audit stream cannot be read', error)
  }
}

/**
 * Verify the whole audit stream of a deployment (every record's hash, link and seq), reading it
 * a page at a time; the records are held in memory for the check. Needs no lock: runs beside
 * the hosts writing it (`warden audit verify` with `WARDEN_REDIS_URL`).
 *
 * @example
 * const result = await verifyAuditStream(redis)
 */
export async function verifyAuditStream(
  redis: RedisConnection,
  options: AuditVerifyOptions = {},
): Promise<AuditVerifyResult> {
  const all: AuditRecord[] = []
  for (let from = 1; ; ) {
    const chunk = await readStream(redis, from, READ_CHUNK)
    all.push(...chunk)
    if (chunk.length < READ_CHUNK) {
      break
    }
    from = chunk[chunk.length - 1]!.seq + 1
  }
  return verifyRecords(all, options)
}
