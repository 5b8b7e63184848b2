/**
 * `warden:platform/data`: read-only reads limited to granted collections and key prefixes.
 * Keys (`keys.ts`), the grant (`grant.ts`), the store (`store.ts`), PII masking (`pii.ts`) and
 * the broker capability with its signed listing cursors (`broker.ts`).
 */
export {
  createDataCapability,
  CURSOR_KEY_PURPOSE,
  DATA_INTERFACE,
  MAX_CURSOR_LENGTH,
  MAX_PAGE_BYTES,
  MAX_PAGE_ENTRIES,
  MIN_PAGE_ENTRIES,
} from './broker.js'
export type { DataCapabilityOptions, DataEntryRecord, DataPageRecord } from './broker.js'
export { dataDescriptor } from './descriptor.js'
export {
  allows,
  allowsPrefix,
  compileDataGrant,
  DataGrantInvalid,
  isCompiledDataGrant,
} from './grant.js'
export type { CompiledDataGrant, CompiledDataGrantEntry, DataGrantEntry } from './grant.js'
export {
  assertCollection,
  assertKey,
  assertPrefix,
  canonicalPrefix,
  checkGrantPrefix,
  checkKey,
  checkPrefix,
  COLLECTION_PATTERN,
  isValidCollection,
  isValidKey,
  isValidPrefix,
  keyHasPrefix,
  MAX_KEY_BYTES,
} from './keys.js'
export type { KeyProblem } from './keys.js'
export { maskPii, PII_MASK } from './pii.js'
export {
  assertListArgs,
  createFileDataStore,
  encodeDocument,
  listEntries,
  sortKeys,
  MAX_DOCUMENT_BYTES,
  MAX_DOCUMENT_DEPTH,
  MAX_PII_FIELDS,
  parseDataSchema,
  readsOver,
} from './store.js'
export type { CollectionCopy, DataEntry, DataReader, DataSchema, DataStore } from './store.js'
