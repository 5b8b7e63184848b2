import type { Capability } from '../types.js'
import { createSecretsCapability } from './broker.js'
import { secretsDescriptor } from './descriptor.js'
import { secretsGrant } from './grant.js'

/** `warden:platform/secrets`: brokered secrets, never plaintext unless `reveal` is granted. */
export const secretsCapability = {
  descriptor: secretsDescriptor,
  grant: secretsGrant,
  broker: (host) => createSecretsCapability({ source: host.secrets }),
} as const satisfies Capability
