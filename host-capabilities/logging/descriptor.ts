import type { CapabilityDescriptor } from '../types.js'

/** The log interface as jco keys it. */
export const LOG_INTERFACE = 'warden:platform/log'

/** Longest kept line, in UTF-8 bytes; longer lines are cut and marked with `…`. */
export const MAX_LINE_BYTES = 4096

/** `warden:platform/log`: bounded, answered in the worker. */
export const logDescriptor: CapabilityDescriptor = {
  interface: LOG_INTERFACE,
  versions: ['0.1.0'],
  functions: ['write'],
  side: 'worker',
}
