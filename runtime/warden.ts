/**
 * Warden assembled: the sandbox runtime plus everything that decides what a run may do and
 * writes down what it did: the token key ring and revocations, the secrets and data stores,
 * the three platform capabilities, and the audit log. The CLI and (later) the HTTP server are
 * thin layers over {@link openWarden}.
 *
 * A run with a token: verify it (signature, claims, digest of this build, revocation of it and
 * its ancestors) → effective grant = the component's imports ∩ the token's grants → compile
 * each grant once → run → redact every secret value from what comes back → append one audit
 * record per host call and one for the run, durably → answer.
 *
 * The kill switch: {@link Warden.disableApp} refuses an app's new runs with `app_disabled` and
 * ends its runs in flight with it; the set of disabled apps lives in memory, seeded from
 * `WardenOptions.disabledApps` (the app registry keeps it across restarts).
 */
import { join } from 'node:path'
import type { Decision } from '../core/decisions.js'
import { createFileDataStore } from '../host-capabilities/data/index.js'
import type { DataSchema, DataStore } from '../host-capabilities/data/index.js'
import type { HttpCapabilityDeps } from '../host-capabilities/http/index.js'
import { CAPABILITIES } from '../host-capabilities/index.js'
import {
  createFileSecretStore,
  createRedactor,
  deriveSubkey,
  resolveMasterKey,
} from '../host-capabilities/secrets/index.js'
import type { RedactedSecret, Redactor, SecretStore } from '../host-capabilities/secrets/index.js'
import type { Capability, CapabilityHost } from '../host-capabilities/types.js'
import { openAuditLog } from './audit/index.js'
import { groupHostCalls } from './audit/host-calls.js'
import type { KillSwitchStore } from './kill-switch.js'
import { createMemoryQuotaStore, hasQuotas } from './quotas.js'
import type { QuotaStore, Quotas } from './quotas.js'
import {
  checkMasterKey,
  createRedisDataStore,
  createRedisKeyStore,
  createRedisKillSwitch,
  createRedisQuotaStore,
  createRedisRevocationList,
  createRedisSecretStore,
  openRedisAuditLog,
} from './redis/index.js'
import type { RedisConnection } from './redis/index.js'
import type { AuditEntry, AuditLog, AuditRecord } from './audit/index.js'
import { toWardenError, WardenError } from './errors.js'
import { payloadSize } from './payload-size.js'
import type { SerializedError } from './errors.js'
import type { HostConfig } from './host-config.js'
import { APP_DISABLED, createRuntime } from './runtime.js'
import type { Invocation, WardenRuntime } from './runtime.js'
import type { LoadedComponent, LoadOptions } from './loader/load.js'
import { DEFAULT_TRANSPILE_BUDGET } from './loader/transpile.js'
import { NO_TELEMETRY } from './telemetry/telemetry.js'
import type { Telemetry } from './telemetry/telemetry.js'
import {
  appIdSchema,
  attenuate,
  createFileRevocationList,
  createKeyStore,
  compileGrants,
  digestSchema,
  effectiveGrant,
  mintToken,
  verifyClaims,
  verifyToken,
} from './tokens/index.js'
import type {
  AttenuationRequest,
  CapabilityClaims,
  KeyStore,
  MintedToken,
  MintRequest,
  WritableRevocationList,
} from './tokens/index.js'

/** Options of {@link openWarden}: the host config, plus test seams. */
export interface WardenOptions
  extends Pick<HostConfig, 'dataDir' | 'ceilings' | 'masterKey' | 'maxTokenLifetimeSeconds'>,
    Partial<
      Pick<
        HostConfig,
        | 'isolation'
        | 'clockResolutionNs'
        | 'maxRunningPerApp'
        | 'maxQueuedPerApp'
        | 'borrowBelowMs'
        | 'transpileWorkers'
        | 'transpileTimeoutMs'
        | 'loadedCacheMb'
      >
    > {
  poolSize?: number
  /** Overrides for the http capability: a DNS `lookup` or extra CA roots, in tests. */
  http?: Pick<HttpCapabilityDeps, 'lookup' | 'ca' | 'transport'>
  /**
   * Capabilities beyond {@link CAPABILITIES}: their interfaces load, their grants are token
   * fields, their brokers answer (tests add `warden:test/echo`). Never in production.
   */
  extraCapabilities?: readonly Capability[]
  /**
   * Apps disabled from the start (the kill switch's state, as the app registry kept it).
   * Throws a TypeError on an id that is not an app id. Default: none.
   */
  disabledApps?: readonly string[]
  /**
   * Where runs, host calls, guest logs and audit records are reported (`startTelemetry`).
   * Default: none. The caller that started it shuts it down, after {@link Warden.close}.
   */
  telemetry?: Telemetry
  /**
   * Redis mode: keep every store (key ring, revocations, secrets, data, kill switch, quotas,
   * audit log) on this connection, shared with every host on the same Redis and prefix. The
   * caller opens and closes it. Default: local files in `dataDir`.
   */
  redis?: RedisConnection
  /** Quotas per app and per token (runs per minute, fuel per day). Default: none. */
  quotas?: Quotas
  /**
   * Redis mode: how often the shared kill switch is read again (runs of an app another host
   * disabled end within this), in ms. Default 1000.
   */
  watchdogMs?: number
  /**
   * The file audit log's `indexLimit` (records in its in-memory invocation index; default
   * 200 000). Tests set it low to reach the bound.
   */
  auditIndexLimit?: number
}

