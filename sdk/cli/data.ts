/**
 * `warden data put|schema`: write documents apps may read through scoped `data` grants, and
 * mark the fields that are personal data.
 */
import { WardenError } from '../../runtime/index.js'
import type { Warden } from '../../runtime/index.js'
import { checkKey, isValidCollection, parseDataSchema } from '../../host-capabilities/data/index.js'

/** Options of {@link putData}. */
export interface PutDataOptions {
  /** `^[a-z][a-z0-9_-]{0,63}$`. */
  collection: string
  /** A `/`-separated key: `contacts/alice`. */
  key: string
  /** The document, as parsed JSON. */
  value: unknown
}

/**
 * Create or replace one document. Throws `invalid_request` for a bad collection, key or
 * document (too large, too deep).
 *
 * @example
 * await putData(warden, { collection: 'crm', key: 'contacts/alice', value: { name: 'Alice' } })
 */
export async function putData(warden: Warden, options: PutDataOptions): Promise<void> {
  checkCollection(options.collection)
  const problem = checkKey(options.key)
  if (problem) {
    throw new WardenError('invalid_request', `not a data key (${problem})`)
  }
  await asInvalidRequest(() => warden.putData(options.collection, options.key, options.value))
}

/**
 * Set (replace) the collection's schema: the fields masked as `"[pii]"` unless a grant says
 * `pii: true`. An empty list clears it.
 *
 * @example
 * await setDataSchema(warden, 'crm', ['email', 'address.street'])
 */
export async function setDataSchema(
  warden: Warden,
  collection: string,
  piiFields: readonly string[],
): Promise<void> {
  checkCollection(collection)
  const schema = await asInvalidRequest(async () => parseDataSchema({ piiFields: [...piiFields] }))
  await warden.setDataSchema(collection, schema)
}

/** `--pii email,address.street` as a list; empty entries dropped (`--pii ''` clears). */
export function parsePiiFields(list: string): string[] {
  return list
    .split(',')
    .map((field) => field.trim())
    .filter((field) => field !== '')
}

function checkCollection(collection: string): void {
  if (!isValidCollection(collection)) {
    throw new WardenError('invalid_request', 'a collection name matches ^[a-z][a-z0-9_-]{0,63}$')
  }
}

/**
 * NB: the data store reports a document or schema it refuses (too deep, too large) as a
 * TypeError, host misuse; here the document is the user's input, so it is `invalid_request`.
 * Names and keys are checked before, so no other TypeError is expected from these calls.
 */
async function asInvalidRequest<T>(task: () => Promise<T>): Promise<T> {
  try {
    return await task()
  } catch (error) {
    if (error instanceof TypeError) {
      throw new WardenError('invalid_request', error.message, { cause: error })
    }
    throw error
  }
}
