/**
 * `warden.json`, the app manifest: who answers for the app, what it is for, which platform
 * capabilities it imports and, for `warden dev`, `warden/testing` and the token command that
 * `warden deploy` prints, what it is granted (hosts, secrets, data). One strict zod schema: an
 * unknown field is an error, never ignored. The reference is docs/manifest.md.
 *
 * The capabilities are the app's declared imports: `warden build` generates a WIT world that
 * imports exactly these, so the risk tier is the lowest the app can have. The grants say what
 * a token for it should allow; each grant needs its capability listed (a grant for a
 * capability the app does not import would be dead weight in a token).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { APP_NAME, APP_OWNER, APP_PURPOSE } from '../../control-plane/index.js'
import {
  describeIssue,
  grantsSchema,
  limitsRequestSchema,
  SECRET_NAME_PATTERN,
  WardenError,
} from '../../runtime/index.js'
import type { GrantsInput, LimitsRequest } from '../../runtime/index.js'

/** The platform capabilities an app may import, as the manifest names them. */
export const CAPABILITY_NAMES = ['http', 'secrets', 'data', 'log'] as const

/** One platform capability. */
export type CapabilityName = (typeof CAPABILITY_NAMES)[number]

/** The WIT interface of a capability, unversioned (`warden:platform/http`). */
export const capabilityInterface = (name: CapabilityName) => `warden:platform/${name}`

/** The version of `warden:platform` apps are built against. */
export const PLATFORM_VERSION = '0.1.0'

/** The manifest's file name in an app folder. */
export const MANIFEST_FILE = 'warden.json'

/** A path inside the app folder: relative, no `..`, no backslash. */
const relativePath = z
  .string()
  .min(1)
  .max(200)
  .regex(/^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$))[A-Za-z0-9._/-]+$/, 'a relative path inside the app')

const httpGrant = z.union([
  z.string().min(1).max(2048),
  z.strictObject({
    url: z.string().min(1).max(2048),
    methods: z
      .array(z.string().regex(/^[A-Za-z]+$/))
      .min(1)
      .optional(),
    allowPrivate: z.boolean().optional(),
  }),
])

const secretGrant = z.union([
  z.string().min(3).max(300),
  z.strictObject({
    name: z.string().regex(SECRET_NAME_PATTERN, 'a secret name: a-z, 0-9 and _, at most 64'),
    hosts: z.array(z.string().min(1).max(300)).optional(),
    header: z.string().min(1).max(100).optional(),
    prefix: z.string().max(64).optional(),
    reveal: z.boolean().optional(),
  }),
])

const dataGrant = z.union([
  z.string().min(3).max(600),
  z.strictObject({
    collection: z.string().min(1).max(64),
    prefix: z.string().max(512),
    pii: z.boolean().optional(),
    wholeCollection: z.boolean().optional(),
  }),
])

/** The manifest schema: `warden.json`. */
export const manifestSchema = z
  .strictObject({
    $schema: z.string().optional(),
    /** The app's name in the registry: a DNS label. */
    name: z.string().regex(APP_NAME, 'a DNS label: a-z, 0-9 and -, at most 63'),
    /** `action`: JSON in, JSON out, run once. `micro-app`: serves HTTP requests. */
    kind: z.enum(['action', 'micro-app']),
    /** Who answers for the app (sent at deploy). */
    owner: APP_OWNER,
    /** What it is for (sent at deploy; approvers read it). */
    purpose: APP_PURPOSE,
    /** The TypeScript entry module. */
    entry: relativePath.default('src/index.ts'),
    /** The platform capabilities the app imports: nothing else is declared. */
    capabilities: z
      .array(z.enum(CAPABILITY_NAMES))
      .refine((list) => new Set(list).size === list.length, 'a capability is listed twice')
      .default([]),
    /** What a token for the app should grant (dev, tests, and the deploy's token command). */
    grants: z
      .strictObject({
        http: z.array(httpGrant).max(64).default([]),
        secrets: z.array(secretGrant).max(64).default([]),
        data: z.array(dataGrant).max(64).default([]),
      })
      .default({ http: [], secrets: [], data: [] }),
    /** Local development: where secrets and data come from, and the run limits. */
    dev: z
      .strictObject({
        secretsFile: relativePath.default('warden.secrets.json'),
        fixtures: relativePath.default('fixtures'),
        limits: limitsRequestSchema.optional(),
        port: z.int().min(0).max(65535).default(8787),
      })
      .default({ secretsFile: 'warden.secrets.json', fixtures: 'fixtures', port: 8787 }),
  })
  .superRefine((m, ctx) => {
    const needs: [keyof typeof m.grants, CapabilityName][] = [
      ['http', 'http'],
      ['secrets', 'secrets'],
      ['data', 'data'],
    ]
    for (const [field, capability] of needs) {
      if (m.grants[field].length > 0 && !m.capabilities.includes(capability)) {
        ctx.addIssue({
          code: 'custom',
          path: ['grants', field],
          message: `grants ${field} but "${capability}" is not in capabilities`,
        })
      }
    }
  })

