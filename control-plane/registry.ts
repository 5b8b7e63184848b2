/**
 * The app registry: every uploaded micro-app with its owner, purpose, versions, risk tier,
 * approval and status, and the component bytes, content-addressed under the data dir
 * (`blobs/sha256/<hex>.wasm`).
 *
 * Rules (docs/control-plane.md):
 * - a name (a DNS label) belongs to one app; uploading the same bytes under it again changes
 *   nothing; other bytes are a new **version** and become current;
 * - a `low` version is approved on upload; every `medium` or `high` one is `pending` until an
 *   admin approves it by its digest (for `high`, an admin who is not its uploader nor a key the
 *   uploader made);
 * - status: `decommissioned` (final), else `disabled` (kill switch), else the current version's
 *   `approved` or `pending`.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import {
  AGENT_APP_NAME,
  deepFreeze,
  storeUnavailable,
  WardenError,
  writeFileAtomic,
} from '../runtime/index.js'
import type { RedisConnection } from '../runtime/index.js'
import { openJsonFile } from './json-file.js'
import type { JsonFile } from './json-file.js'
import { openRedisDoc } from './redis-doc.js'
import { RISK_TIERS } from './risk.js'
import type { RiskAssessment, RiskTier } from './risk.js'

/** Where an app stands. */
export type AppStatus = 'pending' | 'approved' | 'disabled' | 'decommissioned'

/** The statuses, for filters. */
export const APP_STATUSES: readonly AppStatus[] = [
  'pending',
  'approved',
  'disabled',
  'decommissioned',
]

