/**
 * The claims of a capability token, as strict zod schemas: an unknown field anywhere is
 * refused, never ignored. Parsing also normalises: every defaulted field is written out, so a
 * minted token says exactly what it grants and two grants compare field by field.
 */
import { z } from 'zod'
// The http capability's own rules: a secret's header is one a guest could send.
import { FORBIDDEN_REQUEST_HEADERS, HTTP_TOKEN } from '../../host-capabilities/http/grant.js'
import { DEFAULT_LIMITS } from '../limits/limits.js'
import { hostPatternKind } from './host.js'

/** `iss` and `aud` of every capability token. */
export const TOKEN_ISSUER = 'warden'

/** `aud` of every capability token. */
export const TOKEN_AUDIENCE = 'warden'

/** The JWS `typ` header of every capability token. */
export const TOKEN_TYPE = 'warden-cap+jwt'

/** Longest attenuation chain: a token may have at most this many ancestors. */
export const MAX_CHAIN_LENGTH = 16

/** Most entries in one grant list (`http`, `secrets`, `data`). */
export const MAX_GRANT_ENTRIES = 64

/** HTTP methods a grant may name. */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

/** One HTTP method a grant may name. */
export type HttpMethod = (typeof HTTP_METHODS)[number]

/** Methods of an http grant entry that names none: read-only. */
export const DEFAULT_HTTP_METHODS: readonly HttpMethod[] = Object.freeze(['GET', 'HEAD'])

/** Port of an http grant entry that names none, by scheme. */
export const DEFAULT_PORTS: Readonly<Record<'http' | 'https', number>> = Object.freeze({
  https: 443,
  http: 80,
})

const JTI = /^[A-Za-z0-9_-]{8,128}$/
const APP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const DIGEST = /^sha256:[0-9a-f]{64}$/
// The same names as `host-capabilities/secrets/names.ts` and `host-capabilities/data/keys.ts`.
const SECRET_NAME = /^[a-z][a-z0-9_]{0,63}$/
const COLLECTION = /^[a-z][a-z0-9_-]{0,63}$/
// Printable ASCII but space, `?`, `#` and `\`; escapes and segments are checked separately.
const PATH_PREFIX = /^\/[\x21-\x22\x24-\x3e\x40-\x5b\x5d-\x7e]*$/
const ESCAPE = /%([0-9A-F]{2})/g
// Unreserved characters are written as themselves; separators, dots and `%` never encoded.
const NEVER_ENCODED = /^[A-Za-z0-9\-._~/\\%]$/
const CONTROL = /[\x00-\x1f\x7f]/
const MAX_DATA_PREFIX_BYTES = 512

/** A token id: 8–128 characters of `[A-Za-z0-9_-]` (minted ids are UUIDs). */
export const jtiSchema = z.string().regex(JTI, 'not a token id')

/** An app id: 1–128 characters of `[A-Za-z0-9._-]`, starting with a letter or digit. */
export const appIdSchema = z.string().regex(APP_ID, 'not an app id')

/** A component digest: `sha256:` and 64 lowercase hex digits. */
export const digestSchema = z.string().regex(DIGEST, 'not a sha256 digest (sha256:<64 hex>)')

/** A host pattern: see {@link hostPatternKind}. */
export const hostPatternSchema = z
  .string()
  .refine((host) => hostPatternKind(host) !== undefined, 'not a canonical host pattern')

function unique(values: readonly unknown[]): boolean {
  return new Set(values).size === values.length
}

/**
 * A canonical path prefix: starts with `/`; no query, fragment, space or `\\`; escapes are
 * `%XX` in upper case, never of an unreserved character, a separator, a dot, `%` or a control
 * character; no `.` or `..` segment (also not before a `;`). So a string prefix of a prefix is
 * a prefix of its decoded form, and the http capability's decoded comparison agrees.
 */
function isPathPrefix(prefix: string): boolean {
  if (prefix.length > 2048 || !PATH_PREFIX.test(prefix)) {
    return false
  }
  const withoutEscapes = prefix.replace(ESCAPE, '')
  if (withoutEscapes.includes('%')) {
    return false
  }
  for (const [, hex] of prefix.matchAll(ESCAPE)) {
    const byte = Number.parseInt(hex!, 16)
    if (byte < 0x20 || byte === 0x7f || NEVER_ENCODED.test(String.fromCharCode(byte))) {
      return false
    }
  }
  try {
    decodeURIComponent(prefix)
  } catch {
    return false
  }
  return !prefix.split('/').some((segment) => {
    const bare = segment.split(';', 1)[0]
    return bare === '.' || bare === '..'
  })
}

