import type { Capability } from '../types.js'
import { CURSOR_KEY_PURPOSE, createDataCapability } from './broker.js'
import { dataDescriptor } from './descriptor.js'
import { dataGrant } from './grant.js'

/** `warden:platform/data`: reads of granted key prefixes, PII masked unless granted. */
export const dataCapability = {
  descriptor: dataDescriptor,
  grant: dataGrant,
  broker: (host) =>
    createDataCapability({ store: host.data, cursorKey: host.subkey(CURSOR_KEY_PURPOSE) }),
} as const satisfies Capability
