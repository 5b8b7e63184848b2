/**
 * One host's link to the shared Redis of a deployment (`WARDEN_REDIS_URL`, keys under
 * `WARDEN_REDIS_PREFIX`): a command connection and a subscriber connection (ioredis).
 *
 * Fail closed, recover alone: commands never wait in an offline queue (a command sent while
 * Redis is away rejects at once, and the stores turn that into `store_unavailable`), while the
 * connections retry forever in the background. When the subscriber is back, every listener of
 * {@link RedisConnection.onReconnect} reloads what it caches, since messages published while it
 * was away are lost (Redis pub/sub keeps nothing).
 *
 * {@link RedisConnection.sync} is a barrier: a PING on the subscriber connection answers only
 * after every message published before it was delivered to this host, so a request that
 * awaits it sees every change another host acknowledged before the request began.
 */
import { Redis } from 'ioredis'
import type { RedisOptions } from 'ioredis'
import { WardenError } from '../errors.js'

/** Options of {@link openRedisConnection}. */
export interface RedisConnectionOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. */
  url: string
  /** Every key and channel starts with it. Default `warden:`. */
  prefix?: string
  /** Give up the first connection after this many ms. Default 3000. */
  connectTimeoutMs?: number
  /** A command that gets no answer fails after this many ms. Default 2000. */
  commandTimeoutMs?: number
}

/** A message of the deployment's change channel: a store, and what changed in it. */
export interface ChangeMessage {
  /** The store: `revocations`, `apps`, `disabled`, `keys`, `api-keys`, `tokens`, `secrets`… */
  store: string
  /** The store's own payload (an id, a record); JSON. */
  data: unknown
}

/** The link to Redis. */
export interface RedisConnection {
  /** The command connection. */
  readonly client: Redis
  readonly prefix: string
  /** `prefix + name`. */
  key(name: string): string
  /** The change channel's name (publish with `client.publish(channel, JSON)` inside a MULTI). */
  readonly channel: string
  /** True while both connections are ready (caches may be trusted). */
  healthy(): boolean
  /** Listen to the changes of one store. Returns a function that stops listening. */
  onChange(store: string, listener: (data: unknown) => void): () => void
  /** Called each time the subscriber is ready again after a loss: reload caches. */
  onReconnect(listener: () => void): () => void
  /** Publish a change (outside a transaction). */
  publish(store: string, data: unknown): Promise<void>
  /** The barrier (see the module comment). Rejects with `store_unavailable`. */
  sync(): Promise<void>
  close(): Promise<void>
}

/** Wrap a Redis failure as `store_unavailable`; a WardenError passes through. */
export function storeUnavailable(what: string, cause: unknown): WardenError {
  if (cause instanceof WardenError) {
    return cause
  }
  return new WardenError('store_unavailable', `${what}: the shared store (Redis) is unavailable`, {
    cause,
  })
}

/** A key prefix: printable ASCII without spaces, 1 to 64 characters. */
const PREFIX = /^[!-~]{1,64}$/

/**
 * Connect to Redis. Rejects with `store_unavailable` (a clear message naming the host, never the
 * password) when Redis cannot be reached within the timeout.
 *
 * @example
 * const redis = await openRedisConnection({ url: 'redis://127.0.0.1:6379', prefix: 'warden:' })
 */