/** Options of one run with a token. */
export interface RunOptions {
  /** The bearer capability token. Never logged, never echoed. */
  token: string
  /**
   * The token's claims as {@link Warden.verifyToken} answered them moments ago, so the run
   * does not verify the same token twice (the control plane checks it before anything else).
   * Only an object that `verifyToken` of this Warden returned is accepted; its `exp` and digest
   * are checked again.
   */
  verified?: CapabilityClaims
  /**
   * The registered app being run: the token must name it, not only its build (two apps can
   * ship the same bytes). Absent for a component run outside a registry (the CLI).
   */
  appId?: string
  /**
   * Whose share of the pool the run counts against: the app (default), or the token's family
   * (the root of its attenuation chain) within the app, for an app that many tenants share (the
   * built-in JS sandbox), so one tenant's runs cannot hold every place of the app.
   */
  fairness?: 'app' | 'token-family'
  /**
   * Told each host call as it is decided, while the run goes on, in call order, secrets
   * redacted as in the answer: `warden dev` prints them live. Broker calls (http, secrets, data)
   * are told once answered; the sandbox's own (log lines, WASI stdout/stderr writes, early
   * denials) as the worker records them, up to the run's `logLines` limit. Those past it, and
   * a call still in flight when the run ends, come only with the answer's `decisions`; every
   * call told is told before `run` resolves. A listener that throws changes nothing.
   *
   * @example
   * await warden.run(app, input, { token, onHostCall: (d) => console.log(d.fn, d.decision) })
   */
  onHostCall?: (decision: Decision) => void
  /**
   * The caller's interest in the answer: aborted while the run still waits for a sandbox, the
   * run never starts and answers `client_closed` (audited like any run); see
   * `InvokeOptions.signal` (read only if the run has to wait).
   */
  signal?: AbortSignal
  /**
   * The most of the run's output the caller will take: bytes of its strings and byte lists,
   * counted before the answer is redacted (redaction costs per byte and per stored secret: a
   * 56 MiB micro-app body held the main thread 1.6 s with 50 secrets stored, before the route
   * refused it for its size; twelfth outside attack); a string counts its UTF-16 units. Past it
   * the run answers `error`, its output (or guest error) dropped unread; the audit records it.
   *
   * @example
   * await warden.call(app, 'handler.handle', [request], {
   *   token, outputCap: { bytes: 5 << 20, error: { code: 'invalid_response', message: 'too big' } },
   * })
   */
  outputCap?: { bytes: number; error: SerializedError }
}

