/**
 * What the control plane granted: one entry per minted token (root or attenuated), never the
 * token string. It answers `GET /v1/tokens` and `GET /v1/apps/:id`, and lets decommissioning
 * revoke every token of an app. Revocation itself is the runtime's revocation list; this index
 * only remembers that it happened.
 */
import { join } from 'node:path'
import { z } from 'zod'
import type { RedisConnection } from '../runtime/index.js'
import { openJsonFile } from './json-file.js'
import { openRedisDoc } from './redis-doc.js'

/** One granted token, as the index keeps it and `GET /v1/tokens` shows it. */
export const tokenEntrySchema = z.strictObject({
  jti: z.string(),
  appId: z.string(),
  digest: z.string(),
  parent: z.string().optional(),
  /** The root of its attenuation chain (itself for a granted token). */
  root: z.string().optional(),
  grants: z.unknown(),
  limits: z.unknown(),
  iat: z.int(),
  exp: z.int(),
  grantedBy: z.string(),
  revokedAt: z.string().optional(),
  revokedBy: z.string().optional(),
})
const fileSchema = z.strictObject({ version: z.literal(1), tokens: z.array(tokenEntrySchema) })

/** One granted token, without its string. */
export type TokenEntry = z.output<typeof tokenEntrySchema>

/** The index. */
export interface TokenIndex {
  /** Record a minted token. */
  add(entry: TokenEntry): Promise<void>
  /** Live (unexpired, unrevoked) children recorded for `parent`. */
  childrenOf(parent: string): number
  /** Live descendants recorded for the root token `root`, at any depth. */
  descendantsOf(root: string): number
  get(jti: string): TokenEntry | undefined
  /** Newest first; of one app when `appId` is given. */
  list(appId?: string): TokenEntry[]
  markRevoked(jti: string, actor: string): Promise<void>
}

/**
 * Open `tokens.json` of a data dir. Expired entries older than a day are dropped on open.
 *
 * @example
 * const tokens = await openTokenIndex(dataDir)
 * await tokens.add({ jti, appId, digest, grants, limits, iat, exp, grantedBy: 'key:…' })
 */
export async function openTokenIndex(
  dataDir: string,
  options: { redis?: RedisConnection } = {},
): Promise<TokenIndex> {
  const empty = () => ({ version: 1 as const, tokens: [] as TokenEntry[] })
  const doc = options.redis
    ? await openRedisDoc(options.redis, {
        name: 'tokens',
        field: 'tokens',
        idOf: (t: TokenEntry) => t.jti,
        itemSchema: tokenEntrySchema,
        empty,
        order: (a, b) => a.iat - b.iat,
        // As the file's: entries expired for more than a day go (on every host's start).
        prune: (t) => t.exp <= Math.floor(Date.now() / 1000) - 86_400,
      })
    : await openJsonFile(join(dataDir, 'tokens.json'), fileSchema, empty, 'the token index')
  const dayAgo = Math.floor(Date.now() / 1000) - 86_400
  doc.data.tokens = doc.data.tokens.filter((t) => t.exp > dayAgo)
  const find = (jti: string) => doc.data.tokens.find((t) => t.jti === jti)
  return {
    async add(entry) {
      doc.data.tokens.push(structuredClone(entry))
      await doc.save()
    },
    descendantsOf(root) {
      const now = Math.floor(Date.now() / 1000)
      return doc.data.tokens.filter(
        (t) => t.root === root && t.jti !== root && !t.revokedAt && t.exp > now,
      ).length
    },
    childrenOf(parent) {
      const now = Math.floor(Date.now() / 1000)
      return doc.data.tokens.filter((t) => t.parent === parent && !t.revokedAt && t.exp > now)
        .length
    },
    get(jti) {
      const entry = find(jti)
      return entry && structuredClone(entry)
    },
    list(appId) {
      return doc.data.tokens
        .filter((t) => appId === undefined || t.appId === appId)
        .reverse()
        .map((t) => structuredClone(t))
    },
    async markRevoked(jti, actor) {
      const entry = find(jti)
      if (entry && entry.revokedAt === undefined) {
        entry.revokedAt = new Date().toISOString()
        entry.revokedBy = actor
        await doc.save()
      }
    },
  }
}
