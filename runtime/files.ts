/**
 * Helpers for stores built on the runtime (the control plane's): atomic, private file writes,
 * and deep freezing of the records a store hands out and shares.
 */
export { deepFreeze } from '../core/freeze.js'
export { ensurePrivateDir, writeFileAtomic } from '../core/fs-atomic.js'