/** An open Warden host. */
export interface Warden {
  readonly runtime: WardenRuntime
  readonly keys: KeyStore
  readonly audit: AuditLog
  /** Where this Warden reports (off unless `WardenOptions.telemetry` was given). */
  readonly telemetry: Telemetry
  /** Load a component (validate, transpile, instrument; cached by digest). */
  load(bytes: Uint8Array, options?: LoadOptions): Promise<LoadedComponent>
  /**
   * Run an action once under `token`. Token failures throw `token_*`, and a token for a
   * disabled app throws `app_disabled`, each after an audit record. A run ended by
   * {@link Warden.disableApp} while in flight answers `error.code === 'app_disabled'`.
   */
  run(app: LoadedComponent, input: string, options: RunOptions): Promise<Invocation>
  /**
   * Call any export of `app` (`handler.handle` of a micro-app) with jco-shaped `args`, under
   * `token`: the same checks, grants, limits and audit records as {@link Warden.run}.
   *
   * @example
   * const served = await warden.call(app, 'handler.handle', [request], { token })
   */
  call(
    app: LoadedComponent,
    exportName: string,
    args: unknown[],
    options: RunOptions,
  ): Promise<Invocation>
  /**
   * The kill switch (admin): refuse the app's new runs with `app_disabled` and end its queued
   * and running ones with it at once (their sandboxes are killed and replaced; other apps' runs
   * go on). Takes effect before the audit record is written: a kill switch does not wait for
   * the disk, and if the record fails the app stays disabled and the error is thrown. Returns
   * how many runs were ended. Malformed ids throw `invalid_request`, after an audit record.
   *
   * @example
   * await warden.disableApp('shop', 'admin:ada') // 3 runs ended
   */
  disableApp(appId: string, actor?: string): Promise<number>
  /**
   * Let a disabled app run again (admin). The audit record is written first: if it fails, the
   * app stays disabled. Enabling an app that is not disabled is recorded and changes nothing.
   */
  enableApp(appId: string, actor?: string): Promise<void>
  /** The disabled app ids, sorted: what the app registry persists. */
  disabledApps(): string[]
  /** Mint a token (admin). A refusal is audited (`deny`, its code), then thrown. */
  grantToken(request: Omit<MintRequest, 'parent'>, actor?: string): Promise<MintedToken>
  /**
   * Derive a narrower child token (holder of `parentToken`). A refusal is audited (`deny`, its
   * code, the parent's jti once it verified; never the token), then thrown.
   */
  attenuateToken(
    parentToken: string,
    request: AttenuationRequest,
    digest?: string,
  ): Promise<MintedToken>
  /**
   * Audit a token request that a front end (CLI, HTTP) refused before it reached
   * {@link Warden.grantToken} or {@link Warden.attenuateToken}: `deny` with the error's code.
   * `actor` defaults to the local admin for a grant and an unknown holder for an attenuation.
   *
   * @example
   * await warden.auditTokenRefusal('token.grant', error) // then rethrow it
   */
  auditTokenRefusal(op: TokenOp, error: unknown, actor?: string): Promise<void>
  /**
   * Revoke a token and, through `chain`, every token derived from it (admin). A revocation the
   * store could not make durable (`store_unavailable`) is audited as `deny`, then thrown.
   */
  revokeToken(jti: string, actor?: string): Promise<void>
  /** Write a secret; its value is never readable through this interface (admin). */
  putSecret(name: string, value: string, actor?: string): Promise<void>
  deleteSecret(name: string, actor?: string): Promise<boolean>
  listSecrets(): Promise<{ name: string; updatedAt: string }[]>
  /** Write a document apps may read through scoped grants (admin). */
  putData(collection: string, key: string, value: unknown, actor?: string): Promise<void>
  /** A document as stored, PII unmasked (admin); undefined when there is none. */
  readData(collection: string, key: string): Promise<unknown>
  /** Delete a document (admin); false when there was none. */
  deleteData(collection: string, key: string, actor?: string): Promise<boolean>
  /** Collections whose schema names PII fields, sorted. */
  piiCollections(): Promise<string[]>
  /**
   * Verify a capability token without running anything: signature, claims, lifetime,
   * revocation; with `digest`, that it is for that build. Throws `token_*` or
   * `store_unavailable`.
   */
  verifyToken(token: string, digest?: string): Promise<CapabilityClaims>
  setDataSchema(collection: string, schema: DataSchema, actor?: string): Promise<void>
  /** Every secret value replaced by `[redacted:NAME]`. */
  redact(text: string): string
  close(): Promise<void>
}

/** The admin operations on tokens whose refusals are audited. */
export type TokenOp = 'token.grant' | 'token.attenuate'

const LOCAL_ADMIN = 'admin:local'
const UNKNOWN_HOLDER = 'holder:unknown'

/** Where a data dir keeps its audit log. */
export function auditLogPath(dataDir: string): string {
  return join(dataDir, 'audit', 'audit.jsonl')
}

/** Where a host in Redis mode spools audit records while Redis is away. */
export function auditSpoolPath(dataDir: string): string {
  return join(dataDir, 'audit', 'redis-spool.jsonl')
}

/**
 * Keep `disabled` in step with a shared kill switch: each change announced ends the app's runs
 * here at once, and the watchdog re-reads the whole set every `everyMs` (messages missed while
 * the channel was down) and ends the runs of every app in it. Returns what stops it all.
 */
