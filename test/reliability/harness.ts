/**
 * What the fuzzer does with one input, shared by the fuzz child (`fuzz-child.ts`) and the
 * in-process slice in `npm test` (`test/fuzz-slice.test.ts`): load it through the runtime's
 * public front door, run it when it loads as an action, and sort what came back into a stable
 * code or an uncoded error (a finding).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime, WARDEN_ERROR_CODES, WardenError } from '../../runtime/index.js'
import type { LoadedComponent, Limits, WardenRuntime } from '../../runtime/index.js'

/** Limits of every fuzz run: small, so a mutant that loads costs milliseconds. */
export const FUZZ_LIMITS: Readonly<Limits> = Object.freeze({
  fuel: 10_000_000,
  memoryMb: 16,
  timeoutMs: 500,
  hostCalls: 50,
})

/** Transpile budget of the fuzz runtime: jco's hostile inputs stop here (default 120 s). */
export const FUZZ_TRANSPILE_BUDGET = Object.freeze({ timeoutMs: 3_000, maxHeapMb: 256 })

const LOG = 'warden:platform/log'

/** What one input came to. */
export interface FuzzOutcome {
  /**
   * `load <code>` for a refused load; `load ok (<kind>)` for a component that loaded but is no
   * action; `run ok`, `run err` (the guest's own error) or `run <code>` for an action's run.
   */
  outcome: string
  /** Wall time of `load`, in ms. */
  loadMs: number
  /** Wall time of `invoke`, in ms (0 when it did not run). */
  runMs: number
  /** An error without a stable code (not a `WardenError` with a code of WARDEN_ERROR_CODES). */
  uncoded?: string
  /** The error's message and its cause's, for `--only`. */
  detail?: string
}

/** A fuzz runtime on its own temporary data dir. */
export interface FuzzRuntime {
  warden: WardenRuntime
  dataDir: string
  close(): Promise<void>
}

/**
 * A runtime for fuzzing: one sandbox worker, the short transpile budget, a fresh data dir.
 *
 * @example
 * const rt = await startFuzzRuntime()
 * const outcome = await fuzzOne(rt.warden, bytes)
 * await rt.close()
 */
