/**
 * `warden:platform/http`: egress to allowlisted origins only. `grant.ts` compiles the token's
 * `grants.http` once; `broker.ts` answers each `fetch` on the main thread: `checks.ts` (pure)
 * authorises it, `transport.ts` sends it; `url.ts`, `address.ts` and `redact.ts` are the pure
 * normaliser, address classifier and redactor.
 */
export { httpDescriptor } from './descriptor.js'
export {
  compileHttpGrant,
  decodePathSafe,
  DEFAULT_HTTP_METHODS,
  explainRefusal,
  FORBIDDEN_REQUEST_HEADERS,
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
export { createHttpCapability, HTTP_INTERFACE } from './broker.js'
export type { HttpCapabilityDeps } from './broker.js'
export { parseHttpRequest } from './checks.js'
export type { HttpHeader, HttpRequest } from './checks.js'
export type {
  HttpResponse,
  OutgoingRequest,
  ResolvedAddress,
  SendContext,
  Transport,
} from './transport.js'
export { createScriptedTransport } from './scripted.js'
export type { HttpScriptFunction, ScriptedRequest } from './scripted.js'
export { redactSecretBytes, redactSecrets, responseRedactor } from './redact.js'
export type { SubstitutedSecret } from './redact.js'
// Kept here for callers that assemble a run's grants for `fetch`: the secrets capability owns it.
export { SECRETS_INTERFACE } from '../secrets/index.js'