/**
 * A data key prefix, as `host-capabilities/data/keys.ts` reads keys: at most 512 UTF-8 bytes,
 * NFC, no control characters, no `*` (prefixes are whole segments, never patterns), no leading
 * `/`, no empty, `.` or `..` segment (a trailing `/` is fine). The empty prefix is valid here;
 * the entry decides whether it may be used.
 */
function isDataPrefix(prefix: string): boolean {
  if (prefix === '') {
    return true
  }
  if (
    !prefix.isWellFormed() ||
    Buffer.byteLength(prefix, 'utf8') > MAX_DATA_PREFIX_BYTES ||
    CONTROL.test(prefix) ||
    prefix.normalize('NFC') !== prefix ||
    prefix.startsWith('/') ||
    prefix.includes('*')
  ) {
    return false
  }
  const segments = prefix.split('/')
  if (segments.length > 1 && segments[segments.length - 1] === '') {
    segments.pop()
  }
  return segments.every((segment) => segment !== '' && segment !== '.' && segment !== '..')
}

/**
 * Where a secret may be sent: an origin `https://host[:port]` or `http://host[:port]`, or a bare
 * exact host or bracketed IP literal meaning `https://host:443`. A bare `host:port` is refused:
 * `[::1]:8080` and `::1` read both ways. Hosts are canonical, as for http grants; the http
 * capability normalises and matches the exact origin (scheme, host, port).
 */