function followKillSwitch(
  killSwitch: KillSwitchStore | undefined,
  disabled: Set<string>,
  runtime: WardenRuntime,
  everyMs: number,
  alsoOnStop: () => void,
): () => void {
  if (!killSwitch) {
    return alsoOnStop
  }
  const apply = (appId: string, off: boolean) => {
    if (off) {
      disabled.add(appId)
      runtime.cancelApp(appId, APP_DISABLED)
    } else {
      disabled.delete(appId)
    }
  }
  const stopChanges = killSwitch.onChange(apply)
  const timer = setInterval(() => {
    killSwitch.list().then(
      (ids) => {
        const now = new Set(ids)
        for (const id of [...disabled]) {
          if (!now.has(id)) {
            disabled.delete(id)
          }
        }
        for (const id of ids) {
          apply(id, true)
        }
      },
      // Redis away: new runs fail closed on the token check; what is disabled stays disabled.
      () => undefined,
    )
  }, everyMs)
  timer.unref()
  return () => {
    clearInterval(timer)
    stopChanges()
    alsoOnStop()
  }
}

/** Where a data dir keeps the key that signs audit checkpoints: outside the audit directory. */
export function auditSigningKeyPath(dataDir: string): string {
  return join(dataDir, 'audit-signing.key')
}

/**
 * Open Warden on a data dir: keys, stores and the audit log are created on first use.
 *
 * @example
 * const warden = await openWarden({ ...resolveHostConfig() })
 * const app = await warden.load(bytes)
 * const run = await warden.run(app, '{}', { token })
 */
