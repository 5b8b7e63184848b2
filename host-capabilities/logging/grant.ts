/** The `log` grant: a flag. A run may write log lines only when its token says `log: true`. */
import { flagGrant } from '../grant.js'

/** The `log` field of a token's grants. */
export const logGrant = flagGrant('log')