/** A parsed manifest, defaults filled in. */
export type Manifest = z.output<typeof manifestSchema>

/** A manifest as written (fields with defaults may be left out). */
export type ManifestInput = z.input<typeof manifestSchema>

/**
 * Parse a manifest's JSON value: `invalid_request` naming the first bad field
 * (`warden.json: grants.http: grants http but "http" is not in capabilities`).
 *
 * @example
 * parseManifest({ name: 'hello', kind: 'action', owner: 'me', purpose: 'greets' })
 */
export function parseManifest(value: unknown): Manifest {
  const parsed = manifestSchema.safeParse(value)
  if (!parsed.success) {
    throw new WardenError('invalid_request', describeIssue(parsed.error, MANIFEST_FILE))
  }
  const manifest = parsed.data
  // The grants must be valid token grants too: checked now, not at deploy.
  manifestGrants(manifest)
  return manifest
}

/** Read and parse `<dir>/warden.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  let text: string
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8')
  } catch (error) {
    throw new WardenError(
      'invalid_request',
      `no ${MANIFEST_FILE} in ${dir} (create an app with: warden init <dir>)`,
      { cause: error },
    )
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new WardenError('invalid_request', `${MANIFEST_FILE} is not valid JSON`, {
      cause: error,
    })
  }
  return parseManifest(value)
}

/**
 * The token `grants` the manifest asks for: `log` when listed, and its http, secrets and data
 * entries in the token's own shape, checked against the token grants schema.
 *
 * @example
 * manifestGrants(m) // { log: true, http: [{ scheme: 'https', host: 'api.github.com', pathPrefix: '/repos/', methods: ['GET'] }] }
 */
export function manifestGrants(manifest: Manifest): GrantsInput {
  const grants: Record<string, unknown> = {}
  if (manifest.capabilities.includes('log')) {
    grants.log = true
  }
  if (manifest.grants.http.length > 0) {
    grants.http = manifest.grants.http.map((entry, i) => httpEntry(entry, i))
  }
  if (manifest.grants.secrets.length > 0) {
    grants.secrets = manifest.grants.secrets.map((entry, i) =>
      typeof entry === 'string' ? secretEntry(entry, i) : entry,
    )
  }
  if (manifest.grants.data.length > 0) {
    grants.data = manifest.grants.data.map((entry, i) =>
      typeof entry === 'string' ? dataEntry(entry, i) : entry,
    )
  }
  const parsed = grantsSchema.safeParse(grants)
  if (!parsed.success) {
    throw new WardenError('invalid_request', describeIssue(parsed.error, `${MANIFEST_FILE} grants`))
  }
  return grants as GrantsInput
}

/** The limits of dev and test runs. */
export function manifestLimits(manifest: Manifest): LimitsRequest {
  return manifest.dev.limits ?? {}
}

const invalid = (message: string) => new WardenError('invalid_request', message)