export async function openWarden(options: WardenOptions): Promise<Warden> {
  const { dataDir } = options
  // The kill switch's state: checked before anything is opened.
  const disabled = new Set<string>()
  for (const id of options.disabledApps ?? []) {
    if (!appIdSchema.safeParse(id).success) {
      throw new TypeError('disabledApps holds something that is not an app id')
    }
    disabled.add(id)
  }
  const masterKey = await resolveMasterKey({ fromEnv: options.masterKey, dataDir })
  const { redis } = options
  if (redis) {
    await checkMasterKey(redis, masterKey)
  }
  const keys: KeyStore = redis ? createRedisKeyStore(redis, masterKey) : createKeyStore(dataDir)
  const revocations: WritableRevocationList & { close?(): void } = redis
    ? createRedisRevocationList(redis)
    : createFileRevocationList(dataDir)
  const redisSecrets = redis ? createRedisSecretStore(redis, masterKey) : undefined
  const secrets: SecretStore =
    redisSecrets ?? createFileSecretStore({ dir: join(dataDir, 'secrets'), masterKey })
  const data: DataStore = redis
    ? createRedisDataStore(redis)
    : createFileDataStore(join(dataDir, 'data'))
  const killSwitch: KillSwitchStore | undefined = redis ? createRedisKillSwitch(redis) : undefined
  const quotas: QuotaStore | undefined =
    options.quotas && hasQuotas(options.quotas)
      ? redis
        ? createRedisQuotaStore(redis, options.quotas)
        : createMemoryQuotaStore(options.quotas)
      : undefined
  for (const id of (await killSwitch?.list()) ?? []) {
    disabled.add(id)
  }

  // One redactor over every stored secret, rebuilt on every write: audit records, telemetry and
  // host errors are cleaned with it. What a run answers (its output, logs, errors, decisions)
  // is cleaned of the secrets its token grants only (`runRedact`): cleaning it of every stored
  // secret told whoever could make a guest echo a string which of its candidates was another
  // tenant's secret (fourteenth outside attack: a PIN found in 4 runs by a token granted
  // nothing; a 6-digit one through an echoing micro-app's route by anyone).
  let redactor: Redactor = createRedactor([])
  let stored: RedactedSecret[] = []
  // By the names a grant holds: building one compiles its secrets' patterns.
  const runRedactors = new Map<string, (text: string) => string>()
  const rebuildRedactor = async () => {
    const all = await secrets.list()
    const values = await Promise.all(
      all.map(async ({ name }) => ({ name, value: (await secrets.read(name)) ?? '' })),
    )
    stored = values.filter((v) => v.value !== '')
    redactor = createRedactor(stored)
    runRedactors.clear()
  }
  const keep = (text: string) => text
  /** The redactor of a run's answer: the secrets `claims` grant, the only ones it may hold. */
  const runRedact = (claims: CapabilityClaims): ((text: string) => string) => {
    const granted = [...new Set(claims.grants.secrets.map((e) => e.name))].sort()
    if (granted.length === 0) {
      return keep
    }
    const key = granted.join('\n')
    let redactRun = runRedactors.get(key)
    if (redactRun === undefined) {
      const own = createRedactor(stored.filter((v) => granted.includes(v.name)))
      redactRun = (text) => own.text(text)
      if (runRedactors.size >= 1_000) {
        runRedactors.clear()
      }
      runRedactors.set(key, redactRun)
    }
    return redactRun
  }
  await rebuildRedactor()
  // Another host's secret must be redacted here too.
  const stopSecretChanges = redisSecrets?.onChange(() => {
    void rebuildRedactor().catch(() => undefined)
  })
  const redact = (text: string) => redactor.text(text)
  const telemetry = options.telemetry ?? NO_TELEMETRY
  const capabilities: readonly Capability[] = [
    ...CAPABILITIES,
    ...(options.extraCapabilities ?? []),
  ]
  const host: CapabilityHost = {
    secrets,
    data,
    subkey: (purpose) => deriveSubkey(masterKey, purpose),
    ...(options.http ? { http: options.http } : {}),
  }

  // Also the data dir's writer lock: a second Warden on it is refused here.
  const onAppend = telemetry.enabled
    ? { onAppend: (record: AuditRecord) => telemetry.auditRecord(record) }
    : {}
  const audit: AuditLog = redis
    ? await openRedisAuditLog({
        redis,
        spoolFile: auditSpoolPath(dataDir),
        masterKey,
        redact,
        ...onAppend,
      })
    : await openAuditLog({
        file: auditLogPath(dataDir),
        signingKeyFile: auditSigningKeyPath(dataDir),
        redact,
        ...(options.auditIndexLimit ? { indexLimit: options.auditIndexLimit } : {}),
        ...onAppend,
      })
  const runtime = await createRuntime({
    dataDir,
    ...(options.poolSize ? { poolSize: options.poolSize } : {}),
    ...(options.ceilings ? { ceilings: options.ceilings } : {}),
    ...(options.isolation ? { isolation: options.isolation } : {}),
    ...(options.clockResolutionNs ? { clockResolutionNs: options.clockResolutionNs } : {}),
    ...(options.maxRunningPerApp ? { maxRunningPerApp: options.maxRunningPerApp } : {}),
    ...(options.maxQueuedPerApp ? { maxQueuedPerApp: options.maxQueuedPerApp } : {}),
    ...(options.borrowBelowMs !== undefined ? { borrowBelowMs: options.borrowBelowMs } : {}),
    ...(options.transpileWorkers ? { transpileWorkers: options.transpileWorkers } : {}),
    ...(options.transpileTimeoutMs
      ? { transpileBudget: { ...DEFAULT_TRANSPILE_BUDGET, timeoutMs: options.transpileTimeoutMs } }
      : {}),
    ...(options.loadedCacheMb ? { maxLoadedBytes: options.loadedCacheMb * 1024 * 1024 } : {}),
    brokerCapabilities: capabilities.flatMap((c) => (c.broker ? [c.broker(host)] : [])),
    ...(telemetry.enabled ? { telemetry } : {}),
  }).catch(async (error: unknown) => {
    await audit.close()
    throw error
  })
  const stopFollowing = followKillSwitch(
    killSwitch,
    disabled,
    runtime,
    options.watchdogMs ?? 1000,
    () => {
      stopSecretChanges?.()
      revocations.close?.()
    },
  )
  const policy = { maxLifetimeSeconds: options.maxTokenLifetimeSeconds, capabilities }
  // Claims this Warden verified (frozen): `run` accepts these in place of verifying again.
  const verifiedHere = new WeakSet<CapabilityClaims>()
  const assertNotRevoked = async (claims: CapabilityClaims) => {
    let checks: boolean[]
    try {
      checks = await Promise.all(
        [claims.jti, ...claims.chain].map((jti) => revocations.isRevoked(jti)),
      )
    } catch (error) {
      throw new WardenError('store_unavailable', 'the revocation list cannot be read', {
        cause: error,
      })
    }
    if (checks.some(Boolean)) {
      throw new WardenError('token_revoked', 'the token, or one it was derived from, is revoked')
    }
  }

  const admin = async (
    entry: Omit<AuditEntry, 'kind' | 'decision'> & { decision?: 'allow' | 'deny' },
  ) => {
    await audit.append({ kind: 'admin', decision: 'allow', ...entry })
  }
  // A refused action is on the record too, with its code; never the token, which is a bearer
  // credential, and only ids and digests that parse, never free text from the request.
  const refused = async (
    op: string,
    error: unknown,
    entry: Omit<AuditEntry, 'kind' | 'decision' | 'op'>,
  ) => {
    await admin({ ...entry, op, decision: 'deny', reason: toWardenError(error).code })
  }
  const appIdOf = (value: unknown) =>
    appIdSchema.safeParse(value).success ? (value as string) : null
  const digestOf = (value: unknown) =>
    digestSchema.safeParse(value).success ? (value as string) : null
  // A malformed id is refused on the record, without the free text it held.
  const checkAppId = async (op: string, appId: string, actor: string) => {
    if (appIdOf(appId) === null) {
      const error = new WardenError('invalid_request', 'not an app id')
      await refused(op, error, { actor })
      throw error
    }
  }

  async function call(
    app: LoadedComponent,
    exportName: string,
    args: unknown[],
    runOptions: RunOptions,
  ): Promise<Invocation> {
    const pre = runOptions.verified
    if (pre !== undefined && !verifiedHere.has(pre)) {
      // Host misuse, not a refusal: claims from anywhere else are never trusted.
      throw new TypeError('verified must be claims that this Warden verifyToken returned')
    }
    let claims: CapabilityClaims
    try {
      if (pre !== undefined && pre.app.digest === app.digest && pre.exp > Date.now() / 1000) {
        // Verified moments ago; only a revocation since (a load can take seconds) is news.
        await assertNotRevoked(pre)
        claims = pre
      } else {
        claims = await verifyToken(keys, runOptions.token, {
          digest: app.digest,
          revocations,
          ...policy,
        })
      }
      if (runOptions.appId !== undefined && claims.app.id !== runOptions.appId) {
        throw new WardenError('token_invalid', 'the token is for another app')
      }
    } catch (error) {
      const refusal = toWardenError(error)
      await audit.append({
        kind: 'run',
        op: 'run',
        digest: app.digest,
        decision: 'deny',
        reason: refusal.code,
      })
      throw refusal
    }
    const deny = async (reason: string) => {
      await audit.append({
        kind: 'run',
        op: 'run',
        appId: claims.app.id,
        digest: app.digest,
        tokenJti: claims.jti,
        actor: `app:${claims.app.id}`,
        decision: 'deny',
        reason,
      })
    }
    if (quotas) {
      try {
        await quotas.admit(claims.app.id, claims.jti)
      } catch (error) {
        const refusal = toWardenError(error)
        await deny(refusal.code)
        throw refusal
      }
    }
    // After the token verified: the app id is its claim. No await from here until the pool
    // has the run, so a disable either refuses it here or finds it in the pool.
    if (disabled.has(claims.app.id)) {
      await deny(APP_DISABLED.code)
      throw new WardenError(APP_DISABLED.code, APP_DISABLED.message)
    }
    const effective = effectiveGrant(app.imports, claims, capabilities)
    const redactRun = runRedact(claims)
    const invocation = await runtime.call(app, exportName, args, {
      interfaces: effective.granted,
      compiledGrants: compileGrants(effective, claims, capabilities),
      limits: claims.limits,
      appId: claims.app.id,
      tokenJti: claims.jti,
      ...(runOptions.fairness === 'token-family'
        ? { shareKey: `${claims.app.id}#${claims.chain[0] ?? claims.jti}` }
        : {}),
      ...(runOptions.onHostCall
        ? { onDecision: redactedListener(runOptions.onHostCall, redactRun) }
        : {}),
      // Passed on unread: the runtime reads it only if the run has to wait for a sandbox.
      get signal() {
        return runOptions.signal
      },
    })
    const clean = redactInvocation(capOutput(invocation, runOptions.outputCap), redactRun)
    if (quotas && clean.report.fuelUsed) {
      // After the run: a store lost meanwhile costs this run's count, not its answer.
      await quotas.addFuel(claims.app.id, claims.jti, clean.report.fuelUsed).catch(() => undefined)
    }
    const common = {
      invocationId: clean.report.invocationId,
      appId: claims.app.id,
      digest: app.digest,
      tokenJti: claims.jti,
      actor: `app:${claims.app.id}`,
    }
    // Every host call, then the run; all durable before the answer (one group commit). Calls
    // that differ in nothing a record shows share one, which counts them (audit/host-calls.ts).
    await Promise.all([
      ...groupHostCalls(clean.decisions).map(({ decision: d, calls }) =>
        audit.append({
          ...common,
          kind: 'host-call',
          capability: d.capability,
          op: d.fn,
          target: d.target ?? null,
          decision: d.decision,
          reason: d.reason ?? null,
          durationMs: d.durationMs ?? null,
          bytesOut: d.bytesOut ?? null,
          bytesIn: d.bytesIn ?? null,
          ...(calls > 1 ? { calls } : {}),
        }),
      ),
      audit.append({
        ...common,
        kind: 'run',
        op: 'run',
        decision: clean.error ? 'deny' : 'allow',
        // The error's code, which is the outcome's but where the answer was refused after a
        // run that ended well (`RunOptions.outputCap`).
        reason: clean.error?.code ?? clean.report.outcome,
        durationMs: clean.report.wallMs,
        bytesOut: clean.report.egressBytes,
        meter: {
          fuelUsed: clean.report.fuelUsed,
          fuelLimit: clean.report.fuelLimit,
          memoryPeakBytes: clean.report.memoryPeakBytes,
          memoryLimitBytes: clean.report.memoryLimitBytes,
          hostCalls: clean.report.hostCalls,
          egressBytes: clean.report.egressBytes,
        },
      }),
    ])
    return clean
  }

  // Telemetry off: the call itself, not a wrapper.
  const traced: typeof call = telemetry.enabled
    ? (app, exportName, args, o) =>
        telemetry.traceRun(app.digest, redact, () => call(app, exportName, args, o))
    : call

  return {
    runtime,
    keys,
    audit,
    telemetry,
    load: (bytes, loadOptions) => runtime.load(bytes, loadOptions),
    run: (app, input, runOptions) =>
      app.kind === 'action'
        ? traced(app, 'run', [input], runOptions)
        : Promise.reject(
            new WardenError(
              'invalid_request',
              'this component is not an action (it exports no run)',
            ),
          ),
    call: traced,
    async grantToken(request, actor = LOCAL_ADMIN) {
      let minted: MintedToken
      try {
        minted = await mintToken(keys, request, policy)
      } catch (error) {
        await refused('token.grant', error, {
          actor,
          appId: appIdOf(request.appId),
          digest: digestOf(request.digest),
        })
        throw error
      }
      await admin({
        actor,
        op: 'token.grant',
        target: minted.claims.jti,
        appId: request.appId,
        digest: request.digest,
        tokenJti: minted.claims.jti,
      })
      return minted
    },
    async attenuateToken(parentToken, request, digest) {
      // Set only once the parent verified: nothing is read from a token that did not.
      const seen: { parent?: CapabilityClaims } = {}
      let minted: MintedToken
      try {
        minted = await attenuate(keys, parentToken, request, {
          revocations,
          ...policy,
          ...(digest ? { digest } : {}),
          onParentVerified: (parent) => {
            seen.parent = parent
          },
        })
      } catch (error) {
        const { parent } = seen
        await refused('token.attenuate', error, {
          actor: parent ? `holder:${parent.jti}` : UNKNOWN_HOLDER,
          appId: parent?.app.id ?? null,
          digest: parent?.app.digest ?? digestOf(digest),
          tokenJti: parent?.jti ?? null,
        })
        throw error
      }
      await admin({
        actor: `holder:${minted.claims.parent ?? 'unknown'}`,
        op: 'token.attenuate',
        target: minted.claims.jti,
        appId: minted.claims.app.id,
        digest: minted.claims.app.digest,
        tokenJti: minted.claims.jti,
      })
      return minted
    },
    async auditTokenRefusal(op, error, actor) {
      const who = actor ?? (op === 'token.grant' ? LOCAL_ADMIN : UNKNOWN_HOLDER)
      await refused(op, error, { actor: who })
    },
    async disableApp(appId, actor = LOCAL_ADMIN) {
      await checkAppId('app.disable', appId, actor)
      disabled.add(appId)
      const ended = runtime.cancelApp(appId, APP_DISABLED)
      // Every other host: through the shared store (disabled here even if that fails).
      await killSwitch?.set(appId, true)
      await admin({ actor, op: 'app.disable', target: appId, appId })
      return ended
    },
    async enableApp(appId, actor = LOCAL_ADMIN) {
      await checkAppId('app.enable', appId, actor)
      await admin({ actor, op: 'app.enable', target: appId, appId })
      await killSwitch?.set(appId, false)
      disabled.delete(appId)
    },
    disabledApps: () => [...disabled].sort(),
    async revokeToken(jti, actor = LOCAL_ADMIN) {
      try {
        await revocations.revoke(jti)
      } catch (error) {
        // A revocation that never reached the disk is on the record as denied, so no one reads
        // the log as saying it is done. (A malformed id is refused first: free text, not kept.)
        if (toWardenError(error).code === 'store_unavailable') {
          await refused('token.revoke', error, { actor, target: jti, tokenJti: jti })
        }
        throw error
      }
      await admin({ actor, op: 'token.revoke', target: jti, tokenJti: jti })
    },
    async putSecret(name, value, actor = LOCAL_ADMIN) {
      await secrets.put(name, value)
      await rebuildRedactor()
      await admin({ actor, op: 'secret.put', target: name })
    },
    async deleteSecret(name, actor = LOCAL_ADMIN) {
      const existed = await secrets.delete(name)
      await rebuildRedactor()
      await admin({ actor, op: 'secret.delete', target: name })
      return existed
    },
    listSecrets: () => secrets.list(),
    async putData(collection, key, value, actor = LOCAL_ADMIN) {
      await data.put(collection, key, value)
      await admin({ actor, op: 'data.put', target: `${collection}/${key}` })
    },
    readData: (collection, key) => data.get(collection, key),
    async deleteData(collection, key, actor = LOCAL_ADMIN) {
      const existed = await data.delete(collection, key)
      await admin({ actor, op: 'data.delete', target: `${collection}/${key}` })
      return existed
    },
    async piiCollections() {
      const names = await data.listCollections()
      const schemas = await Promise.all(names.map((name) => data.getSchema(name)))
      return names.filter((_, i) => (schemas[i]?.piiFields.length ?? 0) > 0).sort()
    },
    async verifyToken(token, digest) {
      const claims = await verifyClaims(keys, token, {
        revocations,
        ...policy,
        ...(digest ? { digest } : {}),
      })
      // Frozen by verifyClaims: shared by every caller of the same token.
      verifiedHere.add(claims)
      return claims
    },
    async setDataSchema(collection, schema, actor = LOCAL_ADMIN) {
      await data.setSchema(collection, schema)
      await admin({ actor, op: 'data.schema', target: collection })
    },
    redact,
    async close() {
      stopFollowing()
      await runtime.close()
      await audit.close()
    },
  }
}

