/**
 * The two shapes a capability's grant takes in a token: a list of entries (`http`, `secrets`,
 * `data`) or a flag (`log`). Each capability builds its {@link CapabilityGrant} from one of
 * these, so every list grant has the same bounds, default and attenuation rule.
 */
import { z } from 'zod'
import type { CapabilityGrant } from './types.js'

/** Most entries in one grant list (`http`, `secrets`, `data`). */
export const MAX_GRANT_ENTRIES = 64

/** True when no value repeats. */
export function unique(values: readonly unknown[]): boolean {
  return new Set(values).size === values.length
}

/**
 * A list grant: at most {@link MAX_GRANT_ENTRIES} entries, empty by default; a child list is
 * within its parent's when each child entry is within one parent entry on its own (never a
 * union of several). The widening is the index of the first entry that is not: `[2]`.
 */
export function listGrant<Key extends string, Entry extends z.ZodType, Compiled>(
  key: Key,
  entry: Entry,
  isSubset: (child: z.output<Entry>, parent: z.output<Entry>) => boolean,
  compile: (entries: z.output<Entry>[]) => Compiled,
): CapabilityGrant<Key, z.ZodDefault<z.ZodArray<Entry>>, Compiled> {
  return {
    key,
    schema: z
      .array(entry)
      .max(MAX_GRANT_ENTRIES)
      .default(() => []),
    grantsAnything: (entries) => entries.length > 0,
    widening(child, parent) {
      const at = child.findIndex((c) => !parent.some((p) => isSubset(c, p)))
      return at < 0 ? undefined : `[${at}]`
    },
    compile,
  }
}

/**
 * A flag grant: `false` by default; a child may be `true` only when its parent is.
 *
 * @example
 * flagGrant('log').widening(true, false) // '': the whole field widens
 */
export function flagGrant<Key extends string>(
  key: Key,
): CapabilityGrant<Key, z.ZodDefault<z.ZodBoolean>, undefined> {
  return {
    key,
    schema: z.boolean().default(false),
    grantsAnything: (value) => value,
    widening: (child, parent) => (child && !parent ? '' : undefined),
  }
}
