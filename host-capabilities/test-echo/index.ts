/**
 * `warden:test/echo@0.1.0` (`echo.wit`): a TEST-ONLY broker capability that proves the bridge
 * carries strings, lists, records, options, variants and results both ways, payloads past the
 * shared channel (`bytes`), and that a guest stuck in a host call is ended by its deadline
 * (`hang`).
 *
 * It is enabled only when passed in `RuntimeOptions.brokerCapabilities`
 * (`createRuntime({ brokerCapabilities: [createTestEchoCapability()] })`); it is never part of
 * `DEFAULT_CAPABILITIES`, so a production runtime refuses a component importing it with
 * `unsupported_import`.
 */
export {
  createTestEchoCapability,
  echoError,
  echoPatternByte,
  MAX_ECHO_BYTES,
} from './broker.js'
export type { EchoErrorPayload, EchoItem } from './broker.js'
export { ECHO_INTERFACE, testEchoDescriptor } from './descriptor.js'
export { testEchoCapability } from './capability.js'
