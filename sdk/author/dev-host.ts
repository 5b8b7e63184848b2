/**
 * The app in the real Warden host, as `warden dev` and the examples' tests run it: a data dir
 * of its own, the dev secrets and data fixtures written into Warden's stores, and a capability
 * token minted from the manifest's grants for the current build. Runs go through
 * `Warden.run`/`Warden.call` like any token's: verified, granted imports ∩ token grants, limits,
 * audit log, secrets redacted.
 *
 * Secrets come from `warden.secrets.json` (`{ "name": "value" }`, kept out of git by the
 * scaffold's .gitignore), data from `fixtures/<collection>/<key>.json` (a key may hold `/`:
 * `fixtures/crm/contacts/alice.json` is key `contacts/alice`), and a collection's PII fields
 * from `fixtures/<collection>.schema.json` (`{ "piiFields": ["email"] }`).
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve, sep } from 'node:path'
import { openWarden, resolveHostConfig, WardenError } from '../../runtime/index.js'
import type {
  Decision,
  GrantsInput,
  Invocation,
  LimitsRequest,
  LoadedComponent,
  Warden,
  WardenOptions,
} from '../../runtime/index.js'
import { generatedPaths } from './build.js'
import { manifestGrants, manifestLimits, remapGrants } from './manifest.js'
import type { Manifest } from './manifest.js'

/** Documents by collection, then key. */
export type DataFixtures = Readonly<Record<string, Readonly<Record<string, unknown>>>>

/** Options of {@link openDevHost}. */
export interface DevHostOptions {
  /** The app folder. */
  dir: string
  manifest: Manifest
  /**
   * Warden's data dir. Default: a fresh temporary folder, removed on close. Its transpile cache
   * is the app's (`.warden/runtime/cache`), so a build `warden build` validated loads at once.
   */
  dataDir?: string
  /** Secrets by name. Default: the manifest's dev secrets file (absent: none). */
  secrets?: Readonly<Record<string, string>>
  /** Documents. Default: the manifest's fixtures folder (absent: none). */
  data?: DataFixtures
  /** PII fields by collection. Default: `fixtures/<collection>.schema.json`. */
  pii?: Readonly<Record<string, readonly string[]>>
  /** Origins to move (`https://api.github.com` → `http://127.0.0.1:4123`): see `remapGrants`. */
  origins?: Readonly<Record<string, string>>
  /** Grants instead of the manifest's (a test of a narrower token). */
  grants?: GrantsInput
  /** Limits instead of the manifest's `dev.limits`. */
  limits?: LimitsRequest
  /** Test seams of the http capability (a DNS lookup, extra CA roots). */
  http?: WardenOptions['http']
}

/** An app loaded in a Warden host with a dev token. */
export interface DevHost {
  readonly warden: Warden
  readonly dataDir: string
  /** The grants of the current token. */
  readonly grants: GrantsInput
  /** Load a build and mint a token for it (the previous build's token is left to expire). */
  load(bytes: Uint8Array): Promise<LoadedComponent>
  /** Run the loaded action once with `input` (JSON text). */
  run(input: string, options?: DevRunOptions): Promise<Invocation>
  /** Serve one request with the loaded micro-app. */
  handle(request: IncomingRequest, options?: DevRunOptions): Promise<Invocation>
  close(): Promise<void>
}

/** Options of one {@link DevHost} run. */
export interface DevRunOptions {
  /**
   * Told every host call of the run once, secrets redacted: as each is decided, while the run
   * goes on (broker calls once answered; log lines, WASI writes and early denials as the
   * sandbox makes them, up to the run's `logLines`); the rest (the sandbox's past that cap, a
   * call still in flight when the run ended) in call order once it ends.
   */
  onHostCall?: (decision: Decision) => void
}

/** The WIT `incoming-request`, jco-shaped. */
export interface IncomingRequest {
  method: string
  path: string
  query: string
  headers: { name: string; value: string }[]
  body: Uint8Array
}

/** A dev token lives an hour; `warden dev` mints a new one for each build. */
const DEV_TOKEN_SECONDS = 3600

/**
 * Open Warden for the app, with its secrets and data in the stores.
 *
 * @example
 * const host = await openDevHost({ dir, manifest })
 * await host.load(built.bytes)
 * const run = await host.run('{"name":"Ada"}')
 */
