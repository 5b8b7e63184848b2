/**
 * The explicit list of capabilities Warden can provide. Nothing is discovered by glob: an
 * interface not listed here is refused at load with `unsupported_import`.
 */
import { dataDescriptor } from './data/descriptor.js'
import { httpDescriptor } from './http/descriptor.js'
import { logDescriptor } from './logging/descriptor.js'
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

/** The `warden:platform` interfaces. */
export const PLATFORM_CAPABILITIES: readonly CapabilityDescriptor[] = [
  typesDescriptor,
  httpDescriptor,
  secretsDescriptor,
  dataDescriptor,
  logDescriptor,
]

/** Every interface a component may import by default: the platform and the safe WASI baseline. */
export const DEFAULT_CAPABILITIES: readonly CapabilityDescriptor[] = [
  ...PLATFORM_CAPABILITIES,
  ...WASI_BASELINE,
]

export type {
  BrokerCapability,
  CapabilityDescriptor,
  CapabilitySide,
  RunContext,
  WorkerRunState,
} from './types.js'
export { HostCallError } from './types.js'
export { createLogImports, logDescriptor, LOG_INTERFACE } from './logging/index.js'
export { httpDescriptor, secretsDescriptor, dataDescriptor }
