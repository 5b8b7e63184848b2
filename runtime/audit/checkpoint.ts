/**
 * Signed checkpoints: every so many records the log appends one record signed with an Ed25519
 * key that lives outside the log file. Whoever can rewrite the file but cannot read the key can
 * rebuild the hash chain, but not the signatures over it.
 *
 * Why a key of its own and not the token key ring (runtime/tokens/keys.ts): a retired token key
 * "verifies nothing" and has its private half erased, which would void every checkpoint it ever
 * signed, while a checkpoint must verify for as long as the log is kept; token keys rotate on
 * their own schedule and sign online for every grant; and a leak of one key should not forge the
 * other's signatures.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
} from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { chmod, open, readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { canonicalJson } from './canonical.js'
import { syncDirectory } from './fsync.js'
import { sealRecord } from './record-json.js'
import type { AuditCheckpoint, AuditRecord } from './record.js'

/** The default of `checkpointEvery`: a signed checkpoint after this many records. */
export const DEFAULT_CHECKPOINT_EVERY = 1000

/** The largest `checkpointEvery` accepted. */
export const MAX_CHECKPOINT_EVERY = 1_000_000

const DOMAIN = 'warden-audit-checkpoint/v1\n'
const KEY_MODE = 0o600
const BASE64URL = /^[A-Za-z0-9_-]+$/
const HEX64 = /^[0-9a-f]{64}$/

/** The key that signs checkpoints. Its private half never leaves this object. */
export interface AuditSigningKey {
  /** RFC 7638 thumbprint of the public key, base64url. */
  readonly keyId: string
  /** The public half, to verify with. */
  readonly publicKey: KeyObject
  /** The base64url signature of a checkpoint over `covered`, stamped `ts`, promising `every`. */
  signCheckpoint(covered: { seq: number; hash: string }, ts: string, every: number): string
}

/**
 * Load the checkpoint signing key from `file` (PKCS#8 PEM), or make one there (mode 0600,
 * created with `wx`) when it does not exist. A key file readable by group or others is
 * tightened to 0600. `created` says whether this call made it.
 *
 * @example
 * const { key } = await openAuditSigningKey(join(dataDir, 'audit-signing.key'))
 */
export async function openAuditSigningKey(
  file: string,
): Promise<{ key: AuditSigningKey; created: boolean }> {
  let pem: string
  let created = false
  try {
    pem = await readFile(file, 'utf8')
    if (process.platform !== 'win32' && ((await stat(file)).mode & 0o077) !== 0) {
      await chmod(file, KEY_MODE)
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw error
    }
    const { privateKey } = generateKeyPairSync('ed25519')
    pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
    const handle = await open(file, 'wx', KEY_MODE)
    try {
      await handle.writeFile(pem)
      await handle.sync()
    } finally {
      await handle.close()
    }
    // NB: a key lost in a crash after it signed a checkpoint leaves that checkpoint unverifiable.
    await syncDirectory(dirname(file))
    created = true
  }
  return { created, key: auditSigningKeyFrom(createPrivateKey(pem)) }
}

/**
 * The {@link AuditSigningKey} of an Ed25519 private key (a file's, or the one a Redis
 * deployment keeps sealed with its master key: runtime/redis/audit-key.ts).
 */
export function auditSigningKeyFrom(privateKey: KeyObject): AuditSigningKey {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('audit signing key: the key file must hold an Ed25519 private key')
  }
  const publicKey = createPublicKey(privateKey)
  const keyId = auditKeyId(publicKey)
  return {
    keyId,
    publicKey,
    signCheckpoint(covered, ts, every) {
      return sign(null, signedBytes({ ...covered, every, keyId, ts }), privateKey).toString(
        'base64url',
      )
    },
  }
}

/**
 * The public key to verify checkpoints with, from a PEM file: a public key (SPKI), or the
 * signing key file itself (its public half is derived; nothing else is kept).
 *
 * @example
 * const key = await readAuditVerificationKey('.warden/audit-signing.key')
 * await verifyAuditFile('.warden/audit/audit.jsonl', { checkpointKey: key })
 */
