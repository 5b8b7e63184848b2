/**
 * The explicit list of capabilities Warden can provide. Nothing is discovered by glob: an
 * interface not listed here is refused at load with `unsupported_import`, and a grant field
 * not listed here is refused in a token.
 */
import { dataCapability } from './data/capability.js'
import { dataDescriptor } from './data/descriptor.js'
import { httpCapability } from './http/capability.js'
import { httpDescriptor } from './http/descriptor.js'
import { logCapability } from './logging/capability.js'
import { secretsCapability } from './secrets/capability.js'
import { secretsDescriptor } from './secrets/descriptor.js'
import type { CapabilityDescriptor } from './types.js'
import { WASI_BASELINE } from './wasi/descriptor.js'

/** `warden:platform/types`: carries the shared types, has no functions. */
export const typesDescriptor: CapabilityDescriptor = {
  interface: 'warden:platform/types',
  versions: ['0.1.0'],
  functions: [],
  side: 'worker',
  typesOnly: true,
}

/**
 * THE list: every capability a token can grant, in the order grants are written and checked.
 * A token's `grants` schema, attenuation, the effective grant of a run, compilation and the
 * brokers are all built from it. Adding a capability is a folder and a line here.
 */
export const CAPABILITIES = [
  httpCapability,
  secretsCapability,
  dataCapability,
  logCapability,
] as const

/** The `warden:platform` interfaces. */
export const PLATFORM_CAPABILITIES: readonly CapabilityDescriptor[] = [
  typesDescriptor,
  ...CAPABILITIES.map((c) => c.descriptor),
]

/** Every interface a component may import by default: the platform and the safe WASI baseline. */
export const DEFAULT_CAPABILITIES: readonly CapabilityDescriptor[] = [
  ...PLATFORM_CAPABILITIES,
  ...WASI_BASELINE,
]

export type {
  BrokerCapability,
  Capability,
  CapabilityGrant,
  CapabilityHost,
  CapabilityDescriptor,
  CapabilitySide,
  RunContext,
  WorkerRunState,
} from './types.js'
export { HostCallError } from './types.js'
export { createLogImports, logDescriptor, LOG_INTERFACE } from './logging/index.js'
export { httpDescriptor, secretsDescriptor, dataDescriptor }
export { dataCapability, httpCapability, logCapability, secretsCapability }
