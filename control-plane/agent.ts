/**
 * The built-in `js` app at server start: the agent component (built at install and cached;
 * built here only when that cache is cold, never on a request path) is loaded from its
 * prepared transpile cache, registered as an approved built-in app (a new version only when
 * the component changed; audited like an upload), and run once per worker with no grant so
 * that every worker holds it compiled and a fresh instance of it ready.
 */
import {
  AGENT_APP_NAME,
  agentCacheDir,
  agentComponent,
  agentRequest,
  toWardenError,
  WardenError,
} from '../runtime/index.js'
import type { LoadedComponent, Warden } from '../runtime/index.js'
import type { AppRegistry } from './registry.js'
import { BUILTIN_PUBLISHER } from './registry.js'
import { assessRisk } from './risk.js'

/** Options of {@link prepareAgentApp}. */
export interface AgentAppOptions {
  /** Where progress and warnings go (a cold build takes 25–45 s). Default: nowhere. */
  log?: (message: string) => void
  /** Warm-up runs, one per sandbox worker. Default 1. */
  workers?: number
}

/**
 * Load, register and warm the built-in `js` app; undefined (with a warning) when the name
 * belongs to an uploaded or decommissioned app.
 *
 * @example
 * const agent = await prepareAgentApp(warden, registry, { log: console.error })
 */
export async function prepareAgentApp(
  warden: Warden,
  registry: AppRegistry,
  options: AgentAppOptions = {},
): Promise<LoadedComponent | undefined> {
  const log = options.log ?? (() => {})
  const bytes = await agentComponent({ onBuild: log })
  let component: LoadedComponent
  try {
    component = await warden.load(bytes, { cacheDir: agentCacheDir(), uploader: BUILTIN_PUBLISHER })
  } catch (error) {
    // Not prepared for this host's ceilings, and the transpile budget ran out: the server
    // still starts; `npm run build:agent` prepares it.
    log(
      `warning: the built-in JS sandbox is off: ${toWardenError(error).message}; run npm run build:agent`,
    )
    return undefined
  }
  await registry.putBlob(component.digest, bytes)
  let outcome: string
  try {
    const registered = await registry.registerBuiltin({
      name: AGENT_APP_NAME,
      digest: component.digest,
      sizeBytes: bytes.byteLength,
      kind: component.kind,
      imports: component.imports,
      exports: component.world.exports.map((e) => e.name),
      risk: assessRisk(component.imports, await warden.piiCollections()),
    })
    outcome = registered.outcome
    if (outcome !== 'unchanged') {
      await warden.audit.append({
        kind: 'admin',
        op: outcome === 'created' ? 'app.register' : 'app.version',
        actor: BUILTIN_PUBLISHER,
        appId: registered.record.id,
        digest: component.digest,
        target: registered.record.id,
        decision: 'allow',
        reason: 'builtin',
      })
    }
  } catch (error) {
    if (error instanceof WardenError && error.code === 'conflict') {
      log(`warning: the built-in JS sandbox is off: ${error.message}`)
      return undefined
    }
    throw error
  }
  // Warden's own warm-up, not a guest's run: no token, no grant, nothing audited.
  const warm = Array.from({ length: Math.max(1, options.workers ?? 1) }, () =>
    warden.runtime.invoke(component, agentRequest('return null', null), {
      appId: 'warden:warm-up',
    }),
  )
  await Promise.all(warm)
  return component
}
