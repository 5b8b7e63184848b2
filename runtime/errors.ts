/**
 * Errors and their stable codes live in the leaf module `core/errors.ts` (capabilities depend
 * on it, not on the runtime); re-exported here for the runtime's own modules.
 */
export * from '../core/errors.js'
