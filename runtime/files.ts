/** Atomic, private file writes for stores built on the runtime (the control plane's). */
export { ensurePrivateDir, writeFileAtomic } from '../core/fs-atomic.js'
