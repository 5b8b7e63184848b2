/**
 * Route bindings of HTTP micro-apps: which app serves `/apps/<name>/`, and with which capability
 * token. One binding per app, keyed by the app's name (names are unique and never change).
 *
 * The binding holds the token string: a route runs with no caller token, so the server must
 * hold one. It is a credential for that app's build only, never shown by the API (answers name
 * its `jti`), kept in `<dataDir>/routes.json` (mode 0600) beside the signing keys that could mint
 * any token. The interface is async and narrow so that the Redis mode can implement it.
 */
import { join } from 'node:path'
import { z } from 'zod'
import {
  deriveSubkey,
  openSecret,
  sealSecret,
  storeUnavailable,
  throwOnFailure,
  WardenError,
} from '../runtime/index.js'
import type { RedisConnection } from '../runtime/index.js'
import { openJsonFile } from './json-file.js'

/** One binding as stored. */
export const routeBindingSchema = z.strictObject({
  /** The app's name: the route is `/apps/<name>/`. */
  name: z.string(),
  appId: z.string(),
  /** The bound token: a bearer credential, never shown, never logged. */
  token: z.string(),
  jti: z.string(),
  /** The token's `exp`, seconds since the epoch. */
  exp: z.int(),
  boundAt: z.string(),
  boundBy: z.string(),
})
const fileSchema = z.strictObject({ version: z.literal(1), routes: z.array(routeBindingSchema) })

/** One binding. */
export type RouteBinding = z.output<typeof routeBindingSchema>

/** A binding as the API shows it: everything but the token. */
export type RouteView = Omit<RouteBinding, 'token'>

/** The bindings. */
export interface RouteStore {
  /** The binding of the route `name`, or undefined. */
  get(name: string): Promise<RouteBinding | undefined>
  /** Bind (or rebind) the route of `binding.name`. */
  put(binding: RouteBinding): Promise<void>
  /** Unbind; the binding that was there, or undefined. */
  delete(name: string): Promise<RouteBinding | undefined>
}

/** The binding without its token. */
export function routeView({ token: _token, ...view }: RouteBinding): RouteView {
  return view
}

/**
 * Open `routes.json` of a data dir.
 *
 * @example
 * const routes = await openRouteStore(dataDir)
 * await routes.put({ name: 'hello', appId, token, jti, exp, boundAt, boundBy })
 */
export async function openRouteStore(dataDir: string): Promise<RouteStore> {
  const doc = await openJsonFile(
    join(dataDir, 'routes.json'),
    fileSchema,
    () => ({ version: 1 as const, routes: [] }),
    'the route bindings',
  )
  const byName = new Map(doc.data.routes.map((r) => [r.name, r]))
  const save = async (undo?: () => void) => {
    doc.data.routes = [...byName.values()]
    try {
      await doc.save()
    } catch (error) {
      undo?.()
      doc.data.routes = [...byName.values()]
      throw error
    }
  }
  return {
    async get(name) {
      const found = byName.get(name)
      return found && { ...found }
    },
    async put(binding) {
      const before = byName.get(binding.name)
      byName.set(binding.name, { ...binding })
      await save(() => (before ? byName.set(binding.name, before) : byName.delete(binding.name)))
    },
    async delete(name) {
      const before = byName.get(name)
      if (!before) {
        return undefined
      }
      // Fail closed both ways: a binding that could not be written is not served, and one
      // whose removal could not be written is not served either (the caller sees the error).
      byName.delete(name)
      await save()
      return { ...before }
    },
  }
}

const sealedBindingSchema = routeBindingSchema.omit({ token: true }).extend({ sealed: z.string() })

/**
 * Redis mode's bindings: the hash `<prefix>routes`, name → the binding with its token sealed
 * (AES-256-GCM under a subkey of the deployment's master key, the route name as additional
 * data), so that Redis never holds a usable token. Read on every request, never cached: a
 * binding removed on one host is not served by another.
 *
 * @example
 * const routes = openRedisRouteStore(redis, masterKey)
 */
export function openRedisRouteStore(redis: RedisConnection, masterKey: Uint8Array): RouteStore {
  const hash = redis.key('routes')
  const key = deriveSubkey(masterKey, 'warden redis route tokens')
  const guard = async <T>(task: () => Promise<T>): Promise<T> => {
    try {
      return await task()
    } catch (error) {
      throw storeUnavailable('the route bindings cannot be reached', error)
    }
  }
  const unseal = (name: string, text: string | null): RouteBinding | undefined => {
    if (text === null) {
      return undefined
    }
    let parsed: z.output<typeof sealedBindingSchema>
    try {
      parsed = sealedBindingSchema.parse(JSON.parse(text))
    } catch (error) {
      throw new WardenError('internal', 'a route binding is corrupt', { cause: error })
    }
    const { sealed, ...rest } = parsed
    if (rest.name !== name) {
      throw new WardenError('internal', 'a route binding is corrupt')
    }
    return { ...rest, token: openSecret(key, `route:${name}`, sealed) }
  }
  return {
    async get(name) {
      return unseal(name, await guard(() => redis.client.hget(hash, name)))
    },
    async put(binding) {
      const { token, ...rest } = binding
      const sealed = sealSecret(key, `route:${binding.name}`, token, binding.boundAt)
      await guard(() => redis.client.hset(hash, binding.name, JSON.stringify({ ...rest, sealed })))
    },
    async delete(name) {
      const [before] = await guard(async () =>
        throwOnFailure(await redis.client.multi().hget(hash, name).hdel(hash, name).exec()),
      )
      return unseal(name, (before as string | null) ?? null)
    },
  }
}