export async function startFuzzRuntime(
  budget: { timeoutMs: number; maxHeapMb: number } = FUZZ_TRANSPILE_BUDGET,
): Promise<FuzzRuntime> {
  const dataDir = await mkdtemp(join(tmpdir(), 'warden-fuzz-'))
  const warden = await createRuntime({ dataDir, poolSize: 1, transpileBudget: budget })
  await warden.pool.warm()
  return {
    warden,
    dataDir,
    async close() {
      await warden.close()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

function isCoded(error: unknown): error is WardenError {
  return (
    error instanceof WardenError && (WARDEN_ERROR_CODES as readonly string[]).includes(error.code)
  )
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const { cause } = error
    const why = cause instanceof Error ? ` (cause: ${cause.name}: ${cause.message})` : ''
    return `${error.name}: ${error.message}${why}`.slice(0, 600)
  }
  return `thrown ${typeof error}: ${String(error)}`.slice(0, 600)
}

/**
 * Load `bytes`; when it is an action, invoke it once with {@link FUZZ_LIMITS} and `log` granted.
 * Never throws: whatever escapes becomes an outcome, or an `uncoded` finding. A refusal that
 * took the whole transpile budget (`deadlineMs`) is marked `(transpile deadline)`.
 */
export async function fuzzOne(
  warden: WardenRuntime,
  bytes: Uint8Array,
  deadlineMs: number = FUZZ_TRANSPILE_BUDGET.timeoutMs,
): Promise<FuzzOutcome> {
  const loadStart = performance.now()
  let app: LoadedComponent
  try {
    app = await warden.load(bytes)
  } catch (error) {
    const loadMs = performance.now() - loadStart
    if (isCoded(error)) {
      const late = loadMs >= deadlineMs ? ' (transpile deadline)' : ''
      const detail = describeError(error)
      return { outcome: `load ${error.code}${late}`, loadMs, runMs: 0, detail }
    }
    return { outcome: 'load uncoded', loadMs, runMs: 0, uncoded: describeError(error) }
  }
  const loadMs = performance.now() - loadStart
  if (app.kind !== 'action') {
    return { outcome: `load ok (${app.kind})`, loadMs, runMs: 0 }
  }
  const runStart = performance.now()
  try {
    const run = await warden.invoke(app, 'fuzz', {
      limits: FUZZ_LIMITS,
      interfaces: [LOG],
      appId: 'fuzz',
    })
    const runMs = performance.now() - runStart
    if (run.ok) {
      return { outcome: 'run ok', loadMs, runMs }
    }
    if (run.guestError !== undefined) {
      return { outcome: 'run err', loadMs, runMs }
    }
    const code = run.error?.code
    if ((WARDEN_ERROR_CODES as readonly string[]).includes(String(code))) {
      return { outcome: `run ${code}`, loadMs, runMs, detail: run.error?.message ?? '' }
    }
    const uncoded = `run failed without a stable code: ${JSON.stringify(run.error)}`
    return { outcome: 'run uncoded', loadMs, runMs, uncoded }
  } catch (error) {
    // `invoke` never throws for an action: a thrown error, coded or not, is a finding.
    const runMs = performance.now() - runStart
    return { outcome: 'run threw', loadMs, runMs, uncoded: `invoke threw ${describeError(error)}` }
  }
}

/**
 * The host is alive and well: `echo` loads (cached) and echoes its input. Returns what went
 * wrong, or undefined.
 *
 * @example
 * expect(await hostProblem(rt.warden, echoBytes)).toBeUndefined()
 */
export async function hostProblem(
  warden: WardenRuntime,
  echo: Uint8Array,
): Promise<string | undefined> {
  try {
    const app = await warden.load(echo)
    const run = await warden.invoke(app, 'still here', { appId: 'health' })
    if (run.ok && run.output === 'still here') {
      return undefined
    }
    return `echo answered ${JSON.stringify(run.error ?? run.output)}`
  } catch (error) {
    return `echo failed: ${describeError(error)}`
  }
}

/** Counts by key, printed largest first. */
export class Tally {
  readonly counts = new Map<string, number>()

  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n)
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0
  }

  /** `  <key padded>  <count>` lines, largest count first. */
  lines(indent = '  '): string[] {
    const rows = [...this.counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    const width = Math.max(0, ...rows.map(([k]) => k.length))
    return rows.map(([k, n]) => `${indent}${k.padEnd(width)}  ${String(n).padStart(7)}`)
  }
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`
}

/** Parse `--name value` flags (and `--flag` booleans) against the known names. */
export function parseFlags(
  argv: readonly string[],
  known: Readonly<Record<string, 'number' | 'string' | 'boolean'>>,
): Record<string, number | string | boolean> {
  const out: Record<string, number | string | boolean> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [key, inline] = arg.startsWith('--') ? arg.slice(2).split('=', 2) : [undefined, undefined]
    const kind = key === undefined ? undefined : known[key]
    if (key === undefined || kind === undefined) {
      const names = Object.keys(known).map((k) => `--${k}`)
      throw new TypeError(`unknown argument ${arg} (known: ${names.join(', ')})`)
    }
    if (kind === 'boolean') {
      out[key] = true
      continue
    }
    const raw = inline ?? argv[++i]
    if (raw === undefined) {
      throw new TypeError(`--${key} needs a value`)
    }
    if (kind === 'number') {
      const value = Number(raw)
      if (!Number.isFinite(value) || value < 0) {
        throw new TypeError(`--${key} must be a non-negative number, got ${raw}`)
      }
      out[key] = value
    } else {
      out[key] = raw
    }
  }
  return out
}
