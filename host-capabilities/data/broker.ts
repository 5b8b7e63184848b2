/**
 * The broker half of `warden:platform/data`: read-only reads within the run's granted
 * collections and key prefixes.
 *
 * Denied by default: with no `warden:platform/data` grant every read is `denied`. A key outside
 * the grant is `denied` before the store is touched, with the same answer whether it exists or
 * not. PII fields are masked unless the entry that grants the key says `pii: true`.
 *
 * Listing cursors are opaque to the guest: `base64url(JSON {c, p, k}) "." base64url(mac)`,
 * where `mac = HMAC-SHA256(cursorKey, JSON ["warden:data-cursor:v1", appId, payload])`. A cursor
 * is bound to the app, the collection and the canonical prefix it was issued for (`p/` and `p`
 * are one listing); anything else (edited, forged, truncated, another app's) is `invalid`. A
 * cursor only moves the start of a listing: the prefix always comes from the call and is
 * checked against the grant, and every returned key is re-checked by whole segments, so no
 * cursor can reach a key outside the grant.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { WardenError } from '../../core/errors.js'
import { HostCallError } from '../types.js'
import type { BrokerCapability, RunContext } from '../types.js'
import { dataDescriptor } from './descriptor.js'
import { allows, allowsPrefix, isCompiledDataGrant } from './grant.js'
import type { CompiledDataGrant } from './grant.js'
import {
  canonicalPrefix,
  checkKey,
  checkPrefix,
  isValidCollection,
  isValidKey,
  keyHasPrefix,
} from './keys.js'
import { maskPii } from './pii.js'
import type { DataReader } from './store.js'

/** The interface as jco keys it, and as `RunContext.grants` is keyed. */
export const DATA_INTERFACE = dataDescriptor.interface

/** Fewest and most entries per `listKeys` page; a `limit` outside is clamped. */
export const MIN_PAGE_ENTRIES = 1
export const MAX_PAGE_ENTRIES = 100

/**
 * A page stops early, with a cursor, once its values pass this many UTF-8 bytes (8 MiB), so a
 * page of large documents stays bounded. A page always holds at least one entry.
 */
export const MAX_PAGE_BYTES = 8 * 1024 * 1024

/** Longest cursor accepted, in characters. */
export const MAX_CURSOR_LENGTH = 4096

/** The HKDF purpose to derive the cursor key from the master key (`deriveSubkey`). */
export const CURSOR_KEY_PURPOSE = 'warden:data-cursor:v1'

const CURSOR_MAC_DOMAIN = 'warden:data-cursor:v1'
const BASE64URL = /^[A-Za-z0-9_-]+$/

/** Options of {@link createDataCapability}. */
export interface DataCapabilityOptions {
  /** Where documents are read; e.g. `createFileDataStore(dir)`. */
  store: DataReader
  /**
   * 32 bytes keying the listing cursors. Use the same key on every host that shares a store,
   * e.g. `deriveSubkey(masterKey, CURSOR_KEY_PURPOSE)`; a random key per process makes
   * cursors die with the process. Copied.
   */
  cursorKey: Uint8Array
}

/** The WIT `entry` record as jco represents it. */
export interface DataEntryRecord {
  key: string
  value: string
}

/** The WIT `page` record as jco represents it. */
export interface DataPageRecord {
  entries: DataEntryRecord[]
  nextCursor: string | undefined
}

function invalid(message: string): HostCallError {
  return new HostCallError('invalid', message)
}

function notGranted(collection: string): HostCallError {
  return new HostCallError(
    'denied',
    `this key of collection ${collection} is not granted (which may or may not exist)`,
  )
}

function arity(args: unknown[], n: number, fn: string): void {
  if (args.length !== n) {
    throw invalid(`${fn} takes ${n} arguments`)
  }
}

function parseCollection(value: unknown): string {
  if (!isValidCollection(value)) {
    throw invalid('collection is not a valid collection name')
  }
  return value
}

function isU32(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffff_ffff
}

function decodeBase64url(text: string): Buffer | undefined {
  if (!BASE64URL.test(text)) {
    return undefined
  }
  const bytes = Buffer.from(text, 'base64url')
  // Refuse non-canonical spellings, so one cursor has one form.
  return bytes.toString('base64url') === text ? bytes : undefined
}

/** The run's compiled grant: absent means nothing granted; malformed is host misuse. */
function grantOf(ctx: RunContext): CompiledDataGrant | undefined {
  const grant = ctx.grants[DATA_INTERFACE]
  if (grant === undefined) {
    return undefined
  }
  if (!isCompiledDataGrant(grant)) {
    throw new TypeError(`grants['${DATA_INTERFACE}'] is not a compiled data grant`)
  }
  return grant
}

/**
 * Create the data capability for the broker.
 *
 * - `get(collection, key)`: the document as JSON text, PII masked, or none.
 * - `listKeys(collection, prefix, cursor, limit)`: one page of documents under `prefix` (the key
 *   `prefix` and keys below it, by whole segments), which must be a granted prefix or a deeper
 *   whole-segment prefix of one; `limit` is clamped to 1..100.
 *
 * @example
 * const cursorKey = deriveSubkey(masterKey, CURSOR_KEY_PURPOSE)
 * const data = createDataCapability({ store, cursorKey })
 * const onHostCall = createBroker([secrets, data, http])
 */