/**
 * @internal `value` with every secret replaced, all the way down: strings, the keys and values of lists
 * and records, and byte lists (as UTF-8). A guest may return a revealed secret in any shape.
 */
export function redactValue(
  value: unknown,
  redact: (text: string) => string,
  depth: number,
): unknown {
  if (typeof value === 'string') {
    return redact(value)
  }
  if (typeof value !== 'object' || value === null) {
    return value
  }
  if (depth > 256) {
    // Deeper than anything the channel carries: refuse to pass on what was not looked at.
    return '[redacted: too deep]'
  }
  if (value instanceof Uint8Array) {
    const decoded = Buffer.from(value).toString('utf8')
    const clean = redact(decoded)
    return clean === decoded ? value : new Uint8Array(Buffer.from(clean, 'utf8'))
  }
  if (Array.isArray(value)) {
    return value.map((item) => redactValue(item, redact, depth + 1))
  }
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    Object.defineProperty(out, redact(key), {
      value: redactValue(item, redact, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return out
}

/** `listener`, told each decision with its target and reason redacted as the answer's are. */
function redactedListener(
  listener: (decision: Decision) => void,
  redact: (text: string) => string,
): (decision: Decision) => void {
  return (d) =>
    listener({
      ...d,
      ...(d.target === undefined ? {} : { target: redact(d.target) }),
      ...(d.reason === undefined ? {} : { reason: redact(d.reason) }),
    })
}

/**
 * The invocation, or its refusal by `cap` when its output (or its guest error) carries more
 * bytes than the cap.
 */
function capOutput(invocation: Invocation, cap: RunOptions['outputCap']): Invocation {
  const stop = { bytes: cap?.bytes ?? 0, values: Number.POSITIVE_INFINITY }
  if (
    cap === undefined ||
    (payloadSize(invocation.output, stop).bytes <= cap.bytes &&
      payloadSize(invocation.guestError, stop).bytes <= cap.bytes)
  ) {
    return invocation
  }
  // The report stays the run's (it ran, and its outcome is in it); the answer is the refusal.
  const { output: _output, guestError: _guestError, ...rest } = invocation
  return { ...rest, ok: false, error: cap.error }
}

/** The invocation with every secret value replaced in everything that leaves the host. */
function redactInvocation(invocation: Invocation, redact: (text: string) => string): Invocation {
  const text = (value: unknown) => redactValue(value, redact, 0)
  return {
    ...invocation,
    ...(invocation.output === undefined ? {} : { output: text(invocation.output) }),
    ...(invocation.guestError === undefined ? {} : { guestError: text(invocation.guestError) }),
    ...(invocation.error
      ? { error: { ...invocation.error, message: redact(invocation.error.message) } }
      : {}),
    ...(invocation.report.error
      ? {
          report: {
            ...invocation.report,
            error: { ...invocation.report.error, message: redact(invocation.report.error.message) },
          },
        }
      : {}),
    logs: invocation.logs.map((line) => ({ ...line, message: redact(line.message) })),
    decisions: invocation.decisions.map((d) =>
      d.target === undefined ? d : { ...d, target: redact(d.target) },
    ),
  }
}
