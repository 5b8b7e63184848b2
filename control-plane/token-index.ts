/**
 * What the control plane granted: one entry per minted token (root or attenuated), never the
 * token string. It answers `GET /v1/tokens` and `GET /v1/apps/:id`, and lets decommissioning
 * revoke every token of an app. Revocation itself is the runtime's revocation list; this index
 * only remembers that it happened.
 */
import { z } from 'zod'
import { WardenError } from '../runtime/index.js'
import type { RedisConnection } from '../runtime/index.js'
import { openRedisDoc } from './redis-doc.js'
import { openTokenLog, readTokenLog } from './token-file.js'

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

/** The entries a data dir's token index holds on disk (a read: for tests and tools). */
export function readTokenEntries(dataDir: string): Promise<TokenEntry[]> {
  return readTokenLog(dataDir, tokenEntrySchema, (t) => t.jti)
}

/** Expired entries are listed for up to this long after their `exp`, then dropped. */
export const KEEP_EXPIRED_SECONDS = 86_400

/**
 * Expired attenuated entries kept per family (the newest); older ones are dropped at the next
 * write. Without it a holder attenuating with `ttlSeconds: 1` over and over frees a slot under
 * the live-children cap each second and grows the index for a day (the fifth outside attack).
 */
export const DEFAULT_MAX_EXPIRED_PER_FAMILY = 100

/** Most entries the index holds: past it, after expired ones went, no token is minted. */
export const DEFAULT_MAX_TOKEN_ENTRIES = 100_000

/** The index's bounds (defaults above); smaller in tests. */
export interface TokenIndexLimits {
  maxExpiredPerFamily?: number
  maxEntries?: number
}

/** The index. */
export interface TokenIndex {
  /**
   * Record a minted token; throws `limit_exceeded` when the index is full of live entries
   * (check {@link TokenIndex.ensureRoom} before minting).
   */
  add(entry: TokenEntry): Promise<void>
  /** Drop what expired past the bounds; throws `limit_exceeded` when no entry may be added. */
  ensureRoom(): void
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
 * Open `tokens.jsonl` of a data dir (`token-file.ts`; or, in Redis mode, the `tokens` hash). Expired entries are
 * dropped a day after their `exp`, on open and on every write; a family keeps its newest
 * {@link DEFAULT_MAX_EXPIRED_PER_FAMILY} expired attenuated entries only; the whole index at
 * most {@link DEFAULT_MAX_TOKEN_ENTRIES} entries (expired ones go first, then minting is
 * refused with `limit_exceeded`).
 *
 * @example
 * const tokens = await openTokenIndex(dataDir)
 * tokens.ensureRoom()
 * await tokens.add({ jti, appId, digest, grants, limits, iat, exp, grantedBy: 'key:…' })
 */
export async function openTokenIndex(
  dataDir: string,
  options: { redis?: RedisConnection; limits?: TokenIndexLimits } = {},
): Promise<TokenIndex> {
  const maxExpiredPerFamily = options.limits?.maxExpiredPerFamily ?? DEFAULT_MAX_EXPIRED_PER_FAMILY
  const maxEntries = options.limits?.maxEntries ?? DEFAULT_MAX_TOKEN_ENTRIES
  const empty = () => ({ version: 1 as const, tokens: [] as TokenEntry[] })
  const nowSeconds = () => Math.floor(Date.now() / 1000)
  const doc = options.redis
    ? await openRedisDoc(options.redis, {
        name: 'tokens',
        field: 'tokens',
        idOf: (t: TokenEntry) => t.jti,
        itemSchema: tokenEntrySchema,
        empty,
        order: (a, b) => a.iat - b.iat,
        // As the file's: entries expired for more than a day go (on every host's start).
        prune: (t) => t.exp <= nowSeconds() - KEEP_EXPIRED_SECONDS,
      })
    : await openTokenLog(dataDir, tokenEntrySchema, (t) => t.jti, fileSchema)
  /** Keep the entries `keep` says, in order, in place (the Redis doc holds on to the array). */
  const retain = (keep: (t: TokenEntry, i: number) => boolean) => {
    const tokens = doc.data.tokens
    let to = 0
    for (let i = 0; i < tokens.length; i++) {
      if (keep(tokens[i]!, i)) {
        tokens[to++] = tokens[i]!
      }
    }
    tokens.length = to
  }
  /** Drop what expired past the bounds, in memory: the next save writes it (or deletes it). */
  const prune = () => {
    const now = nowSeconds()
    const dropBefore = now - KEEP_EXPIRED_SECONDS
    const tokens = doc.data.tokens
    // Newest first, so each family keeps its newest expired children.
    const drop = new Set<number>()
    const expiredOf = new Map<string, number>()
    for (let i = tokens.length - 1; i >= 0; i--) {
      const t = tokens[i]!
      if (t.exp <= dropBefore) {
        drop.add(i)
      } else if (t.exp <= now && t.parent !== undefined) {
        const family = t.root ?? t.parent
        const n = (expiredOf.get(family) ?? 0) + 1
        expiredOf.set(family, n)
        if (n > maxExpiredPerFamily) {
          drop.add(i)
        }
      }
    }
    // Still full: the oldest expired or revoked entries go first (a revoked token can never be
    // used again: "revoke some" must make room).
    let over = tokens.length - drop.size - (maxEntries - 1)
    for (let i = 0; i < tokens.length && over > 0; i++) {
      if (!drop.has(i) && (tokens[i]!.exp <= now || tokens[i]!.revokedAt)) {
        drop.add(i)
        over--
      }
    }
    if (drop.size > 0) {
      retain((_, i) => !drop.has(i))
    }
  }
  const ensureRoom = () => {
    prune()
    if (doc.data.tokens.length >= maxEntries) {
      throw new WardenError(
        'limit_exceeded',
        `the token index holds ${maxEntries} unexpired tokens: revoke some, or let them expire`,
      )
    }
  }
  prune()
  const find = (jti: string) => doc.data.tokens.find((t) => t.jti === jti)
  return {
    async add(entry) {
      ensureRoom()
      doc.data.tokens.push(structuredClone(entry))
      await doc.save([entry.jti])
    },
    ensureRoom,
    descendantsOf(root) {
      const now = nowSeconds()
      return doc.data.tokens.filter(
        (t) => t.root === root && t.jti !== root && !t.revokedAt && t.exp > now,
      ).length
    },
    childrenOf(parent) {
      const now = nowSeconds()
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
        await doc.save([jti])
      }
    },
  }
}
