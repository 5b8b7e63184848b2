/**
 * `warden:platform/secrets`: use a secret without seeing it. Plaintexts live only in the
 * broker: the encrypted store (`store.ts`), the grant (`grant.ts`), the broker capability
 * (`broker.ts`) and the redactor for everything that leaves the host (`redact.ts`).
 */
export { createSecretsCapability, REVEAL_OP, SECRETS_INTERFACE } from './broker.js'
export type { SecretsCapabilityOptions } from './broker.js'
export { secretsDescriptor } from './descriptor.js'
export {
  canReveal,
  canUse,
  compileSecretsGrant,
  DEFAULT_SECRET_HEADER,
  defaultSecretPrefix,
  findSecretBinding,
  findSecretGrant,
  isCompiledSecretsGrant,
  secretBindingsFor,
} from './grant.js'
export type {
  CompiledSecretGrantEntry,
  CompiledSecretsGrant,
  SecretBinding,
  SecretsGrantEntry,
} from './grant.js'
export { assertSecretName, isSecretName, SECRET_NAME_PATTERN } from './names.js'
export { createRedactor, loadRedactor, MIN_REDACT_BYTES, redactionMarker } from './redact.js'
export type { RedactedSecret, Redactor, RedactorOptions } from './redact.js'
export {
  assertSecretValue,
  createFileSecretStore,
  DEFAULT_MASTER_KEY_FILE,
  deriveSubkey,
  loadOrCreateMasterKey,
  MASTER_KEY_BYTES,
  masterKeyFromEnv,
  MAX_SECRET_BYTES,
  openSecret,
  resolveMasterKey,
  sealedAt,
  sealSecret,
} from './store.js'
export type { FileSecretStoreOptions, SecretAdmin, SecretMeta, SecretStore } from './store.js'
