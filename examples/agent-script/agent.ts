/**
 * An agent's sub-task, the least-privilege way: from the token it holds (granted by an admin
 * for the built-in app `js`), derive a child token with only what the sub-task needs (one
 * host, one secret, less fuel, a short life), and run the code it just wrote under the child.
 * Whatever that code does, it cannot reach past the child's grant; revoking the parent (or
 * letting it expire) ends the child too.
 */
import type { RunResult, WardenClient } from '../../sdk/client/index.js'

/** What one sub-task may use, and the code it runs. */
export interface SubTask {
  /** The one origin the code may call: `https://api.example.com` or `http://127.0.0.1:8080`. */
  origin: string
  /** Requests must stay under this path (end it with `/`). Default `/`. */
  pathPrefix?: string
  /** The one secret it may send, in `Authorization: Bearer {{secret:NAME}}` to `origin`. */
  secret?: string
  /** Fuel for the run: lower than the parent's. */
  fuel: number
  /** JS: the body of an async function of `(warden, input)`. */
  source: string
  input?: unknown
}

/** The child token's grants for `task`: one http entry, at most one secret, and log. */
export function subTaskGrants(task: SubTask) {
  const url = new URL(task.origin)
  const scheme = url.protocol === 'http:' ? ('http' as const) : ('https' as const)
  return {
    http: [
      {
        scheme,
        host: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        methods: ['GET' as const, 'POST' as const],
        pathPrefix: task.pathPrefix ?? '/',
        // A loopback or private origin must be said to be one (never by default).
        ...(['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)
          ? { allowPrivate: true }
          : {}),
      },
    ],
    ...(task.secret ? { secrets: [{ name: task.secret, hosts: [url.origin] }] } : {}),
    log: true,
  }
}

/**
 * Attenuate `parentToken` for `task` (5 minutes at most) and run its code under the child.
 *
 * @example
 * const { output } = await runSubTask(client, parentToken, {
 *   origin: 'https://api.github.com', pathPrefix: '/repos/', secret: 'github_token', fuel: 1e8,
 *   source: `const r = await warden.fetch(input.url, { headers: { authorization: 'Bearer {{secret:github_token}}' } })
 *            return (await r.json()).map((l) => l.name)`,
 *   input: { url: 'https://api.github.com/repos/o/r/labels' },
 * })
 */
export async function runSubTask(
  client: WardenClient,
  parentToken: string,
  task: SubTask,
): Promise<RunResult & { childJti: string }> {
  const child = await client.attenuateToken(
    { grants: subTaskGrants(task), limits: { fuel: task.fuel }, ttlSeconds: 300 },
    parentToken,
  )
  const result = await client.runJs(task.source, task.input, child.token)
  return { ...result, childJti: child.jti }
}
