/** The rules of the secret and data stores, for front ends that check input before it reaches them. */
export {
  deriveSubkey,
  MAX_SECRET_BYTES,
  openSecret,
  resolveMasterKey,
  SECRET_NAME_PATTERN,
  sealSecret,
} from '../host-capabilities/secrets/index.js'
export {
  isValidCollection,
  isValidKey,
  MAX_DOCUMENT_BYTES,
  MAX_PII_FIELDS,
} from '../host-capabilities/data/index.js'
export type { DataSchema } from '../host-capabilities/data/index.js'