function httpEntry(entry: z.output<typeof httpGrant>, i: number): Record<string, unknown> {
  const {
    url: raw,
    methods,
    allowPrivate,
  } = typeof entry === 'string'
    ? { url: entry, methods: undefined, allowPrivate: undefined }
    : entry
  const where = `${MANIFEST_FILE}: grants.http[${i}]`
  let url: URL
  try {
    url = new URL(raw)
  } catch (error) {
    throw new WardenError('invalid_request', `${where}: not a URL (https://host[:port]/path)`, {
      cause: error,
    })
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalid(`${where}: the URL must be https:// or http://`)
  }
  if (url.username || url.password || url.search || url.hash || /[?#]/.test(raw)) {
    throw invalid(`${where}: no credentials, query or fragment: the path is a prefix`)
  }
  return {
    scheme: url.protocol === 'https:' ? 'https' : 'http',
    host: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    pathPrefix: url.pathname,
    ...(methods ? { methods: methods.map((m) => m.toUpperCase()) } : {}),
    ...(allowPrivate === undefined ? {} : { allowPrivate }),
  }
}

function secretEntry(value: string, i: number): { name: string; hosts?: string[] } {
  const at = value.indexOf('@')
  if (at === -1) {
    return { name: value }
  }
  if (at === 0 || at === value.length - 1) {
    throw invalid(`${MANIFEST_FILE}: grants.secrets[${i}]: write name or name@host`)
  }
  return { name: value.slice(0, at), hosts: [value.slice(at + 1)] }
}

function dataEntry(value: string, i: number): { collection: string; prefix: string } {
  const colon = value.indexOf(':')
  if (colon <= 0 || colon === value.length - 1) {
    throw invalid(`${MANIFEST_FILE}: grants.data[${i}]: write collection:prefix, e.g. crm:contacts`)
  }
  return { collection: value.slice(0, colon), prefix: value.slice(colon + 1) }
}

/**
 * The manifest's grants with some origins replaced (`https://api.github.com` →
 * `http://127.0.0.1:4123`), for dev and tests against loopback upstreams: every http entry and
 * secret host of a mapped origin moves to the new origin; entries moved to a loopback or
 * private address get `allowPrivate`. Origins are compared as `URL.origin` does.
 *
 * @example
 * remapGrants(grants, { 'https://api.github.com': 'http://127.0.0.1:4123' })
 */
export function remapGrants(
  grants: GrantsInput,
  origins: Readonly<Record<string, string>>,
): GrantsInput {
  const map = new Map<string, URL>()
  for (const [from, to] of Object.entries(origins)) {
    map.set(new URL(from).origin, new URL(to))
  }
  if (map.size === 0) {
    return grants
  }
  const originOf = (scheme: string, host: string, port?: number) =>
    new URL(`${scheme}://${host.includes(':') ? `[${host}]` : host}${port ? `:${port}` : ''}`)
      .origin
  const out: Record<string, unknown> = { ...grants }
  const http = (grants as { http?: Record<string, unknown>[] }).http
  if (http) {
    out.http = http.map((entry) => {
      const to = map.get(
        originOf(
          (entry.scheme as string | undefined) ?? 'https',
          entry.host as string,
          entry.port as number | undefined,
        ),
      )
      if (!to) {
        return entry
      }
      return {
        ...entry,
        scheme: to.protocol.slice(0, -1),
        host: to.hostname.replace(/^\[|\]$/g, ''),
        port: Number(to.port || (to.protocol === 'https:' ? 443 : 80)),
        allowPrivate: true,
      }
    })
  }
  const secrets = (grants as { secrets?: { hosts?: string[] }[] }).secrets
  if (secrets) {
    out.secrets = secrets.map((entry) =>
      entry.hosts
        ? {
            ...entry,
            hosts: entry.hosts.map((h) => {
              const origin = /^[a-z]+:\/\//.test(h) ? new URL(h).origin : `https://${h}`
              return map.get(new URL(origin).origin)?.origin ?? h
            }),
          }
        : entry,
    )
  }
  return out as GrantsInput
}

/** The interfaces the manifest declares, unversioned, sorted as listed. */
export function declaredInterfaces(manifest: Manifest): string[] {
  return manifest.capabilities.map(capabilityInterface)
}