function isSecretHost(host: string): boolean {
  const origin = /^(https?):\/\/(\[[^\]]+\]|[^/:?#@\\[\]]+)(?::([1-9][0-9]{0,4}))?$/.exec(host)
  if (origin?.[3] !== undefined && Number(origin[3]) > 65535) {
    return false
  }
  const kind = hostPatternKind(origin ? origin[2]! : host)
  return kind === 'exact' || kind === 'ip'
}

/**
 * One http grant entry. Defaults: `scheme` `'https'` (`'http'` only when written), `port` the
 * scheme's (443 or 80), `methods` `['GET', 'HEAD']` (read-only; write the others out),
 * `pathPrefix` `'/'` (a plain string prefix: end it with `/` to stop at a segment boundary).
 * `allowPrivate: true` lets the entry reach private and loopback addresses; `false` is dropped.
 *
 * @example
 * httpGrantEntrySchema.parse({ host: 'api.github.com', pathPrefix: '/repos/' })
 * // { scheme: 'https', host: 'api.github.com', port: 443, methods: ['GET', 'HEAD'],
 * //   pathPrefix: '/repos/' }
 */
export const httpGrantEntrySchema = z
  .strictObject({
    scheme: z.enum(['https', 'http']).default('https'),
    host: hostPatternSchema,
    port: z.int().min(1).max(65535).optional(),
    methods: z
      .array(z.enum(HTTP_METHODS))
      .min(1)
      .refine(unique, 'methods repeat')
      .default(() => [...DEFAULT_HTTP_METHODS]),
    pathPrefix: z
      .string()
      .refine(
        isPathPrefix,
        'a path prefix starts with / and has no ?, #, \\, spaces or dot segments',
      )
      .default('/'),
    allowPrivate: z.boolean().optional(),
  })
  .transform((entry) => {
    const out: {
      scheme: 'https' | 'http'
      host: string
      port: number
      methods: HttpMethod[]
      pathPrefix: string
      allowPrivate?: true
    } = {
      scheme: entry.scheme,
      host: entry.host,
      port: entry.port ?? DEFAULT_PORTS[entry.scheme],
      methods: entry.methods,
      pathPrefix: entry.pathPrefix,
    }
    if (entry.allowPrivate === true) {
      out.allowPrivate = true
    }
    return out
  })

/**
 * One secrets grant entry: the secret `name` (`^[a-z][a-z0-9_]{0,63}$`), the `hosts` the http
 * capability may send it to (exact hosts or IPs with an optional `:port`, no wildcards;
 * compared as exact strings; default none), and whether the guest may `reveal` its plaintext
 * (default false). Several entries for one name add up.
 *
 * @example
 * secretGrantEntrySchema.parse({ name: 'github_token', hosts: ['api.github.com'] })
 */
export const secretGrantEntrySchema = z.strictObject({
  name: z.string().regex(SECRET_NAME, 'not a secret name'),
  hosts: z
    .array(z.string().refine(isSecretHost, 'not an origin or an exact host'))
    .max(MAX_GRANT_ENTRIES)
    .refine(unique, 'hosts repeat')
    .default(() => []),
  /** The one header the secret may be substituted into. Default `Authorization`. */
  header: z
    .string()
    .regex(HTTP_TOKEN, 'not a header name')
    .refine((h) => !FORBIDDEN_REQUEST_HEADERS.has(h.toLowerCase()), 'a header the host sets')
    .optional(),
  /** What precedes the placeholder in that header. Default `Bearer ` for Authorization, else ''. */
  prefix: z
    .string()
    .regex(/^[\x20-\x7a|~]{0,64}$/, 'printable ASCII without braces, at most 64 characters')
    .optional(),
  reveal: z.boolean().default(false),
})

/**
 * One data grant entry: keys of `collection` (`^[a-z][a-z0-9_-]{0,63}$`) starting with
 * `prefix` (a plain string prefix of canonical keys); `pii` (default false)
 * lets the app read records marked as personal data. The empty prefix (the whole collection)
 * must be spelled out with `wholeCollection: true`, and `wholeCollection: true` needs `''`.
 *
 * @example
 * dataGrantEntrySchema.parse({ collection: 'crm', prefix: 'contacts/' })
 * dataGrantEntrySchema.parse({ collection: 'crm', prefix: '', wholeCollection: true })
 */
export const dataGrantEntrySchema = z
  .strictObject({
    collection: z.string().regex(COLLECTION, 'not a collection name'),
    prefix: z.string().refine(isDataPrefix, 'not a canonical key prefix'),
    pii: z.boolean().default(false),
    wholeCollection: z.boolean().optional(),
  })
  .superRefine((entry, ctx) => {
    const whole = entry.wholeCollection === true
    if (entry.prefix === '' && !whole) {
      ctx.addIssue({
        code: 'custom',
        path: ['prefix'],
        message: 'an empty prefix grants the whole collection: write wholeCollection: true',
      })
    }
    if (entry.prefix !== '' && whole) {
      ctx.addIssue({
        code: 'custom',
        path: ['wholeCollection'],
        message: "wholeCollection: true needs prefix ''",
      })
    }
  })
  .transform((entry) => {
    const out: { collection: string; prefix: string; pii: boolean; wholeCollection?: true } = {
      collection: entry.collection,
      prefix: entry.prefix,
      pii: entry.pii,
    }
    if (entry.wholeCollection === true) {
      out.wholeCollection = true
    }
    return out
  })

/**
 * What a token grants. Every list defaults to empty and `log` to false: a field left out
 * grants nothing.
 *
 * @example
 * grantsSchema.parse({ log: true }) // { http: [], secrets: [], data: [], log: true }
 */
export const grantsSchema = z.strictObject({
  http: z
    .array(httpGrantEntrySchema)
    .max(MAX_GRANT_ENTRIES)
    .default(() => []),
  secrets: z
    .array(secretGrantEntrySchema)
    .max(MAX_GRANT_ENTRIES)
    .default(() => []),
  data: z
    .array(dataGrantEntrySchema)
    .max(MAX_GRANT_ENTRIES)
    .default(() => []),
  log: z.boolean().default(false),
})

const positiveInt = z.int().positive()

/**
 * Limits as a token carries them: every field of `Limits`, a positive safe integer, filled from
 * `DEFAULT_LIMITS` when left out (when attenuating, from the parent's instead).
 *
 * @example
 * tokenLimitsSchema.parse({ fuel: 1e6 }).memoryMb // 64
 */
export const tokenLimitsSchema = z.strictObject({
  fuel: positiveInt.default(DEFAULT_LIMITS.fuel),
  memoryMb: positiveInt.default(DEFAULT_LIMITS.memoryMb),
  timeoutMs: positiveInt.default(DEFAULT_LIMITS.timeoutMs),
  hostCalls: positiveInt.default(DEFAULT_LIMITS.hostCalls),
  egressBytes: positiveInt.default(DEFAULT_LIMITS.egressBytes),
  logLines: positiveInt.default(DEFAULT_LIMITS.logLines),
  logBytes: positiveInt.default(DEFAULT_LIMITS.logBytes),
})

/** Limits asked for when minting or attenuating: any subset of the fields, no defaults. */
export const limitsRequestSchema = z.strictObject({
  fuel: positiveInt.optional(),
  memoryMb: positiveInt.optional(),
  timeoutMs: positiveInt.optional(),
  hostCalls: positiveInt.optional(),
  egressBytes: positiveInt.optional(),
  logLines: positiveInt.optional(),
  logBytes: positiveInt.optional(),
})

const numericDate = z.int().nonnegative()

/**
 * The whole claims set. Besides the field rules: `sub` is `app:<app.id>`; `nbf` ≤ `exp` and
 * `iat` ≤ `exp`; a root token has no `parent` and an empty `chain`; an attenuated token's
 * `chain` lists every ancestor from the root to its `parent` (the last member), with no
 * repeats and not its own `jti`, at most {@link MAX_CHAIN_LENGTH} long.
 */
export const capabilityClaimsSchema = z
  .strictObject({
    iss: z.literal(TOKEN_ISSUER),
    aud: z.literal(TOKEN_AUDIENCE),
    sub: z.string(),
    jti: jtiSchema,
    iat: numericDate,
    nbf: numericDate,
    exp: numericDate,
    app: z.strictObject({ id: appIdSchema, digest: digestSchema }),
    grants: grantsSchema,
    limits: tokenLimitsSchema,
    parent: jtiSchema.optional(),
    chain: z
      .array(jtiSchema)
      .max(MAX_CHAIN_LENGTH)
      .default(() => []),
  })
  .superRefine((claims, ctx) => {
    if (claims.sub !== `app:${claims.app.id}`) {
      ctx.addIssue({ code: 'custom', path: ['sub'], message: 'sub must be app:<app.id>' })
    }
    if (claims.nbf > claims.exp || claims.iat > claims.exp) {
      ctx.addIssue({ code: 'custom', path: ['exp'], message: 'exp is before nbf or iat' })
    }
    const last = claims.chain[claims.chain.length - 1]
    if (claims.parent !== last) {
      ctx.addIssue({
        code: 'custom',
        path: ['chain'],
        message: 'chain must end with parent, and be empty without one',
      })
    }
    if (!unique(claims.chain) || claims.chain.includes(claims.jti)) {
      ctx.addIssue({ code: 'custom', path: ['chain'], message: 'chain repeats a token id' })
    }
  })

/** One http grant entry, normalised: see {@link httpGrantEntrySchema}. */
export type HttpGrantEntry = z.output<typeof httpGrantEntrySchema>
/** One http grant entry as written, with its defaults left out. */
export type HttpGrantEntryInput = z.input<typeof httpGrantEntrySchema>
/** One secrets grant entry, normalised: see {@link secretGrantEntrySchema}. */
export type SecretGrantEntry = z.output<typeof secretGrantEntrySchema>
/** One secrets grant entry as written. */
export type SecretGrantEntryInput = z.input<typeof secretGrantEntrySchema>
/** One data grant entry, normalised: see {@link dataGrantEntrySchema}. */
export type DataGrantEntry = z.output<typeof dataGrantEntrySchema>
/** One data grant entry as written. */
export type DataGrantEntryInput = z.input<typeof dataGrantEntrySchema>
/** What a token grants, normalised: see {@link grantsSchema}. */
export type Grants = z.output<typeof grantsSchema>
/** What a token grants, as written. */
export type GrantsInput = z.input<typeof grantsSchema>
/** Limits as a token carries them: every field set. */
export type TokenLimits = z.output<typeof tokenLimitsSchema>
/** Limits asked for: any subset of the fields. */
export type LimitsRequest = z.output<typeof limitsRequestSchema>
/** A verified token's claims: see {@link capabilityClaimsSchema}. */
export type CapabilityClaims = z.output<typeof capabilityClaimsSchema>

/**
 * The first issue of a failed parse as `path: message`, for an `invalid_request` message.
 * Only for input the caller wrote (a mint request), never for a token's contents.
 *
 * @example
 * describeIssue(grantsSchema.safeParse({ nope: 1 }).error!) // 'grants: Unrecognized key: "nope"'
 */
export function describeIssue(error: z.ZodError, root = ''): string {
  const issue = error.issues[0]
  if (!issue) {
    return root || 'request'
  }
  let path = root
  for (const key of issue.path) {
    path += typeof key === 'number' ? `[${key}]` : path === '' ? String(key) : `.${String(key)}`
  }
  return `${path || 'request'}: ${issue.message}`
}
