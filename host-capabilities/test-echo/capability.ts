import { flagGrant } from '../grant.js'
import type { Capability } from '../types.js'
import { createTestEchoCapability } from './broker.js'
import { testEchoDescriptor } from './descriptor.js'

/**
 * `warden:test/echo` as a whole capability: granted by a token's `echo: true`. TEST-ONLY: add
 * it with `openWarden({ extraCapabilities: [testEchoCapability] })`; it is not in
 * `CAPABILITIES`. It is also the proof that a capability is one folder and one list entry.
 */
export const testEchoCapability = {
  descriptor: testEchoDescriptor,
  grant: flagGrant('echo'),
  broker: () => createTestEchoCapability(),
} as const satisfies Capability
