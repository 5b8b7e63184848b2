import type { Capability } from '../types.js'
import { createHttpCapability } from './broker.js'
import { httpDescriptor } from './descriptor.js'
import { httpGrant } from './grant.js'

/** `warden:platform/http`: egress to granted origins, secrets substituted as bound. */
export const httpCapability = {
  descriptor: httpDescriptor,
  grant: httpGrant,
  broker: (host) => createHttpCapability({ secrets: host.secrets, ...host.http }),
} as const satisfies Capability
