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
 * Signed checkpoints, as in the file log: given the master key, every `checkpointEvery` records
 * (and when a host opens or closes the stream with records since the last one) a checkpoint
 * record signed with the deployment's one key (audit-key.ts) joins the batch that crosses the
 * count. Before it signs records other hosts appended, a host verifies them from the last
 * checkpoint (`vouched`): it never signs a tail rewritten in Redis. The head (`seq`, `hash`,
 * `cp`: the last checkpoint's seq) is the stream's one global head, the same on every host.
 *
 * Reads by invocation, app or actor use indexes written by the same script, atomically with
 * the records: a sorted set of seqs per value (`<prefix>audit:inv:<id>`, `audit:app:<id>`,
 * `audit:actor:<actor>`). Verification is incremental (audit-verify.ts).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { WardenError } from '../errors.js'
import { canonicalJson } from '../audit/canonical.js'
import {
  DEFAULT_CHECKPOINT_EVERY,
  MAX_CHECKPOINT_EVERY,
  buildCheckpointRecord,
} from '../audit/checkpoint.js'
import type { AuditSigningKey } from '../audit/checkpoint.js'
import { acquireAuditLock } from '../audit/lock.js'
import { checkQuery, MAX_CONCURRENT_SCANS } from '../audit/log.js'
import { createLimit } from '../audit/limit.js'
import { matchesQuery } from '../audit/query.js'
import type { AuditLog, AuditQuery } from '../audit/log.js'
import { GENESIS_HASH, buildRecord, computeRecordHash } from '../audit/record.js'
import type { AuditRecord } from '../audit/record.js'
import { verifyRecords } from '../audit/verify.js'
import { openRedisAuditSigningKey } from './audit-key.js'
import {
  createStreamVerifyCache,
  readStream,
  readStreamFrom,
  verifyAuditStream,
} from './audit-verify.js'
import { storeUnavailable } from './connection.js'
import type { RedisConnection } from './connection.js'

export { verifyAuditStream } from './audit-verify.js'

/** Options of {@link openRedisAuditLog}. */
export interface RedisAuditLogOptions {
  redis: RedisConnection
  /** The local spool, e.g. `<dataDir>/audit/redis-spool.jsonl` (locked: one host per file). */
  spoolFile: string
  /**
   * The deployment's master key: opens (or makes) the checkpoint signing key kept sealed in
   * Redis. Without it no checkpoint is written or checked.
   */
  masterKey?: Uint8Array
  /** With `masterKey`: a signed checkpoint after this many records. Default 1000. */
  checkpointEvery?: number
  /** The secrets redactor (as for the file log). */
  redact?: (text: string) => string
  /** Called with each record once it is in the stream (OpenTelemetry). Not awaited. */
  onAppend?: (record: AuditRecord) => void
  now?: () => number
  /** How often a pending spool is tried again, in ms. Default 500. */
  replayEveryMs?: number
  /** `verify()` does a full check at least this often, in ms. Default 10 minutes. */
  fullVerifyEveryMs?: number
}

/** The Redis audit log: an {@link AuditLog}, plus what the spool holds. */
export interface RedisAuditLog extends AuditLog {
  /** Records acknowledged but not yet in the stream (spooled). */
  spooled(): number
}

// KEYS[1] stream, KEYS[2] head, KEYS[3..2+ARGV[5]] replay marks, then index keys. ARGV[1]
// expected seq, ARGV[2] expected hash, ARGV[3] new head hash, ARGV[4] new last checkpoint seq,
// ARGV[5] how many marks; then, in seq order, each record's JSON and the KEYS positions of its
// index keys ('4 7').
const APPEND = `
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash', 'cp')
local seq = tonumber(head[1] or '0')
local hash = head[2] or '${GENESIS_HASH}'
local cp = tonumber(head[3] or '0')
if seq ~= tonumber(ARGV[1]) or hash ~= ARGV[2] then
  return {0, seq, hash, cp}
end
for i = 6, #ARGV, 2 do
  seq = seq + 1
  redis.call('XADD', KEYS[1], seq .. '-1', 'r', ARGV[i])
  for k in string.gmatch(ARGV[i + 1], '%d+') do
    redis.call('ZADD', KEYS[tonumber(k)], seq, seq)
  end
end
redis.call('HSET', KEYS[2], 'seq', seq, 'hash', ARGV[3], 'cp', ARGV[4])
for i = 3, 2 + tonumber(ARGV[5]) do
  redis.call('SET', KEYS[i], '1', 'EX', 604800)
end
return {1, seq, ARGV[3], tonumber(ARGV[4])}
`

// KEYS[1] stream; ARGV the ids. The records' JSON, false for a missing one.
const FETCH = `
local out = {}
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if e[1] then out[i] = e[1][2][2] else out[i] = false end
end
return out
`

interface Head {
  seq: number
  hash: string
  /** The seq of the last checkpoint record (0: none). */
  cp: number
}

interface Item {
  /** Redacted and sanitised; seq, prevHash and hash set when chained. */
  record: AuditRecord
  /** Set for a spooled record: its replay mark. */
  spoolId?: string
  resolve?: (record: AuditRecord) => void
  reject?: (error: unknown) => void
}

const BATCH = 256
const INDEX_CHUNK = 500

/** The record re-linked as record `seq` after `prevHash`. */
function chain(record: AuditRecord, seq: number, prevHash: string): AuditRecord {
  const linked = { ...record, seq, prevHash, hash: '' }
  linked.hash = computeRecordHash(linked)
  return linked
}

/** The index keys of a record (checkpoints have none). */
function indexNames(record: AuditRecord): string[] {
  const names: string[] = []
  if (record.invocationId !== null) {
    names.push(`audit:inv:${record.invocationId}`)
  }
  if (record.appId !== null) {
    names.push(`audit:app:${record.appId}`)
  }
  if (record.actor !== null) {
    names.push(`audit:actor:${record.actor}`)
  }
  return names
}

/** The index that serves `query`, most selective first, or undefined (a scan). */
function indexFor(query: AuditQuery): string | undefined {
  if (query.invocationId !== undefined) {
    return `audit:inv:${query.invocationId}`
  }
  if (query.appId !== undefined) {
    return `audit:app:${query.appId}`
  }
  if (query.actor !== undefined) {
    return `audit:actor:${query.actor}`
  }
  return undefined
}

/**
 * Open the stream log of a deployment (and replay what a previous run of this host spooled).
 * With the master key, also opens the checkpoint signing key, and appends a checkpoint when
 * the stream is empty or has records since its last one.
 *
 * @example
 * const audit = await openRedisAuditLog({ redis, masterKey,
 *   spoolFile: join(dataDir, 'audit', 'redis-spool.jsonl') })
 * await audit.append({ kind: 'admin', actor: 'admin:k1', op: 'app.disable', decision: 'allow' })
 */
export async function openRedisAuditLog(options: RedisAuditLogOptions): Promise<RedisAuditLog> {
  const { redis, spoolFile, redact } = options
  const now = options.now ?? Date.now
  const every = options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY
  if (!Number.isSafeInteger(every) || every < 1 || every > MAX_CHECKPOINT_EVERY) {
    throw new TypeError('openRedisAuditLog: checkpointEvery must be an integer from 1 to 1000000')
  }
  const stream = redis.key('audit')
  const headKey = redis.key('audit:head')
  const markKey = (id: string) => redis.key(`audit:replayed:${id}`)
  const signing = options.masterKey
    ? await openRedisAuditSigningKey(redis, options.masterKey)
    : undefined
  const key = signing?.key
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
  let head: Head
  try {
    head = await fetchHead()
  } catch (error) {
    await spool.close()
    await lock.release()
    throw error
  }
  // The record up to which this host vouches for the chain (it verified or wrote it), for
  // signing; undefined: from the last checkpoint, verified when a checkpoint is due.
  let vouched: { seq: number; hash: string } | undefined
  // Set when records since the last checkpoint did not verify: this host signs no more.
  let refuseToSign = false
  let spooledCount = (await readSpool()).length
  const pending: Item[] = []
  let pumping: Promise<void> | undefined
  let closing: Promise<void> | undefined
  const verifyCached = createStreamVerifyCache(redis, {
    ...(key ? { checkpointKey: key.publicKey } : {}),
    ...(options.fullVerifyEveryMs ? { fullEveryMs: options.fullVerifyEveryMs } : {}),
    now,
  })

  async function fetchHead(): Promise<Head> {
    try {
      const [seq, hash, cp] = await redis.client.hmget(headKey, 'seq', 'hash', 'cp')
      return seq !== null && hash !== null
        ? { seq: Number(seq), hash, cp: Number(cp ?? 0) }
        : { seq: 0, hash: GENESIS_HASH, cp: 0 }
    } catch (error) {
      throw storeUnavailable('the audit stream cannot be read', error)
    }
  }

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

  /**
   * Whether this host may sign a checkpoint over `head` now: it vouches for every record since
   * the last checkpoint (it reads and verifies those it has not seen). Throws when Redis is away.
   */
  async function maySign(signer: AuditSigningKey): Promise<boolean> {
    if (refuseToSign) {
      return false
    }
    if (vouched?.seq === head.seq && vouched.hash === head.hash) {
      return true
    }
    let after = vouched
    if (after === undefined || after.seq < head.cp || after.seq > head.seq) {
      if (head.cp === 0) {
        // No checkpoint yet: only an empty stream, or one this host's new key adopts, is signed;
        // records without any checkpoint under an existing key may be a rebuilt stream.
        return head.seq === 0 || signing?.created === true
      }
      const [checkpoint] = await readStream(redis, head.cp, 1)
      if (checkpoint?.seq !== head.cp) {
        refuseToSign = true
        return false
      }
      after = { seq: checkpoint.seq - 1, hash: checkpoint.prevHash }
    }
    const records = await readStreamFrom(redis, after.seq + 1)
    const result = verifyRecords(
      records.filter((r) => r.seq <= head.seq),
      { after, checkpointKey: signer.publicKey },
    )
    if (!result.ok || result.lastSeq !== head.seq || result.lastHash !== head.hash) {
      refuseToSign = true
      return false
    }
    vouched = { seq: head.seq, hash: head.hash }
    return true
  }

  /**
   * Append `items` in order to the stream, with the checkpoints that fall due (and one at the
   * end when `checkpoint` is set and records followed the last one); throws when Redis is away.
   */
  async function appendToStream(items: Item[], checkpoint = false): Promise<AuditRecord[]> {
    for (;;) {
      const signer =
        key && (checkpoint || head.seq - head.cp + items.length >= every) && (await maySign(key))
          ? key
          : undefined
      const ts = new Date(now()).toISOString()
      let prev = { seq: head.seq, hash: head.hash }
      let cp = head.cp
      const records: AuditRecord[] = []
      const all: AuditRecord[] = []
      const link = (record: AuditRecord) => {
        all.push(record)
        prev = { seq: record.seq, hash: record.hash }
      }
      const sign = () => {
        link(buildCheckpointRecord(prev, { ts, every, key: signer! }))
        cp = prev.seq
      }
      for (const item of items) {
        const linked = chain(item.record, prev.seq + 1, prev.hash)
        records.push(linked)
        link(linked)
        if (signer && prev.seq - cp >= every) {
          sign()
        }
      }
      if (signer && checkpoint && (prev.seq > cp || prev.seq === 0)) {
        sign()
      }
      if (all.length === 0) {
        return records
      }
      const marks = items.flatMap((item) => (item.spoolId ? [markKey(item.spoolId)] : []))
      const keys = [stream, headKey, ...marks]
      const positions = new Map<string, number>()
      const args: string[] = []
      for (const record of all) {
        const at = indexNames(record).map((name) => {
          let position = positions.get(name)
          if (position === undefined) {
            keys.push(redis.key(name))
            position = keys.length
            positions.set(name, position)
          }
          return position
        })
        args.push(canonicalJson(record), at.join(' '))
      }
      const answer = (await redis.client.eval(
        APPEND,
        keys.length,
        ...keys,
        String(head.seq),
        head.hash,
        prev.hash,
        String(cp),
        String(marks.length),
        ...args,
      )) as [number, number, string, number]
      const before = head
      head = { seq: Number(answer[1]), hash: String(answer[2]), cp: Number(answer[3]) }
      if (answer[0] === 1) {
        if (vouched?.seq === before.seq && vouched.hash === before.hash) {
          // Chained on what this host vouched for: it vouches for its own records too.
          vouched = { seq: head.seq, hash: head.hash }
        }
        for (const record of all) {
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

  /** A checkpoint over the head, when records followed the last one (best effort). */
  async function checkpointNow(): Promise<void> {
    while (pumping) {
      await pumping
    }
    if (key && spooledCount === 0 && (head.seq === 0 || head.seq > head.cp)) {
      await appendToStream([], true)
    }
  }

  /** Records of the index `name` matching `query`, in seq order. */
  async function readIndexed(name: string, query: AuditQuery): Promise<AuditRecord[]> {
    const { fromSeq, limit } = checkQuery(query)
    const out: AuditRecord[] = []
    for (let from = fromSeq; ; ) {
      let texts: (string | null)[]
      let seqs: string[]
      try {
        seqs = await redis.client.zrange(
          redis.key(name),
          from,
          '+inf',
          'BYSCORE',
          'LIMIT',
          0,
          INDEX_CHUNK,
        )
        texts =
          seqs.length === 0
            ? []
            : ((await redis.client.eval(FETCH, 1, stream, ...seqs.map((s) => `${s}-1`))) as (
                | string
                | null
              )[])
      } catch (error) {
        throw storeUnavailable('the audit stream cannot be read', error)
      }
      for (const text of texts) {
        if (typeof text !== 'string') {
          // The index names a record the stream does not have: deleted behind Warden's back.
          throw new WardenError('internal', 'the audit stream is corrupt; verify it')
        }
        const record = JSON.parse(text) as AuditRecord
        if (matchesQuery(record, query)) {
          out.push(record)
          if (out.length >= limit) {
            return out
          }
        }
      }
      if (seqs.length < INDEX_CHUNK) {
        return out
      }
      from = Number(seqs[seqs.length - 1]) + 1
    }
  }

  // As the file log (`MAX_CONCURRENT_SCANS`): every scan reads the one stream all hosts share
  // and parses it on this main thread; an auditor's concurrent unindexed queries were each a
  // full scan (thirteenth outside attack).
  const scans = createLimit(MAX_CONCURRENT_SCANS)

  /** Records matching `query` by reading the stream from `fromSeq` (no index serves it). */
  async function scan(query: AuditQuery): Promise<AuditRecord[]> {
    const { fromSeq, limit } = checkQuery(query)
    const out: AuditRecord[] = []
    for (let from = fromSeq; ; ) {
      const chunk = await readStream(redis, from, INDEX_CHUNK * 2)
      for (const record of chunk) {
        if (matchesQuery(record, query)) {
          out.push(record)
          if (out.length >= limit) {
            return out
          }
        }
      }
      if (chunk.length < INDEX_CHUNK * 2) {
        return out
      }
      from = chunk[chunk.length - 1]!.seq + 1
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

  const log: RedisAuditLog = {
    file: `redis:${stream}`,
    recovered: false,
    recoveredBytes: 0,
    staleLock: lock.tookOver,
    get head() {
      return { seq: head.seq, hash: head.hash }
    },
    checkpointKey: key ? { keyId: key.keyId, publicKey: key.publicKey } : null,
    async readHead() {
      const current = await fetchHead()
      if (current.seq >= head.seq) {
        head = current
      }
      return { seq: current.seq, hash: current.hash }
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
    read(query: AuditQuery = {}) {
      checkQuery(query)
      const name = indexFor(query)
      return name === undefined ? scans(() => scan(query)) : readIndexed(name, query)
    },
    verify(verifyOptions = {}) {
      if (Object.keys(verifyOptions).length === 0) {
        return verifyCached()
      }
      return verifyAuditStream(redis, {
        ...(key ? { checkpointKey: key.publicKey } : {}),
        ...verifyOptions,
      })
    },
    close() {
      closing ??= (async () => {
        clearInterval(timer)
        stopReconnect()
        try {
          await checkpointNow()
        } catch {
          // Redis away: the next host to open or cross the count signs
        } finally {
          await spool.close()
          await lock.release()
        }
      })()
      return closing
    },
  }
  try {
    await checkpointNow()
  } catch (error) {
    await log.close()
    throw storeUnavailable('the audit stream cannot be written', error)
  }
  return log
}
