/**
 * `warden audit verify|tail`: check the audit log's hash chain and signed checkpoints, and read
 * its last records. Both only read the files, so they need no lock and run beside a Warden
 * that is writing the log.
 */
import type { KeyObject } from 'node:crypto'
import {
  auditLogPath,
  auditSigningKeyPath,
  openRedisConnection,
  readAuditFile,
  readAuditVerificationKey,
  readRedisAuditVerificationKey,
  resolveMasterKey,
  verifyAuditStream,
  WardenError,
} from '../../runtime/index.js'
import type {
  HostConfig,
  AuditLog,
  AuditQuery,
  AuditRecord,
  AuditVerifyOptions,
  AuditVerifyResult,
  AuditVerifySuccess,
} from '../../runtime/index.js'

/** Where `openWarden` keeps the audit log of a data dir. */
export function auditLogFile(dataDir: string): string {
  return auditLogPath(dataDir)
}

/** Where `openWarden` keeps the key that signs the audit log's checkpoints. */
export function auditSigningKeyFile(dataDir: string): string {
  return auditSigningKeyPath(dataDir)
}

/**
 * The public key to check checkpoints with: from `file` (a PEM public key, or the signing key
 * itself), or undefined when `file` does not exist and `required` is false (a data dir from
 * before checkpoints). A missing required file is `not_found`, an unreadable one `forbidden`, and
 * one that is not an Ed25519 key `invalid_request`.
 */
export async function loadCheckpointKey(
  file: string,
  required: boolean,
): Promise<KeyObject | undefined> {
  try {
    return await readAuditVerificationKey(file)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') {
      if (!required) {
        return undefined
      }
      throw new WardenError('not_found', `no key at ${file}`, { cause: error })
    }
    if (code === 'EACCES' || code === 'EPERM') {
      // The signing key is 0600: another user verifies with its public half.
      throw new WardenError('forbidden', `cannot read ${file}; pass --public-key`, {
        cause: error,
      })
    }
    if (error instanceof TypeError) {
      throw new WardenError('invalid_request', `${file} is not an Ed25519 PEM key`, {
        cause: error,
      })
    }
    throw error
  }
}

/**
 * Read a log file without opening it for writing (no lock). A missing file is `not_found`.
 *
 * @example
 * const records = await tailAudit(auditFileReader(auditLogFile(dataDir)), { limit: 5 })
 */
export function auditFileReader(file: string): Pick<AuditLog, 'read'> {
  return {
    read: (query) =>
      readAuditFile(file, query).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new WardenError('not_found', `no audit log at ${file}`, { cause: error })
        }
        throw error
      }),
  }
}

/**
 * Verify the chain: every record's hash, `prevHash` link and seq. `source` is an open log
 * (`warden.audit`) or anything with the same `verify`, such as a file verifier. Pass an
 * anchored head (`expectLastSeq`, `expectLastHash`, kept where the log's writer cannot
 * rewrite it) to also detect a truncated or rebuilt log.
 *
 * @example
 * const result = await verifyAudit(warden.audit)
 * if (!result.ok) console.error(formatVerifyResult(result))
 */
export function verifyAudit(
  source: Pick<AuditLog, 'verify'>,
  anchor: AuditVerifyOptions = {},
): Promise<AuditVerifyResult> {
  return source.verify(anchor)
}

/** One line for a terminal: `ok: …` or `first bad seq N (<reason>)`. */
export function formatVerifyResult(result: AuditVerifyResult): string {
  if (!result.ok) {
    return `first bad seq ${result.firstBadSeq} (${result.reason})`
  }
  return result.count === 0
    ? 'ok: the audit log is empty'
    : `ok: ${result.count} records, last seq ${result.lastSeq}, last hash ${result.lastHash}`
}

/**
 * The line after a successful verification: the last signed checkpoint and how many records
 * after it only the chain vouches for, or that there is none.
 */
