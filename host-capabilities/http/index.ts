/**
 * `warden:platform/http`: egress to allowlisted origins only. `grant.ts` compiles the token's
 * `grants.http` once; `broker.ts` checks and sends each `fetch` on the main thread; `url.ts`,
 * `address.ts` and `redact.ts` are the pure normaliser, address classifier and redactor.
 */
export { httpDescriptor } from './descriptor.js'
export {
  compileHttpGrant,
  decodePathSafe,
  DEFAULT_HTTP_METHODS,
  explainRefusal,
  HTTP_TOKEN,
  isCompiledHttpGrant,
  matchRequest,
} from './grant.js'
export type { CompiledHttpEntry, CompiledHttpGrant, HttpGrantEntry } from './grant.js'
export {
  auditTarget,
  DEFAULT_PORTS,
  EgressUrlError,
  explicitOrigin,
  formatOrigin,
  MAX_URL_LENGTH,
  normaliseHostname,
  parseEgressUrl,
  parseOrigin,
} from './url.js'
export type { EgressOrigin, EgressUrl, EgressUrlErrorReason } from './url.js'
export {
  ADDRESS_CLASSES,
  addressRange,
  classifyAddress,
  IPV4_RANGES,
  IPV6_RANGES,
  isPublicAddress,
  parseIpBytes,
} from './address.js'
export type { AddressClass, AddressRange, AddressRangeMatch } from './address.js'
export {
  createHttpCapability,
  FORBIDDEN_REQUEST_HEADERS,
  HTTP_INTERFACE,
  parseHttpRequest,
  SECRETS_INTERFACE,
} from './broker.js'
export { redactSecretBytes, redactSecrets, responseRedactor } from './redact.js'
export type { SubstitutedSecret } from './redact.js'
export type {
  HttpCapabilityDeps,
  HttpHeader,
  HttpRequest,
  HttpResponse,
  ResolvedAddress,
} from './broker.js'
