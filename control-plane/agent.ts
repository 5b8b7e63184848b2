/**
 * The built-in `js` app at server start: the agent component (built at install and cached;
 * built here only when that cache is cold, never on a request path) is loaded from its
 * prepared transpile cache, registered as an approved built-in app (a new version only when
 * the component changed; audited like an upload), and run once per worker with no grant so
 * that every worker holds it compiled and a fresh instance of it ready.
 *
 * A deployment runs one build: componentize-js builds are not byte-reproducible, so when the
 * registry's current `js` version was built from the same inputs (its build key) but by
 * another install or host, that version's bytes are adopted (and prepared once, 20–40 s)
 * instead of this install's build. The digest, and the tokens bound to it, then change only
 * when Warden's built-in component changes.
 */
import { createHash } from 'node:crypto'
import {
  adoptAgentBuild,
  AGENT_APP_NAME,
  agentBuildKey,
  agentCacheDir,
  agentComponent,
  agentRequest,
  prepareAgentComponent,
  toWardenError,
  WardenError,
} from '../runtime/index.js'
import type { LimitCeilings, LoadedComponent, Warden } from '../runtime/index.js'
import type { AppRegistry } from './registry.js'
import { BUILTIN_PUBLISHER } from './registry.js'
import { assessRisk } from './risk.js'

/** Options of {@link prepareAgentApp}. */
export interface AgentAppOptions {
  /** Where progress and warnings go (a cold build takes 25–45 s). Default: nowhere. */
  log?: (message: string) => void
  /** Warm-up runs, one per sandbox worker. Default 1. */
  workers?: number
  /** The host's ceilings, to prepare an adopted build for. Default Warden's defaults. */
  ceilings?: LimitCeilings
  /** The agent's build cache. Default {@link agentCacheDir} (tests use their own). */
  cacheDir?: string
}

/** The bytes of the registry's current `js` version when they were built from `buildKey`. */
async function pinnedBuild(
  registry: AppRegistry,
  buildKey: string,
): Promise<Uint8Array | undefined> {
  const app = registry.get(AGENT_APP_NAME)
  const version = app?.versions.at(-1)
  if (
    !app ||
    app.publisher !== BUILTIN_PUBLISHER ||
    app.decommissionedAt ||
    version?.buildKey !== buildKey
  ) {
    return undefined
  }
  const bytes = await registry.readBlob(version.digest).catch(() => undefined)
  const digest = bytes && `sha256:${createHash('sha256').update(bytes).digest('hex')}`
  return digest === version.digest ? bytes : undefined
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
  const cacheDir = options.cacheDir ?? agentCacheDir()
  const buildKey = await agentBuildKey()
  const pinned = await pinnedBuild(registry, buildKey)
  if (pinned && (await adoptAgentBuild(pinned, { cacheDir }))) {
    log(
      'preparing the built-in JS sandbox as this deployment registered it (another install built it); this takes 20–40 s, once',
    )
    await prepareAgentComponent({
      cacheDir,
      log,
      ...(options.ceilings ? { ceilings: options.ceilings } : {}),
    })
  }
  const bytes = await agentComponent({ onBuild: log, cacheDir })
  let component: LoadedComponent
  try {
    component = await warden.load(bytes, { cacheDir, uploader: BUILTIN_PUBLISHER })
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
      buildKey,
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