export async function openDevHost(options: DevHostOptions): Promise<DevHost> {
  const dir = resolve(options.dir)
  const { manifest } = options
  const owned = options.dataDir === undefined
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'warden-dev-')))
  await shareTranspileCache(dir, dataDir)
  const secrets = options.secrets ?? (await readDevSecrets(dir, manifest))
  const fixtures = options.data ?? (await readFixtures(join(dir, manifest.dev.fixtures)))
  const pii = options.pii ?? (await readSchemas(join(dir, manifest.dev.fixtures)))
  const base = options.grants ?? manifestGrants(manifest)
  const grants = options.origins ? remapGrants(base, options.origins) : base
  const limits = options.limits ?? manifestLimits(manifest)

  const warden = await openWarden({
    ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir }),
    poolSize: 1,
    // Not a request path: a busy machine may take long to transpile a build the cache lacks.
    transpileTimeoutMs: 300_000,
    ...(options.http ? { http: options.http } : {}),
  })
  try {
    for (const [name, value] of Object.entries(secrets)) {
      await warden.putSecret(name, value, 'dev')
    }
    for (const [collection, fields] of Object.entries(pii)) {
      await warden.setDataSchema(collection, { piiFields: [...fields] }, 'dev')
    }
    for (const [collection, docs] of Object.entries(fixtures)) {
      for (const [key, doc] of Object.entries(docs)) {
        await warden.putData(collection, key, doc, 'dev')
      }
    }
  } catch (error) {
    await warden.close()
    throw error
  }

  let app: LoadedComponent | undefined
  let token = ''
  const need = () => {
    if (!app) {
      throw new WardenError('invalid_request', 'no build loaded')
    }
    return app
  }
  return {
    warden,
    dataDir,
    grants,
    async load(bytes) {
      const loaded = await warden.load(bytes, { uploader: 'dev' })
      const minted = await warden.grantToken(
        {
          appId: manifest.name,
          digest: loaded.digest,
          grants,
          limits,
          lifetimeSeconds: DEV_TOKEN_SECONDS,
        },
        'dev',
      )
      app = loaded
      token = minted.token
      return loaded
    },
    run: (input, runOptions) =>
      observed(runOptions, (onHostCall) => warden.run(need(), input, { token, ...onHostCall })),
    handle: (request, runOptions) =>
      observed(runOptions, (onHostCall) =>
        warden.call(need(), 'handler.handle', [request], { token, ...onHostCall }),
      ),
    async close() {
      await warden.close()
      if (owned) {
        await rm(dataDir, { recursive: true, force: true })
      }
    },
  }
}

/**
 * Run `start` with the listener of `options`, if any, then tell it the calls it was not told of
 * during the run (the sandbox's past its live cap, or one still in flight), so it hears each
 * call once. Every call told live is told before `start` resolves.
 */
async function observed(
  options: DevRunOptions | undefined,
  start: (listener: { onHostCall?: (decision: Decision) => void }) => Promise<Invocation>,
): Promise<Invocation> {
  const listener = options?.onHostCall
  if (!listener) {
    return start({})
  }
  const told = new Set<number>()
  const invocation = await start({
    onHostCall(decision) {
      told.add(decision.call)
      listener(decision)
    },
  })
  for (const decision of invocation.decisions) {
    if (!told.has(decision.call)) {
      try {
        listener(decision)
      } catch {
        // As during the run: an observer's failure changes nothing in the answer.
      }
    }
  }
  return invocation
}

/**
 * NB: Warden keeps transpiled components under `<dataDir>/cache`. A dev or test data dir links
 * it to the app's `.warden/runtime/cache`, where `warden build` validated the build, so the
 * 12 MB engine is transpiled once per build, not once per data dir.
 */
async function shareTranspileCache(dir: string, dataDir: string): Promise<void> {
  const shared = join(generatedPaths(dir).runtime, 'cache')
  const link = join(dataDir, 'cache')
  if (resolve(link) === resolve(shared) || existsSync(link)) {
    return
  }
  await mkdir(shared, { recursive: true })
  await mkdir(dataDir, { recursive: true })
  await symlink(shared, link, 'dir')
}

/** The dev secrets file: `{ "name": "value" }`; absent means no secrets. */
export async function readDevSecrets(
  dir: string,
  manifest: Manifest,
): Promise<Record<string, string>> {
  const file = join(dir, manifest.dev.secretsFile)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return {}
    }
    throw error
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    // Never quote the file: it holds secrets.
    throw new WardenError('invalid_request', `${manifest.dev.secretsFile} is not valid JSON`, {
      cause: error,
    })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WardenError(
      'invalid_request',
      `${manifest.dev.secretsFile} must be an object of secret names to values`,
    )
  }
  const out: Record<string, string> = {}
  for (const [name, secret] of Object.entries(value)) {
    if (typeof secret !== 'string') {
      throw new WardenError(
        'invalid_request',
        `${manifest.dev.secretsFile}: the value of ${JSON.stringify(name)} must be a string`,
      )
    }
    out[name] = secret
  }
  return out
}

/** `fixtures/<collection>/<key>.json` → documents (absent folder: none). */
export async function readFixtures(root: string): Promise<Record<string, Record<string, unknown>>> {
  const out: Record<string, Record<string, unknown>> = {}
  let collections: string[]
  try {
    collections = (await readdir(root, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return out
    }
    throw error
  }
  for (const collection of collections) {
    const docs: Record<string, unknown> = {}
    const files = await readdir(join(root, collection), { recursive: true, withFileTypes: true })
    for (const file of files) {
      if (!file.isFile() || !file.name.endsWith('.json')) {
        continue
      }
      const path = join(file.parentPath, file.name)
      const key = relative(join(root, collection), path)
        .slice(0, -'.json'.length)
        .split(sep)
        .join('/')
      try {
        docs[key] = JSON.parse(await readFile(path, 'utf8'))
      } catch (error) {
        throw new WardenError('invalid_request', `${relative(root, path)} is not valid JSON`, {
          cause: error,
        })
      }
    }
    out[collection] = docs
  }
  return out
}

/** `fixtures/<collection>.schema.json` → PII fields by collection. */
async function readSchemas(root: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {}
  let names: string[]
  try {
    names = (await readdir(root)).filter((n) => n.endsWith('.schema.json'))
  } catch {
    return out
  }
  for (const name of names) {
    const schema = JSON.parse(await readFile(join(root, name), 'utf8')) as { piiFields?: unknown }
    if (Array.isArray(schema.piiFields)) {
      out[name.slice(0, -'.schema.json'.length)] = schema.piiFields.map(String)
    }
  }
  return out
}
