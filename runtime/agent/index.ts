/**
 * Warden's built-in JS agent: the `action` component that runs an agent's JS source
 * (`agent.js`), its cached build (`build.ts`) and the shape of one run (`run.ts`).
 */
export { adoptAgentBuild, agentBuildKey, agentCacheDir, agentComponent } from './build.js'
export { prepareAgentComponent } from './prepare.js'
export type { AgentBuildOptions } from './build.js'
export {
  agentAnswer,
  agentRequest,
  MAX_AGENT_OUTPUT_BYTES,
  MAX_AGENT_SOURCE_CHARS,
} from './run.js'
export type { AgentAnswer, AgentScriptError } from './run.js'

/** The name of the built-in app that runs agents' JS source (`POST /v1/runs` with `source`). */
export const AGENT_APP_NAME = 'js'