/** An app name: a DNS label, never the shape of an app id (`app-` and 16 hex digits). */
export const APP_NAME = /^(?!app-[0-9a-f]{16}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

/** Free text of a registration: no control, line-moving or bidi characters; 1..`max` chars. */
const registrationText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(
      /^[^\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]+$/,
      'no control, line-moving or bidi characters',
    )

/** An app's owner, as an upload and a manifest give it. */
export const APP_OWNER = registrationText(200)
/** An app's purpose, as an upload and a manifest give it. */
export const APP_PURPOSE = registrationText(1000)

const DIGEST = /^sha256:[0-9a-f]{64}$/
const APP_ID = /^app-[0-9a-f]{16}$/

const versionSchema = z.strictObject({
  digest: z.string().regex(DIGEST),
  sizeBytes: z.int().nonnegative(),
  kind: z.enum(['action', 'micro-app']),
  world: z.string(),
  imports: z.array(z.string()),
  exports: z.array(z.string()),
  riskTier: z.enum(RISK_TIERS as [RiskTier, ...RiskTier[]]),
  riskReasons: z.array(z.string()),
  uploadedAt: z.string(),
  uploadedBy: z.string(),
  approvedAt: z.string().optional(),
  approvedBy: z.string().optional(),
  /**
   * A built-in app's build key (the hash of its build inputs, `runtime/agent/build.ts`): hosts
   * and reinstalls with the same key run this version's bytes instead of their own build.
   */
  buildKey: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
})

const appSchema = z.strictObject({
  id: z.string().regex(APP_ID),
  name: z.string().regex(APP_NAME),
  owner: z.string(),
  purpose: z.string(),
  reviewBy: z.string().optional(),
  /** Who registered it first: only they (or an admin) add versions. */
  publisher: z.string(),
  versions: z.array(versionSchema).min(1),
  createdAt: z.string(),
  updatedAt: z.string(),
  lastRunAt: z.string().optional(),
  disabledAt: z.string().optional(),
  disabledBy: z.string().optional(),
  decommissionedAt: z.string().optional(),
  decommissionedBy: z.string().optional(),
})

const fileSchema = z.strictObject({ version: z.literal(1), apps: z.array(appSchema) })

/** One build of an app. */
export type AppVersion = z.output<typeof versionSchema>
type StoredApp = z.output<typeof appSchema>

/** An app as the API shows it: the stored facts, its status and its current version's facts. */
export interface AppRecord extends StoredApp {
  status: AppStatus
  digest: string
  kind: AppVersion['kind']
  world: string
  imports: string[]
  exports: string[]
  riskTier: RiskTier
  riskReasons: string[]
}

/** What an upload registers. */
export interface Registration {
  name: string
  owner: string
  purpose: string
  reviewBy?: string
  /** Who uploads: `key:<id>`. */
  actor: string
  /** Whether the actor is an admin (may add versions to anyone's app). */
  actorIsAdmin: boolean
  digest: string
  sizeBytes: number
  kind: AppVersion['kind']
  imports: readonly string[]
  exports: readonly string[]
  risk: RiskAssessment
}

/** Names only Warden's built-in apps take (the JS sandbox); uploads under them are refused. */
export const RESERVED_NAMES: readonly string[] = [AGENT_APP_NAME]

/** Who registers Warden's built-in apps (the `js` agent sandbox): no key, no person. */
export const BUILTIN_PUBLISHER = 'builtin'

/**
 * Bytes of uploads one publisher may keep (`openAppRegistry`'s `publisherQuotaBytes`,
 * `WARDEN_PUBLISHER_QUOTA_MB`): 2 GiB, over every version of its apps that are not
 * decommissioned. Without it one key kept ~75 GB an hour of 50 MiB versions that differed in
 * a custom section (thirteenth outside attack).
 */
export const DEFAULT_PUBLISHER_QUOTA_BYTES = 2 * 1024 * 1024 * 1024

/** What a built-in app registers: its build's facts; owner, purpose and approval are Warden's. */
export type BuiltinRegistration = Omit<
  Registration,
  'owner' | 'purpose' | 'actor' | 'actorIsAdmin' | 'reviewBy'
> & { buildKey?: string }

/** What an upload did. */
export type RegistrationOutcome = 'created' | 'new-version' | 'unchanged'

/** Filters of {@link AppRegistry.list}. */
export interface AppFilter {
  status?: AppStatus
  tier?: RiskTier
  owner?: string
}

/** The registry. */
export interface AppRegistry {
  /** By id (`app-…`) or name. Deeply frozen, as every record the registry returns. */
  get(idOrName: string): AppRecord | undefined
  list(filter?: AppFilter): AppRecord[]
  register(registration: Registration): Promise<{ record: AppRecord; outcome: RegistrationOutcome }>
  /**
   * Throws `limit_exceeded` when keeping `sizeBytes` more for `publisher` (a build not among
   * its apps' versions yet) would pass its quota; `register` checks the same.
   */
  checkQuota(publisher: string, digest: string, sizeBytes: number): void
  /**
   * Register (or move to a new build) one of Warden's built-in apps: published by
   * {@link BUILTIN_PUBLISHER}, each build approved by it, so its digest changes only when the
   * built-in component does. `conflict` when the name belongs to an uploaded app, or to a
   * decommissioned built-in (an admin's decision stands).
   */
  registerBuiltin(
    registration: BuiltinRegistration,
  ): Promise<{ record: AppRecord; outcome: RegistrationOutcome }>
  /**
   * Approve the current version, named by its `digest` (`conflict` when another build became
   * current). `forbidden` for a `high` version when `isPublisher(uploadedBy)`: the approver is
   * its publisher as far as keys tell (the same key, or one made from the other).
   */
  approve(
    id: string,
    actor: string,
    review: { digest: string | undefined; isPublisher: (uploadedBy: string) => boolean },
  ): Promise<AppRecord>
  setDisabled(id: string, disabled: boolean, actor: string): Promise<AppRecord>
  decommission(id: string, actor: string): Promise<AppRecord>
  /**
   * Note a run (kept in memory, written with the next change or on {@link AppRegistry.flush};
   * in Redis mode also sent, not awaited, to the shared `<prefix>apps:last-run`).
   */
  touchRun(id: string): void
  /**
   * Redis mode: take the other hosts' `lastRunAt` (one read of `<prefix>apps:last-run`), so that
   * the app routes answer the deployment's last run. Nothing to do on files.
   */
  syncRuns(): Promise<void>
  /** The bytes of a stored build. */
  readBlob(digest: string): Promise<Uint8Array>
  /** Store the bytes of a build under its digest (idempotent). */
  putBlob(digest: string, bytes: Uint8Array): Promise<void>
  /** Write what {@link AppRegistry.touchRun} noted. */
  flush(): Promise<void>
}

function current(app: StoredApp): AppVersion {
  return app.versions[app.versions.length - 1]!
}

function statusOf(app: StoredApp): AppStatus {
  if (app.decommissionedAt) {
    return 'decommissioned'
  }
  if (app.disabledAt) {
    return 'disabled'
  }
  return current(app).approvedAt ? 'approved' : 'pending'
}

/** A copy of `app` as the API shows it, deeply frozen: nothing it is handed to changes the registry. */
function snapshot(app: StoredApp): AppRecord {
  const v = current(app)
  const record: AppRecord = structuredClone({
    ...app,
    status: statusOf(app),
    digest: v.digest,
    kind: v.kind,
    world: v.world,
    imports: v.imports,
    exports: v.exports,
    riskTier: v.riskTier,
    riskReasons: v.riskReasons,
  })
  return deepFreeze(record)
}

/** A new, unapproved version of a build, uploaded by `actor` at `now`. */
function versionOf(r: BuiltinRegistration, actor: string, now: string): AppVersion {
  return {
    digest: r.digest,
    sizeBytes: r.sizeBytes,
    kind: r.kind,
    world: `warden:platform/${r.kind}`,
    imports: [...r.imports],
    exports: [...r.exports],
    riskTier: r.risk.tier,
    riskReasons: [...r.risk.reasons],
    uploadedAt: now,
    uploadedBy: actor,
    ...(r.buildKey ? { buildKey: r.buildKey } : {}),
  }
}

function notFound(): WardenError {
  return new WardenError('not_found', 'no such app')
}

/**
 * Open the registry of a data dir: `registry.json` and `blobs/`.
 *
 * @example
 * const registry = await openAppRegistry(dataDir)
 * const { record } = await registry.register({ name: 'hello', owner: 'it', purpose: 'demo', … })
 */
export async function openAppRegistry(
  dataDir: string,
  options: { redis?: RedisConnection; publisherQuotaBytes?: number } = {},
): Promise<AppRegistry> {
  const { redis } = options
  const quota = options.publisherQuotaBytes ?? DEFAULT_PUBLISHER_QUOTA_BYTES
  const empty = () => ({ version: 1 as const, apps: [] as StoredApp[] })
  const doc: JsonFile<z.output<typeof fileSchema>> = redis
    ? await openRedisDoc(redis, {
        name: 'apps',
        field: 'apps',
        idOf: (app: StoredApp) => app.id,
        itemSchema: appSchema,
        empty,
        order: (a, b) => a.createdAt.localeCompare(b.createdAt),
        // When an app last ran is shared apart (`apps:last-run`): not worth a change per run.
        volatile: ['lastRunAt'],
        uniqueOf: (app) => app.name,
      })
    : await openJsonFile(join(dataDir, 'registry.json'), fileSchema, empty, 'the app registry')
  // Snapshots by stored app: a read (each run looks its app up) is a map lookup, not a deep
  // copy. Every change here goes through `save`, which drops them all; a copy from Redis is a
  // new object, so it has none. A run only moves `lastRunAt` (`ranAt`), and swaps the one
  // snapshot.
  const checkQuota = (publisher: string, digest: string, sizeBytes: number) => {
    let kept = 0
    for (const app of doc.data.apps) {
      if (app.publisher !== publisher || app.decommissionedAt) {
        continue
      }
      for (const v of app.versions) {
        if (v.digest === digest) {
          return // kept already: a new name or version of the same bytes costs nothing more
        }
        kept += v.sizeBytes
      }
    }
    if (kept + sizeBytes > quota) {
      throw new WardenError(
        'limit_exceeded',
        `the publisher's uploads would pass its quota of ${Math.floor(quota / 1024 / 1024)} MiB: an admin may decommission apps it no longer needs`,
      )
    }
  }
  let views = new WeakMap<StoredApp, AppRecord>()
  const view = (app: StoredApp): AppRecord => {
    let record = views.get(app)
    if (!record) {
      record = snapshot(app)
      views.set(app, record)
    }
    return record
  }
  /** `app` last ran `at` (a run here, or another host's in Redis mode). */
  const ranAt = (app: StoredApp, at: string) => {
    app.lastRunAt = at
    const before = views.get(app)
    if (before) {
      views.set(app, Object.freeze({ ...before, lastRunAt: at }))
    }
  }
  const blobs = join(dataDir, 'blobs', 'sha256')
  const blobStore = redis ? redisBlobs(redis) : undefined
  const lastRuns = redis ? redisLastRuns(redis) : undefined
  let dirty = false

  const find = (idOrName: string) =>
    doc.data.apps.find((a) => a.id === idOrName || a.name === idOrName)
  const live = (id: string) => {
    const app = find(id)
    if (!app) {
      throw notFound()
    }
    if (app.decommissionedAt) {
      throw new WardenError('not_found', 'the app is decommissioned')
    }
    return app
  }
  /** Write the registry; when that fails, undo the change in memory too (fail closed). */
  const save = async (undo?: () => void) => {
    // Synchronously after the change in memory, before anyone can read a stale snapshot.
    views = new WeakMap()
    dirty = false
    try {
      await doc.save()
    } catch (error) {
      undo?.()
      views = new WeakMap()
      throw error
    }
  }
  const blobPath = (digest: string) => {
    if (!DIGEST.test(digest)) {
      throw new WardenError('invalid_request', 'not a sha256 digest')
    }
    return join(blobs, `${digest.slice('sha256:'.length)}.wasm`)
  }

  /** Register a new app with its first version. */
  const create = async (
    fields: Pick<StoredApp, 'name' | 'owner' | 'purpose' | 'reviewBy' | 'publisher'>,
    version: AppVersion,
  ): Promise<{ record: AppRecord; outcome: RegistrationOutcome }> => {
    const app: StoredApp = {
      id: `app-${randomBytes(8).toString('hex')}`,
      ...fields,
      versions: [version],
      createdAt: version.uploadedAt,
      updatedAt: version.uploadedAt,
    }
    doc.data.apps.push(app)
    // By identity: in Redis mode another host's app may have been added after it.
    await save(() => doc.data.apps.splice(doc.data.apps.indexOf(app), 1))
    return { record: view(app), outcome: 'created' }
  }

  return {
    get(idOrName) {
      const app = find(idOrName)
      return app ? view(app) : undefined
    },
    list(filter = {}) {
      return doc.data.apps
        .map(view)
        .filter(
          (a) =>
            (filter.status === undefined || a.status === filter.status) &&
            (filter.tier === undefined || a.riskTier === filter.tier) &&
            (filter.owner === undefined || a.owner === filter.owner),
        )
    },
    checkQuota,
    async register(r) {
      const now = new Date().toISOString()
      const version = versionOf(r, r.actor, now)
      if (RESERVED_NAMES.includes(r.name)) {
        throw new WardenError(
          'conflict',
          `the name ${r.name} is reserved for a built-in app of Warden`,
        )
      }
      const existing = doc.data.apps.find((a) => a.name === r.name)
      if (!existing) {
        checkQuota(r.actor, r.digest, r.sizeBytes)
        if (version.riskTier === 'low') {
          version.approvedAt = now
          version.approvedBy = 'policy:low-risk'
        }
        return create(
          {
            name: r.name,
            owner: r.owner,
            purpose: r.purpose,
            ...(r.reviewBy ? { reviewBy: r.reviewBy } : {}),
            publisher: r.actor,
          },
          version,
        )
      }
      if (existing.decommissionedAt) {
        throw new WardenError('conflict', `the name ${r.name} belongs to a decommissioned app`)
      }
      if (existing.publisher === BUILTIN_PUBLISHER) {
        throw new WardenError('conflict', `the name ${r.name} belongs to a built-in app of Warden`)
      }
      if (existing.owner !== r.owner || (existing.publisher !== r.actor && !r.actorIsAdmin)) {
        throw new WardenError(
          'conflict',
          `the name ${r.name} is taken: only its publisher or an admin adds versions, for the same owner`,
        )
      }
      if (existing.versions.some((v) => v.digest === r.digest)) {
        return { record: view(existing), outcome: 'unchanged' }
      }
      checkQuota(existing.publisher, r.digest, r.sizeBytes)
      // Only a low-risk build is approved without review: an admin approves every medium or
      // high build by its digest, so no build runs that nobody looked at.
      if (version.riskTier === 'low') {
        version.approvedAt = now
        version.approvedBy = 'policy:low-risk'
      }
      const before = {
        purpose: existing.purpose,
        reviewBy: existing.reviewBy,
        updatedAt: existing.updatedAt,
      }
      existing.versions.push(version)
      existing.purpose = r.purpose
      if (r.reviewBy) {
        existing.reviewBy = r.reviewBy
      }
      existing.updatedAt = now
      await save(() => {
        existing.versions.pop()
        Object.assign(existing, before)
        if (before.reviewBy === undefined) {
          delete existing.reviewBy
        }
      })
      return { record: view(existing), outcome: 'new-version' }
    },
    async registerBuiltin(r) {
      const existing = doc.data.apps.find((a) => a.name === r.name)
      if (existing && (existing.publisher !== BUILTIN_PUBLISHER || existing.decommissionedAt)) {
        throw new WardenError(
          'conflict',
          `the name ${r.name} belongs to ${existing.decommissionedAt ? 'a decommissioned' : 'an uploaded'} app`,
        )
      }
      if (existing?.versions.some((v) => v.digest === r.digest)) {
        return { record: view(existing), outcome: 'unchanged' }
      }
      const now = new Date().toISOString()
      const version: AppVersion = {
        ...versionOf(r, BUILTIN_PUBLISHER, now),
        approvedAt: now,
        approvedBy: BUILTIN_PUBLISHER,
      }
      if (existing) {
        existing.versions.push(version)
        existing.updatedAt = now
        await save(() => existing.versions.pop())
        return { record: view(existing), outcome: 'new-version' }
      }
      return create(
        {
          name: r.name,
          owner: 'warden',
          purpose: 'Built-in: runs agents\' JS source (POST /v1/runs with "source")',
          publisher: BUILTIN_PUBLISHER,
        },
        version,
      )
    },
    async approve(id, actor, { digest, isPublisher }) {
      const app = live(id)
      const v = current(app)
      if (v.approvedAt) {
        return view(app)
      }
      if (digest !== v.digest) {
        throw new WardenError(
          digest === undefined ? 'invalid_request' : 'conflict',
          digest === undefined
            ? 'name the build you reviewed: ?digest=sha256:…'
            : 'the current build is not the one you reviewed: review it again',
        )
      }
      if (v.riskTier === 'high' && isPublisher(v.uploadedBy)) {
        throw new WardenError(
          'forbidden',
          'a high-risk build needs an admin other than its publisher, and not one made by or for it',
        )
      }
      v.approvedAt = new Date().toISOString()
      v.approvedBy = actor
      app.updatedAt = v.approvedAt
      await save(() => {
        delete v.approvedAt
        delete v.approvedBy
      })
      return view(app)
    },
    async setDisabled(id, disabled, actor) {
      const app = live(id)
      const now = new Date().toISOString()
      if (disabled) {
        app.disabledAt = now
        app.disabledBy = actor
      } else {
        delete app.disabledAt
        delete app.disabledBy
      }
      app.updatedAt = now
      await save()
      return view(app)
    },
    async decommission(id, actor) {
      const app = live(id)
      const now = new Date().toISOString()
      app.decommissionedAt = now
      app.decommissionedBy = actor
      app.updatedAt = now
      await save()
      return view(app)
    },
    touchRun(id) {
      const app = find(id)
      if (app) {
        ranAt(app, new Date().toISOString())
        dirty = true
        lastRuns?.note(id, app.lastRunAt!)
      }
    },
    async syncRuns() {
      if (!lastRuns) {
        return
      }
      for (const [id, at] of await lastRuns.read()) {
        const app = find(id)
        if (app && (app.lastRunAt === undefined || app.lastRunAt < at)) {
          ranAt(app, at)
        }
      }
    },
    async readBlob(digest) {
      if (blobStore) {
        return blobStore.read(digest)
      }
      try {
        return new Uint8Array(await readFile(blobPath(digest)))
      } catch (error) {
        throw new WardenError('internal', 'a stored build is missing', { cause: error })
      }
    },
    async putBlob(digest, bytes) {
      if (blobStore) {
        return blobStore.put(digest, bytes)
      }
      const path = blobPath(digest)
      const there = await stat(path).catch(() => undefined)
      if (there?.size === bytes.byteLength) {
        return
      }
      await mkdir(blobs, { recursive: true, mode: 0o700 })
      await writeFileAtomic(path, bytes)
    },
    async flush() {
      if (dirty) {
        await save()
      }
    },
  }
}

/**
 * Redis mode's blobs: `<prefix>blob:<digest>`, written once (`SET NX`). A blob read back is
 * hashed again: bytes that are not their digest are refused, whoever changed them.
 */
// KEYS[1] the hash; ARGV[1] app id, ARGV[2] ISO time: kept only when later (ISO sorts as time).
const SET_IF_LATER = `
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') < ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 0
`

/** Each host writes an app's `lastRunAt` at most once per this many ms. */
const LAST_RUN_EVERY_MS = 1000

/**
 * When each app last ran on any host: one hash, written without waiting, at most once a second
 * per app and host (so other hosts see it to within a second; this host's own is exact).
 */
function redisLastRuns(redis: RedisConnection) {
  const hash = redis.key('apps:last-run')
  const sent = new Map<string, number>()
  return {
    note(id: string, at: string): void {
      const now = Date.now()
      if (now - (sent.get(id) ?? 0) < LAST_RUN_EVERY_MS) {
        return
      }
      if (sent.size >= 10_000) {
        sent.clear()
      }
      sent.set(id, now)
      // Best effort: a lost write only makes `lastRunAt` older, never a run refused.
      redis.client.eval(SET_IF_LATER, 1, hash, id, at).catch(() => undefined)
    },
    async read(): Promise<[string, string][]> {
      try {
        return Object.entries(await redis.client.hgetall(hash))
      } catch (error) {
        throw storeUnavailable('when the apps last ran cannot be read', error)
      }
    },
  }
}

function redisBlobs(redis: RedisConnection) {
  const keyOf = (digest: string) => {
    if (!DIGEST.test(digest)) {
      throw new WardenError('invalid_request', 'not a sha256 digest')
    }
    return redis.key(`blob:${digest}`)
  }
  return {
    async read(digest: string): Promise<Uint8Array> {
      const key = keyOf(digest)
      let bytes: Buffer | null
      try {
        bytes = await redis.client.getBuffer(key)
      } catch (error) {
        throw storeUnavailable('a stored build cannot be read', error)
      }
      if (bytes === null) {
        throw new WardenError('internal', 'a stored build is missing')
      }
      if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== digest) {
        throw new WardenError('internal', 'a stored build does not match its digest')
      }
      return new Uint8Array(bytes)
    },
    async put(digest: string, bytes: Uint8Array): Promise<void> {
      const key = keyOf(digest)
      try {
        await redis.client.set(key, Buffer.from(bytes), 'NX')
      } catch (error) {
        throw storeUnavailable('a build cannot be stored', error)
      }
    },
  }
}
