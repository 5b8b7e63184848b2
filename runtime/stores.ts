/** The rules of the secret and data stores, for front ends that check input before it reaches them. */
export { MAX_SECRET_BYTES, SECRET_NAME_PATTERN } from '../host-capabilities/secrets/index.js'
export {
  isValidCollection,
  isValidKey,
  MAX_DOCUMENT_BYTES,
  MAX_PII_FIELDS,
} from '../host-capabilities/data/index.js'
export type { DataSchema } from '../host-capabilities/data/index.js'
