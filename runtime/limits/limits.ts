/**
 * Limit types, defaults and ceilings live in the leaf module `core/limits.ts`; re-exported
 * here for the runtime's own modules.
 */
export * from '../../core/limits.js'
