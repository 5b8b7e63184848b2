/**
 * What `warden deploy` prints after the upload: the command that grants exactly the manifest's
 * grants, `warden token grant` for an action, `warden apps route` for a micro-app. The readable
 * flags (`--http`, `--method`, `--secret`, `--data`, `--log`) when they can say it, else
 * `--grants '<json>'`.
 */
import type { GrantsInput } from '../../runtime/index.js'

interface HttpEntry {
  scheme?: string
  host: string
  port?: number
  pathPrefix?: string
  methods?: string[]
  allowPrivate?: boolean
}

interface SecretEntry {
  name: string
  hosts?: string[]
  header?: string
  prefix?: string
  reveal?: boolean
}

interface DataEntry {
  collection: string
  prefix: string
  pii?: boolean
  wholeCollection?: boolean
}

/** `value` quoted for a POSIX shell when it needs it. */
function shell(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`
}

/**
 * The `warden token grant` command for `grants` on the app `name`.
 *
 * @example
 * grantCommand('issue-triage', { log: true, http: [{ host: 'api.github.com', pathPrefix: '/repos/' }] })
 * // "warden token grant issue-triage --log --http https://api.github.com/repos/ --ttl 1h"
 */
export function grantCommand(name: string, grants: GrantsInput): string {
  return ['warden', 'token', 'grant', shell(name), ...grantFlags(grants), '--ttl', '1h'].join(' ')
}

/**
 * The `warden apps route` command that serves the micro-app `name` under a token minted with
 * `grants` (a day's lifetime: bind again before it ends).
 *
 * @example
 * routeCommand('crm-lookup', { log: true, data: [{ collection: 'crm', prefix: 'contacts/' }] })
 * // "warden apps route crm-lookup --log --data crm:contacts/ --ttl 1d"
 */
export function routeCommand(name: string, grants: GrantsInput): string {
  return ['warden', 'apps', 'route', shell(name), ...grantFlags(grants), '--ttl', '1d'].join(' ')
}

/** The grant flags that say `grants`: readable flags when they can, else `--grants '<json>'`. */
function grantFlags(grants: GrantsInput): string[] {
  const g = grants as {
    log?: boolean
    http?: HttpEntry[]
    secrets?: SecretEntry[]
    data?: DataEntry[]
  }
  const http = g.http ?? []
  const methods = new Set(http.map((e) => (e.methods ?? []).join(',')))
  const flagsCanSay =
    http.every((e) => !e.allowPrivate) &&
    methods.size <= 1 &&
    (g.secrets ?? []).every(
      (s) => s.hosts?.length === 1 && s.header === undefined && s.prefix === undefined && !s.reveal,
    ) &&
    (g.data ?? []).every((d) => !d.pii && !d.wholeCollection)
  const parts: string[] = []
  if (!flagsCanSay) {
    return ['--grants', shell(JSON.stringify(grants))]
  }
  if (g.log) {
    parts.push('--log')
  }
  for (const e of http) {
    const scheme = e.scheme ?? 'https'
    const port = e.port === undefined ? '' : `:${e.port}`
    parts.push('--http', shell(`${scheme}://${e.host}${port}${e.pathPrefix ?? '/'}`))
  }
  const [list] = [...methods]
  for (const m of list ? list.split(',') : []) {
    parts.push('--method', m)
  }
  for (const s of g.secrets ?? []) {
    parts.push('--secret', shell(`${s.name}@${s.hosts![0]}`))
  }
  for (const d of g.data ?? []) {
    parts.push('--data', shell(`${d.collection}:${d.prefix}`))
  }
  // Nothing to grant still needs saying: a token command refuses to guess.
  return parts.length === 0 ? ['--grants', "'{}'"] : parts
}
