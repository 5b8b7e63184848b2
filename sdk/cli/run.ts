/**
 * `warden run`: run an `action` component once and report what it cost: either as a local dev
 * run with the grants and limits given as flags ({@link runApp}), or under a capability token
 * through the assembled Warden host ({@link runWithToken}). The pure half of the command;
 * `program.ts` parses flags and prints.
 */
import { createRuntime, WardenError } from '../../runtime/index.js'
import type { Invocation, Limits, Warden } from '../../runtime/index.js'
import { loadComponentFile, readComponentFile } from './load-file.js'

/** Short names accepted by `--grant`. */
export const CAPABILITY_ALIASES: Readonly<Record<string, string>> = {
  log: 'warden:platform/log',
  http: 'warden:platform/http',
  secrets: 'warden:platform/secrets',
  data: 'warden:platform/data',
}

const NEEDS_TOKEN: ReadonlySet<string> = new Set([
  'warden:platform/http',
  'warden:platform/secrets',
  'warden:platform/data',
])

/** Process exit codes of `warden run`. */
export const EXIT = { ok: 0, wardenError: 1, usage: 2, guestError: 3 } as const

/** Options of {@link runApp}. */
export interface RunAppOptions {
  /** A `.wasm` component, or `.wat` component text. */
  file: string
  /** The JSON input handed to `run`. */
  input: string
  limits: Limits
  /** Capabilities granted: short names (`log`) or interface names. */
  grant: readonly string[]
  dataDir: string
  /** Told when a slow step starts (first transpilation of a build). */
  onProgress?: (message: string) => void
}

/** What {@link runApp} produced. */
export interface RunAppResult {
  invocation: Invocation
  exitCode: number
  /** Whether the transpiled component came from the cache. */
  cached: boolean
}

/**
 * Load `file`, run it once with `input`, and return the invocation and its exit code.
 * Throws a WardenError (with a stable code) when the component cannot be loaded at all.
 *
 * @example
 * const { invocation } = await runApp({ file: 'hello.wasm', input: '{}', limits: {}, grant: ['log'], dataDir: '.warden' })
 */
export async function runApp(options: RunAppOptions): Promise<RunAppResult> {
  checkInput(options.input)
  const grant = options.grant.map((g) => {
    const name = CAPABILITY_ALIASES[g] ?? g
    if (!/^[a-z][\w-]*:[a-z][\w-]*\/[a-z][\w-]*$/.test(name)) {
      throw new WardenError('invalid_request', `unknown capability ${JSON.stringify(g)}`)
    }
    if (NEEDS_TOKEN.has(name)) {
      // Their grants name hosts, secrets and prefixes: only a token can carry them.
      throw new WardenError('invalid_request', `${g} can only be granted by a token: use --token`)
    }
    return name
  })
  const bytes = await readComponentFile(options.file)
  const warden = await createRuntime({ dataDir: options.dataDir, poolSize: 1 })
  try {
    const slow = setTimeout(
      () =>
        options.onProgress?.(
          'transpiling and instrumenting (first run of this build; cached afterwards)…',
        ),
      300,
    )
    const app = await warden.load(bytes).finally(() => clearTimeout(slow))
    const invocation = await warden.invoke(app, options.input, {
      limits: options.limits,
      interfaces: grant,
    })
    return { invocation, exitCode: exitCodeOf(invocation), cached: app.cached }
  } finally {
    await warden.close()
  }
}

/** Options of {@link runWithToken}. */
export interface RunWithTokenOptions {
  /** A `.wasm` component, or `.wat` component text. */
  file: string
  /** The JSON input handed to `run`. */
  input: string
  /** The capability token: grants and limits come from it alone. Never printed. */
  token: string
  /** Told when a slow step starts (first transpilation of a build). */
  onProgress?: (message: string) => void
}

/**
 * Load `file` and run it once under `token` through the Warden host: the token is verified
 * (signature, expiry, this build's digest, revocation), the effective grant is the component's
 * imports ∩ the token's grants, the limits are the token's, and the run is audited.
 * Throws `token_invalid`, `token_expired` or `token_revoked` for a token that does not allow
 * the run, and what loading throws; a run that fails is a value, as for {@link runApp}.
 *
 * @example
 * const { invocation } = await runWithToken(warden, { file: 'hello.wasm', input: '{}', token })
 */
export async function runWithToken(
  warden: Warden,
  options: RunWithTokenOptions,
): Promise<RunAppResult> {
  checkInput(options.input)
  const app = await loadComponentFile(warden, options.file, options.onProgress)
  const invocation = await warden.run(app, options.input, { token: options.token.trim() })
  return { invocation, exitCode: exitCodeOf(invocation), cached: app.cached }
}

/** The exit code of a finished run: ok, a Warden error, or the guest's own `err`. */
export function exitCodeOf(invocation: Invocation): number {
  return invocation.ok ? EXIT.ok : invocation.error ? EXIT.wardenError : EXIT.guestError
}

function checkInput(input: string): void {
  try {
    JSON.parse(input)
  } catch {
    throw new WardenError('invalid_request', '--input must be JSON')
  }
}
