import type { CapabilityDescriptor } from '../types.js'

/** `warden:platform/http`: egress to granted origins, answered by the broker. */
export const httpDescriptor: CapabilityDescriptor = {
  interface: 'warden:platform/http',
  versions: ['0.1.0'],
  functions: ['fetch'],
  side: 'broker',
}
