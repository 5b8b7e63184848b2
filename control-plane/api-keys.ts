/**
 * API keys of the control plane: who may upload, administer and audit. A key is
 * `wdn_<id>_<secret>`: the id (16 hex digits) names the key in lists and audit records and is
 * not secret; the secret is 32 random bytes. Only the SHA-256 of the whole key is stored (the
 * secret has 256 bits of entropy, so a slow hash adds nothing); a presented key is hashed and
 * compared with `timingSafeEqual`. The file is written atomically with mode 0600.
 *
 * One process writes a data dir (the audit log's writer lock), so the store keeps the keys in
 * memory and writes the file through on every change.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { WardenError } from '../runtime/index.js'
import type { RedisConnection } from '../runtime/index.js'
import { openJsonFile } from './json-file.js'
import { openRedisDoc } from './redis-doc.js'

/** The roles an API key can have. */
export const API_ROLES = ['admin', 'publisher', 'auditor'] as const

/** One role: `admin` runs Warden, `publisher` uploads apps, `auditor` reads the audit log. */
export type ApiRole = (typeof API_ROLES)[number]

/** What the store tells about a key: never its secret or its hash. */
export interface ApiKeyInfo {
  /** 16 hex digits; appears in the key itself, in lists and as `key:<id>` in audit records. */
  id: string
  role: ApiRole
  /** A human label: who or what holds it. */
  label: string
  createdAt: string
  /** The actor that created it (`key:<id>`, or `bootstrap`). */
  createdBy: string
  revokedAt?: string
  revokedBy?: string
}

/** The store of API keys. */
export interface ApiKeyStore {
  /** Make a key. The key string is returned once and never stored. */
  create(role: ApiRole, options: { label: string; actor: string }): Promise<NewApiKey>
  /** The live key a presented string is, or undefined (unknown, revoked or malformed). */
  authenticate(presented: string): ApiKeyInfo | undefined
  /** Every key, revoked ones included, oldest first. */
  list(): ApiKeyInfo[]
  get(id: string): ApiKeyInfo | undefined
  /** Revoke a key; undefined when there is no such key. Revoking twice keeps the first date. */
  revoke(id: string, actor: string): Promise<ApiKeyInfo | undefined>
}

/** A freshly made key: the string to hand over once, and its public facts. */
export interface NewApiKey {
  key: string
  info: ApiKeyInfo
}

const KEY = /^wdn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/
const ID = /^[0-9a-f]{16}$/
/** Longest string ever hashed: a key is 64 characters. */
const MAX_PRESENTED = 128

const storedKeySchema = z.strictObject({
  id: z.string().regex(ID),
  role: z.enum(API_ROLES),
  label: z.string().max(200),
  createdAt: z.string(),
  createdBy: z.string().max(200),
  revokedAt: z.string().optional(),
  revokedBy: z.string().max(200).optional(),
  /** SHA-256 of the whole key, hex. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
})
const fileSchema = z.strictObject({ version: z.literal(1), keys: z.array(storedKeySchema) })
type StoredKey = z.output<typeof storedKeySchema>

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

function publicInfo(stored: StoredKey): ApiKeyInfo {
  const { hash: _hash, ...info } = stored
  return { ...info }
}

/** True when `id` is the shape of a key id. */
export function isApiKeyId(id: string): boolean {
  return ID.test(id)
}

/**
 * Open the key file (created on the first write). A file that does not parse is refused with
 * `internal` rather than read as "no keys".
 *
 * @example
 * const keys = await openApiKeyStore(join(dataDir, 'api-keys.json'))
 * const { key } = await keys.create('publisher', { label: 'ci', actor: 'key:0123456789abcdef' })
 * keys.authenticate(key)?.role // 'publisher'
 */
export async function openApiKeyStore(
  file: string,
  options: { redis?: RedisConnection } = {},
): Promise<ApiKeyStore> {
  const empty = () => ({ version: 1 as const, keys: [] as StoredKey[] })
  const shared = options.redis
    ? await openRedisDoc(options.redis, {
        name: 'api-keys',
        field: 'keys',
        idOf: (key: StoredKey) => key.id,
        itemSchema: storedKeySchema,
        empty,
        order: (a, b) => a.createdAt.localeCompare(b.createdAt),
      })
    : undefined
  const doc = shared ?? (await openJsonFile(file, fileSchema, empty, 'the API key file'))
  const byId = new Map<string, StoredKey>(doc.data.keys.map((key) => [key.id, key]))
  // Redis mode: a key another host made or revoked counts here from its announcement on.
  shared?.onChange(() => {
    byId.clear()
    for (const key of doc.data.keys) {
      byId.set(key.id, key)
    }
  })

  return {
    async create(role, { label, actor }) {
      if (!API_ROLES.includes(role)) {
        throw new WardenError('invalid_request', `role must be one of ${API_ROLES.join(', ')}`)
      }
      let id = randomBytes(8).toString('hex')
      while (byId.has(id)) {
        id = randomBytes(8).toString('hex')
      }
      const key = `wdn_${id}_${randomBytes(32).toString('base64url')}`
      const stored: StoredKey = {
        id,
        role,
        label,
        createdAt: new Date().toISOString(),
        createdBy: actor,
        hash: sha256(key).toString('hex'),
      }
      byId.set(id, stored)
      doc.data.keys.push(stored)
      try {
        await doc.save()
      } catch (error) {
        byId.delete(id)
        doc.data.keys.splice(doc.data.keys.indexOf(stored), 1)
        throw error
      }
      return { key, info: publicInfo(stored) }
    },
    authenticate(presented) {
      if (typeof presented !== 'string' || presented.length > MAX_PRESENTED) {
        return undefined
      }
      const match = KEY.exec(presented)
      const stored = match ? byId.get(match[1]!) : undefined
      // Hash and compare whatever came, so that an unknown id costs what a known one does.
      const expected = Buffer.from(stored?.hash ?? '0'.repeat(64), 'hex')
      const same = timingSafeEqual(sha256(presented), expected)
      return same && stored && stored.revokedAt === undefined ? publicInfo(stored) : undefined
    },
    list: () => [...byId.values()].map(publicInfo),
    get(id) {
      const stored = byId.get(id)
      return stored ? publicInfo(stored) : undefined
    },
    async revoke(id, actor) {
      const stored = byId.get(id)
      if (!stored) {
        return undefined
      }
      if (stored.revokedAt === undefined) {
        stored.revokedAt = new Date().toISOString()
        stored.revokedBy = actor
        // Revoked in memory even if the write fails: fail closed.
        await doc.save()
      }
      return publicInfo(stored)
    },
  }
}