export function createDataCapability(options: DataCapabilityOptions): BrokerCapability {
  const { store } = options
  if (typeof store?.get !== 'function' || typeof store.list !== 'function') {
    throw new TypeError('store must implement DataReader')
  }
  if (!(options.cursorKey instanceof Uint8Array) || options.cursorKey.byteLength !== 32) {
    throw new TypeError('cursorKey must be a Uint8Array of 32 bytes')
  }
  const cursorKey = Buffer.from(options.cursorKey)

  function macOf(appId: string, payload: string): Buffer {
    return createHmac('sha256', cursorKey)
      .update(JSON.stringify([CURSOR_MAC_DOMAIN, appId, payload]))
      .digest()
  }

  function issueCursor(appId: string, collection: string, prefix: string, after: string): string {
    const payload = Buffer.from(JSON.stringify({ c: collection, p: prefix, k: after })).toString(
      'base64url',
    )
    return `${payload}.${macOf(appId, payload).toString('base64url')}`
  }

  /** The key to resume after, or `invalid` for any cursor this app was not given here. */
  function verifyCursor(appId: string, collection: string, prefix: string, cursor: string): string {
    const bad = () => invalid('cursor is not valid for this listing')
    if (cursor.length > MAX_CURSOR_LENGTH) {
      throw bad()
    }
    const parts = cursor.split('.')
    if (parts.length !== 2) {
      throw bad()
    }
    const [payload, macText] = parts as [string, string]
    const mac = decodeBase64url(macText)
    if (mac?.byteLength !== 32 || !decodeBase64url(payload)) {
      throw bad()
    }
    if (!timingSafeEqual(mac, macOf(appId, payload))) {
      throw bad()
    }
    let body: unknown
    try {
      body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    } catch {
      throw bad()
    }
    const { c, p, k } = (body ?? {}) as Record<string, unknown>
    // Authentic, but it must also be for this very listing, and resume inside it.
    if (
      c !== collection ||
      typeof p !== 'string' ||
      canonicalPrefix(p) !== prefix ||
      !isValidKey(k) ||
      !keyHasPrefix(k, prefix)
    ) {
      throw bad()
    }
    return k
  }

  function render(value: unknown, piiFields: readonly string[] | undefined, showPii: boolean) {
    const masked = showPii || !piiFields?.length ? value : maskPii(value, piiFields)
    return JSON.stringify(masked)
  }

  async function get(args: unknown[], ctx: RunContext): Promise<string | undefined> {
    arity(args, 2, 'get')
    const collection = parseCollection(args[0])
    const key = args[1]
    const problem = checkKey(key)
    if (problem) {
      throw invalid(`key is not a valid data key (${problem})`)
    }
    const entry = allows(grantOf(ctx), collection, key as string)
    if (!entry) {
      throw notGranted(collection)
    }
    const value = await store.get(collection, key as string)
    if (value === undefined) {
      return undefined
    }
    const schema = entry.pii ? undefined : await store.getSchema(collection)
    return render(value, schema?.piiFields, entry.pii)
  }

  async function listKeys(args: unknown[], ctx: RunContext): Promise<DataPageRecord> {
    arity(args, 4, 'listKeys')
    const collection = parseCollection(args[0])
    const [, prefix, cursor, limit] = args
    const problem = checkPrefix(prefix)
    if (problem) {
      throw invalid(`prefix is not a valid key prefix (${problem})`)
    }
    if (cursor !== undefined && typeof cursor !== 'string') {
      throw invalid('cursor is not a string')
    }
    if (!isU32(limit)) {
      throw invalid('limit is not a u32')
    }
    const grant = grantOf(ctx)
    if (!allowsPrefix(grant, collection, prefix as string)) {
      throw notGranted(collection)
    }
    const p = canonicalPrefix(prefix as string)
    const after = cursor === undefined ? undefined : verifyCursor(ctx.appId, collection, p, cursor)
    const n = Math.min(Math.max(limit, MIN_PAGE_ENTRIES), MAX_PAGE_ENTRIES)
    const rows = await store.list(collection, p, after, n + 1)
    const schema = await store.getSchema(collection)
    const entries: DataEntryRecord[] = []
    let bytes = 0
    let last = after
    for (const row of rows.slice(0, n)) {
      const key = row?.key
      const entry = typeof key === 'string' ? allows(grant, collection, key) : undefined
      // NB: re-checked although the store was asked for exactly this range: a store bug (or a
      // corrupt Redis) must not widen the grant.
      if (!entry || !keyHasPrefix(key, p) || (last !== undefined && !(key > last))) {
        throw new WardenError('internal', 'the data store returned a key outside the listing')
      }
      const value = render(row.value, schema?.piiFields, entry.pii)
      entries.push({ key, value })
      last = key
      bytes += Buffer.byteLength(key) + Buffer.byteLength(value)
      if (bytes >= MAX_PAGE_BYTES) {
        break
      }
    }
    const more = rows.length > entries.length && last !== undefined && entries.length > 0
    return {
      entries,
      nextCursor: more ? issueCursor(ctx.appId, collection, p, last as string) : undefined,
    }
  }

  return {
    descriptor: dataDescriptor,
    target(fn, args) {
      // `collection/key`, or `collection/prefix*` for a listing.
      const [collection, key] = args
      if (typeof collection !== 'string' || typeof key !== 'string') {
        return undefined
      }
      return `${collection.slice(0, 64)}/${key.slice(0, 512)}${fn === 'listKeys' ? '*' : ''}`
    },
    async handle(fn: string, args: unknown[], ctx: RunContext): Promise<unknown> {
      if (!Array.isArray(args)) {
        throw invalid('arguments are not a list')
      }
      switch (fn) {
        case 'get':
          return get(args, ctx)
        case 'listKeys':
          return listKeys(args, ctx)
        default:
          throw invalid('unknown function')
      }
    },
  }
}