export async function readAuditVerificationKey(file: string): Promise<KeyObject> {
  return auditVerificationKey(await readFile(file, 'utf8'))
}

/** {@link readAuditVerificationKey} from PEM text. Throws a TypeError for anything but Ed25519. */
export function auditVerificationKey(pem: string): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch (error) {
    throw new TypeError('audit verification key: not a PEM public or private key', {
      cause: error,
    })
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('audit verification key: must be an Ed25519 key')
  }
  return key
}

/** The RFC 7638 JWK thumbprint of an Ed25519 public key, base64url: the `keyId` of checkpoints. */
export function auditKeyId(publicKey: KeyObject): string {
  const { crv, kty, x } = publicKey.export({ format: 'jwk' })
  return createHash('sha256').update(canonicalJson({ crv, kty, x })).digest('base64url')
}

/**
 * Internal: the checkpoint record that follows `covered`, signed, hashed and frozen. Its other
 * fields are fixed, so nothing a caller or a guest controls can reach it.
 */
export function buildCheckpointRecord(
  covered: { seq: number; hash: string },
  context: { ts: string; every: number; key: AuditSigningKey },
): AuditRecord {
  const { ts, every, key } = context
  const checkpoint: AuditCheckpoint = Object.freeze({
    seq: covered.seq,
    hash: covered.hash,
    every,
    keyId: key.keyId,
    sig: key.signCheckpoint(covered, ts, every),
  })
  const body: Omit<AuditRecord, 'hash'> = {
    seq: covered.seq + 1,
    ts,
    invocationId: null,
    appId: null,
    digest: null,
    tokenJti: null,
    actor: null,
    kind: 'checkpoint',
    capability: null,
    op: 'checkpoint',
    target: null,
    decision: 'allow',
    reason: null,
    durationMs: null,
    bytesOut: null,
    bytesIn: null,
    meter: null,
    checkpoint,
    prevHash: covered.hash,
  }
  return sealRecord(body).record
}

/**
 * Internal: the checkpoint of a parsed `kind: 'checkpoint'` record when it is well formed and
 * covers the record before it (`seq - 1`, `prevHash`), else undefined. Checks no signature.
 */
export function checkpointOf(
  record: Readonly<Record<string, unknown>>,
): AuditCheckpoint | undefined {
  const cp = record.checkpoint as Record<string, unknown> | null | undefined
  if (typeof cp !== 'object' || cp === null || Array.isArray(cp)) {
    return undefined
  }
  const keys = Object.keys(cp).sort().join(',')
  if (
    keys !== 'every,hash,keyId,seq,sig' ||
    typeof record.ts !== 'string' ||
    cp.seq !== (record.seq as number) - 1 ||
    cp.hash !== record.prevHash ||
    typeof cp.hash !== 'string' ||
    !HEX64.test(cp.hash) ||
    !Number.isSafeInteger(cp.every) ||
    (cp.every as number) < 1 ||
    (cp.every as number) > MAX_CHECKPOINT_EVERY ||
    typeof cp.keyId !== 'string' ||
    !BASE64URL.test(cp.keyId) ||
    typeof cp.sig !== 'string' ||
    !BASE64URL.test(cp.sig)
  ) {
    return undefined
  }
  return cp as unknown as AuditCheckpoint
}

/** Internal: whether `checkpoint`, in a record stamped `ts`, was signed by `publicKey`. */
export function checkpointSignatureValid(
  checkpoint: AuditCheckpoint,
  ts: string,
  publicKey: KeyObject,
  keyId: string,
): boolean {
  if (checkpoint.keyId !== keyId) {
    return false
  }
  const { sig, ...signed } = checkpoint
  try {
    return verify(null, signedBytes({ ...signed, ts }), publicKey, Buffer.from(sig, 'base64url'))
  } catch {
    return false
  }
}

function signedBytes(fields: {
  seq: number
  hash: string
  every: number
  keyId: string
  ts: string
}): Buffer {
  const { seq, hash, every, keyId, ts } = fields
  return Buffer.from(`${DOMAIN}${canonicalJson({ every, hash, keyId, seq, ts })}`, 'utf8')
}
