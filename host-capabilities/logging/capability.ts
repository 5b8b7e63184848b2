import type { Capability } from '../types.js'
import { logDescriptor } from './descriptor.js'
import { logGrant } from './grant.js'

/** `warden:platform/log`: answered in the worker, so no broker. */
export const logCapability = {
  descriptor: logDescriptor,
  grant: logGrant,
} as const satisfies Capability
