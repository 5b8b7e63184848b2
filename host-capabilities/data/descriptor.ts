import type { CapabilityDescriptor } from '../types.js'

/** `warden:platform/data`: scoped read-only reads, answered by the broker. */
export const dataDescriptor: CapabilityDescriptor = {
  interface: 'warden:platform/data',
  versions: ['0.1.0'],
  functions: ['get', 'listKeys'],
  side: 'broker',
}