export function formatCheckpointResult(result: AuditVerifySuccess): string {
  const last = result.lastCheckpoint
  if (!last) {
    return 'no signed checkpoint: a rebuilt chain is only caught against a head kept elsewhere'
  }
  const after =
    result.unsigned === 0
      ? 'no record after it'
      : `${result.unsigned} records after it, covered by the hash chain only`
  return `last signed checkpoint: seq ${last.seq} at ${last.ts}; ${after}`
}

/** Options of {@link tailAudit}. */
export interface TailAuditOptions {
  /** The last this many matching records. 1 to 10 000; default 20. */
  limit?: number
  /** Only records of this invocation. */
  invocationId?: string
  /** Only records of this app. */
  appId?: string
}

/** Default of {@link TailAuditOptions.limit}. */
export const DEFAULT_TAIL_LIMIT = 20

/**
 * The last `limit` records matching the filters, in seq order. Scans the log from the start
 * (the log has no index), a page at a time. Throws `invalid_request` for a bad limit.
 *
 * @example
 * for (const record of await tailAudit(warden.audit, { appId: 'hello', limit: 5 })) { … }
 */
export async function tailAudit(
  log: Pick<AuditLog, 'read'>,
  options: TailAuditOptions = {},
): Promise<AuditRecord[]> {
  const limit = options.limit ?? DEFAULT_TAIL_LIMIT
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
    throw new WardenError('invalid_request', '--limit must be an integer from 1 to 10000')
  }
  const filters: AuditQuery = {
    ...(options.invocationId === undefined ? {} : { invocationId: options.invocationId }),
    ...(options.appId === undefined ? {} : { appId: options.appId }),
  }
  let last: AuditRecord[] = []
  let fromSeq = 1
  for (;;) {
    const page = await log.read({ ...filters, fromSeq, limit: 10_000 })
    last = [...last, ...page].slice(-limit)
    if (page.length < 10_000) {
      return last
    }
    fromSeq = page[page.length - 1]!.seq + 1
  }
}

/**
 * `audit verify` in Redis mode (`WARDEN_REDIS_URL` set): the whole stream of the deployment,
 * checked here, with its checkpoint key: the `--public-key` file, or the one the deployment keeps
 * sealed in Redis, opened with `WARDEN_MASTER_KEY` (a key swapped in Redis does not open).
 * Undefined when the host is not in Redis mode.
 */
export async function verifyRedisStream(
  config: Pick<HostConfig, 'redisUrl' | 'redisPrefix' | 'masterKey' | 'dataDir'>,
  flags: { expectLastSeq?: number; expectLastHash?: string; publicKey?: string },
): Promise<{ result: AuditVerifyResult } | undefined> {
  if (!config.redisUrl) {
    return undefined
  }
  const redis = await openRedisConnection({ url: config.redisUrl, prefix: config.redisPrefix })
  try {
    const checkpointKey =
      flags.publicKey !== undefined
        ? await loadCheckpointKey(flags.publicKey, true)
        : config.masterKey
          ? await readRedisAuditVerificationKey(
              redis,
              await resolveMasterKey({ fromEnv: config.masterKey, dataDir: config.dataDir }),
            )
          : undefined
    const result = await verifyAuditStream(redis, {
      ...(flags.expectLastSeq === undefined ? {} : { expectLastSeq: flags.expectLastSeq }),
      ...(flags.expectLastHash === undefined ? {} : { expectLastHash: flags.expectLastHash }),
      ...(checkpointKey === undefined ? {} : { checkpointKey }),
    })
    if (result.ok && checkpointKey === undefined && result.checkpoints > 0) {
      throw new WardenError(
        'not_found',
        `the stream has ${result.checkpoints} signed checkpoints and no key to check them ` +
          'with; set WARDEN_MASTER_KEY or pass --public-key',
      )
    }
    return { result }
  } finally {
    await redis.close()
  }
}
