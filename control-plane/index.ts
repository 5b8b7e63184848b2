/** The control plane's front door: the HTTP API over an open Warden. Re-exports only. */
export { createControlPlane } from './app.js'
export type { ControlPlaneDeps, MicroAppCaps } from './app.js'
export { API_ROLES, openApiKeyStore } from './api-keys.js'
export type { ApiKeyInfo, ApiKeyStore, ApiRole, NewApiKey } from './api-keys.js'
export { APP_NAME, APP_OWNER, APP_PURPOSE, openAppRegistry } from './registry.js'
export type { AppRecord, AppRegistry, AppStatus } from './registry.js'
export { assessRisk } from './risk.js'
export type { RiskAssessment, RiskTier } from './risk.js'
export { adminKeyPath, startServer, tryItBlock } from './serve.js'
export type { RunningServer, ServeOptions } from './serve.js'
export { openTokenIndex } from './token-index.js'
export type { TokenEntry, TokenIndex } from './token-index.js'
export { openRedisRouteStore, openRouteStore } from './route-store.js'
export {
  checkGuestResponse,
  MICRO_APP_CSP,
  MICRO_APP_DEFAULTS,
  requestHeadersForGuest,
} from './micro-app-http.js'
export type { RouteBinding, RouteStore, RouteView } from './route-store.js'
