import type { CapabilityDescriptor } from '../types.js'

/** `warden:platform/secrets`: use a secret without seeing it, answered by the broker. */
export const secretsDescriptor: CapabilityDescriptor = {
  interface: 'warden:platform/secrets',
  versions: ['0.1.0'],
  functions: ['hmacSha256', 'reveal'],
  side: 'broker',
}
