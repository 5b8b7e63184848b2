/**
 * Capability tokens: Ed25519-signed JWTs (`typ: warden-cap+jwt`) that say what one app build
 * may do, for how long, within which limits. Mint, verify, attenuate, revoke, and intersect
 * with a component's imports.
 *
 * @example
 * const keys = createKeyStore(dataDir)
 * const revocations = createFileRevocationList(dataDir)
 * const { token } = await mintToken(keys, { appId, digest, grants, lifetimeSeconds: 3600 },
 *   { maxLifetimeSeconds: 86_400 })
 * const claims = await verifyToken(keys, token, { digest, revocations })
 * const { granted, grants } = effectiveGrant(app.imports, claims)
 */
export { attenuate } from './attenuate.js'
export type { AttenuateOptions, AttenuationRequest } from './attenuate.js'
export {
  appIdSchema,
  capabilityClaimsSchema,
  dataGrantEntrySchema,
  describeIssue,
  digestSchema,
  grantsSchema,
  grantsSchemaFor,
  claimsSchemaFor,
  hostPatternSchema,
  HTTP_METHODS,
  httpGrantEntrySchema,
  jtiSchema,
  limitsRequestSchema,
  MAX_CHAIN_LENGTH,
  MAX_GRANT_ENTRIES,
  secretGrantEntrySchema,
  tokenLimitsSchema,
  tokenSchemas,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
  TOKEN_TYPE,
} from './claims.js'
export type {
  CapabilityClaims,
  DataGrantEntry,
  DataGrantEntryInput,
  Grants,
  GrantsInput,
  HttpGrantEntry,
  HttpGrantEntryInput,
  HttpMethod,
  LimitsRequest,
  SecretGrantEntry,
  SecretGrantEntryInput,
  TokenLimits,
} from './claims.js'
export { compileGrants, effectiveGrant, GRANT_INTERFACES } from './effective.js'
export type { EffectiveGrant } from './effective.js'
export { hostPatternKind, isHostSubset } from '../../host-capabilities/http/host-pattern.js'
export type { HostPatternKind } from '../../host-capabilities/http/host-pattern.js'
export { createKeyStore, TOKEN_ALGORITHM } from './keys.js'
export type { Jwks, KeyInfo, KeyStore, PublicJwk } from './keys.js'
export { AttenuationRefused, mintToken } from './mint.js'
export type { MintedToken, MintPolicy, MintRequest } from './mint.js'
export { createFileRevocationList, createMemoryRevocationList } from './revocations.js'
export type { FileRevocationList, RevocationList, WritableRevocationList } from './revocations.js'
export {
  findAttenuationWidening,
  findGrantWidening,
  findLimitWidening,
  isDataEntrySubset,
  isGrantSubset,
  isHttpEntrySubset,
  isSecretEntrySubset,
} from './subset.js'
export { DEFAULT_LEEWAY_SECONDS, MAX_TOKEN_LENGTH, verifyClaims, verifyToken } from './verify.js'
export type { VerifyOptions } from './verify.js'
