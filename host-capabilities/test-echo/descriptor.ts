import type { CapabilityDescriptor } from '../types.js'

/** The echo interface as jco keys it. */
export const ECHO_INTERFACE = 'warden:test/echo'

/** `warden:test/echo`: TEST-ONLY, answered by the broker so every call crosses the bridge. */
export const testEchoDescriptor: CapabilityDescriptor = {
  interface: ECHO_INTERFACE,
  versions: ['0.1.0'],
  functions: ['echoItem', 'echoList', 'bytes', 'fail', 'hang'],
  side: 'broker',
}
