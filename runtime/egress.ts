/**
 * The http capability's transport seam, for front ends that replace where authorised requests
 * go (`WardenOptions.http.transport`): its types, and the scripted transport `warden/testing`
 * answers tests with.
 */
export { createScriptedTransport } from '../host-capabilities/http/index.js'
export type {
  HttpResponse,
  HttpScriptFunction,
  OutgoingRequest,
  ScriptedRequest,
  SendContext,
  Transport,
} from '../host-capabilities/http/index.js'