export async function openRedisConnection(
  options: RedisConnectionOptions,
): Promise<RedisConnection> {
  const prefix = options.prefix ?? 'warden:'
  if (!PREFIX.test(prefix)) {
    throw new TypeError('WARDEN_REDIS_PREFIX must be 1 to 64 printable ASCII characters')
  }
  let where: string
  try {
    const url = new URL(options.url)
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new TypeError('not redis')
    }
    where = `${url.hostname}:${url.port || '6379'}`
  } catch {
    throw new TypeError('WARDEN_REDIS_URL must be a redis:// or rediss:// URL')
  }
  const common: RedisOptions = {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 3000,
    // Fail closed: never queue a command while Redis is away, never retry one silently.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Reconnect forever, at most a second apart.
    retryStrategy: (times) => Math.min(50 * times, 1000),
  }
  const client = new Redis(options.url, {
    ...common,
    commandTimeout: options.commandTimeoutMs ?? 2000,
  })
  // The subscriber may queue its (re)subscription while reconnecting.
  const subscriber = new Redis(options.url, { ...common, enableOfflineQueue: true })
  // Errors surface through commands; an unhandled 'error' event would crash the host.
  client.on('error', () => undefined)
  subscriber.on('error', () => undefined)
  try {
    await Promise.all([client.connect(), subscriber.connect()])
  } catch (error) {
    client.disconnect()
    subscriber.disconnect()
    throw new WardenError('store_unavailable', `Redis at ${where} is unreachable`, {
      cause: error,
    })
  }
  const channel = `${prefix}changes`
  const listeners = new Map<string, Set<(data: unknown) => void>>()
  const reconnectListeners = new Set<() => void>()
  subscriber.on('message', (from: string, text: string) => {
    if (from !== channel) {
      return
    }
    let message: ChangeMessage
    try {
      message = JSON.parse(text) as ChangeMessage
    } catch {
      return
    }
    for (const listener of listeners.get(message.store) ?? []) {
      try {
        listener(message.data)
      } catch {
        // a listener's failure is its own
      }
    }
  })
  await subscriber.subscribe(channel)
  let lost = false
  // Set when the barrier's PING failed although the sockets look open (a silent partition):
  // caches are not trusted again until a PING or a reconnect succeeds.
  let suspect = false
  subscriber.on('close', () => {
    lost = true
  })
  client.on('close', () => {
    lost = true
  })
  const checkBack = () => {
    if (lost && client.status === 'ready' && subscriber.status === 'ready') {
      lost = false
      suspect = false
      for (const listener of reconnectListeners) {
        try {
          listener()
        } catch {
          // a listener's failure is its own
        }
      }
    }
  }
  // ioredis resubscribes before 'ready' (autoResubscribe), so nothing is missed after this.
  subscriber.on('ready', checkBack)
  client.on('ready', checkBack)
  let closed = false

  return {
    client,
    prefix,
    channel,
    key: (name) => `${prefix}${name}`,
    healthy: () =>
      !closed && !lost && !suspect && client.status === 'ready' && subscriber.status === 'ready',
    onChange(store, listener) {
      let set = listeners.get(store)
      if (!set) {
        set = new Set()
        listeners.set(store, set)
      }
      set.add(listener)
      return () => set.delete(listener)
    },
    onReconnect(listener) {
      reconnectListeners.add(listener)
      return () => reconnectListeners.delete(listener)
    },
    async publish(store, data) {
      try {
        await client.publish(channel, JSON.stringify({ store, data }))
      } catch (error) {
        throw storeUnavailable('a change could not be announced', error)
      }
    },
    async sync() {
      if (subscriber.status !== 'ready' || lost) {
        suspect = true
        throw storeUnavailable('the change channel is down', undefined)
      }
      try {
        const answer = subscriber.ping()
        const timeout = new Promise<never>((_, reject) => {
          const timer = setTimeout(
            () => reject(new Error('PING timed out')),
            options.commandTimeoutMs ?? 2000,
          )
          timer.unref()
          void answer.finally(() => clearTimeout(timer)).catch(() => undefined)
        })
        await Promise.race([answer, timeout])
        suspect = false
      } catch (error) {
        suspect = true
        throw storeUnavailable('the change channel is down', error)
      }
    },
    async close() {
      if (closed) {
        return
      }
      closed = true
      await Promise.all([
        client.quit().catch(() => client.disconnect()),
        subscriber.quit().catch(() => subscriber.disconnect()),
      ])
    },
  }
}
