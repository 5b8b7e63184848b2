/**
 * The claims of a capability token, as strict zod schemas: an unknown field anywhere is
 * refused, never ignored. Parsing also normalises: every defaulted field is written out, so a
 * minted token says exactly what it grants and two grants compare field by field.
 */
import { z } from 'zod'
import { dataGrantEntrySchema } from '../../host-capabilities/data/grant.js'
import { httpGrantEntrySchema } from '../../host-capabilities/http/grant.js'
import { CAPABILITIES } from '../../host-capabilities/index.js'
import { secretGrantEntrySchema } from '../../host-capabilities/secrets/grant.js'
import type { Capability } from '../../host-capabilities/types.js'
import { DEFAULT_LIMITS } from '../limits/limits.js'

export { dataGrantEntrySchema, httpGrantEntrySchema, secretGrantEntrySchema }
export { HTTP_METHODS, hostPatternSchema } from '../../host-capabilities/http/grant.js'
export type { HttpMethod } from '../../host-capabilities/http/grant.js'
export { MAX_GRANT_ENTRIES } from '../../host-capabilities/grant.js'
import { unique } from '../../host-capabilities/grant.js'

/** `iss` and `aud` of every capability token. */
export const TOKEN_ISSUER = 'warden'

/** `aud` of every capability token. */
export const TOKEN_AUDIENCE = 'warden'

/** The JWS `typ` header of every capability token. */
export const TOKEN_TYPE = 'warden-cap+jwt'

/** Longest attenuation chain: a token may have at most this many ancestors. */
export const MAX_CHAIN_LENGTH = 16

const JTI = /^[A-Za-z0-9_-]{8,128}$/
const APP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const DIGEST = /^sha256:[0-9a-f]{64}$/
/** A token id: 8–128 characters of `[A-Za-z0-9_-]` (minted ids are UUIDs). */
export const jtiSchema = z.string().regex(JTI, 'not a token id')

/** An app id: 1–128 characters of `[A-Za-z0-9._-]`, starting with a letter or digit. */
export const appIdSchema = z.string().regex(APP_ID, 'not an app id')

/** A component digest: `sha256:` and 64 lowercase hex digits. */
export const digestSchema = z.string().regex(DIGEST, 'not a sha256 digest (sha256:<64 hex>)')

/**
 * The `grants` object of a token for a list of capabilities: one field per capability, its own
 * schema, no other field.
 *
 * @example
 * grantsSchemaFor([...CAPABILITIES, echoCapability]).parse({ echo: true })
 */
export function grantsSchemaFor<const Caps extends readonly Capability[]>(capabilities: Caps) {
  const shape: Record<string, z.ZodType> = {}
  for (const { grant } of capabilities) {
    if (Object.hasOwn(shape, grant.key)) {
      throw new TypeError(`two capabilities grant ${grant.key}`)
    }
    shape[grant.key] = grant.schema
  }
  return z.strictObject(shape as GrantShape<Caps>)
}

/** The `grants` shape of a capability list, field by field. */
type GrantShape<Caps extends readonly Capability[]> = {
  [C in Caps[number] as C['grant']['key']]: C['grant']['schema']
}

/**
 * What a token grants, for Warden's capabilities. Every field defaults to granting nothing: a
 * field left out grants nothing.
 *
 * @example
 * grantsSchema.parse({ log: true }) // { http: [], secrets: [], data: [], log: true }
 */
export const grantsSchema = grantsSchemaFor(CAPABILITIES)

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
export function claimsSchemaFor<const Caps extends readonly Capability[]>(capabilities: Caps) {
  return claimsSchemaOver(grantsSchemaFor(capabilities))
}

function claimsSchemaOver<G extends z.ZodType>(grants: G) {
  return z
    .strictObject({
      iss: z.literal(TOKEN_ISSUER),
      aud: z.literal(TOKEN_AUDIENCE),
      sub: z.string(),
      jti: jtiSchema,
      iat: numericDate,
      nbf: numericDate,
      exp: numericDate,
      app: z.strictObject({ id: appIdSchema, digest: digestSchema }),
      grants,
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
}

/** The claims of a token for Warden's capabilities. */
export const capabilityClaimsSchema = claimsSchemaFor(CAPABILITIES)

const schemasByList = new WeakMap<
  readonly Capability[],
  { grants: z.ZodType<Grants>; claims: z.ZodType<CapabilityClaims> }
>([[CAPABILITIES, { grants: grantsSchema, claims: capabilityClaimsSchema }]])

/**
 * The `grants` and claims schemas of a capability list, built once per list. Typed as
 * Warden's: a list with more capabilities parses to claims with more fields.
 */
export function tokenSchemas(capabilities: readonly Capability[] = CAPABILITIES): {
  grants: z.ZodType<Grants>
  claims: z.ZodType<CapabilityClaims>
} {
  let schemas = schemasByList.get(capabilities)
  if (!schemas) {
    schemas = {
      grants: grantsSchemaFor(capabilities) as unknown as z.ZodType<Grants>,
      claims: claimsSchemaFor(capabilities) as unknown as z.ZodType<CapabilityClaims>,
    }
    schemasByList.set(capabilities, schemas)
  }
  return schemas
}

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
