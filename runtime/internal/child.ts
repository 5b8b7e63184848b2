/**
 * Fork a Node child process from a module next to the caller, in both layouts Warden runs in:
 * compiled JavaScript (`dist/`, production) and TypeScript sources (vitest, `tsx`).
 */
import { fork } from 'node:child_process'
import type { ChildProcess, ForkOptions } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** Options of {@link forkChild}. */
export interface ForkChildOptions {
  /** The child's whole environment: nothing of `process.env` is passed unless listed here. */
  env: Record<string, string>
  /** Node flags of the child (`--max-old-space-size=…`); the parent's are not inherited. */
  execArgv: readonly string[]
  /** Default `['ignore', 'ignore', 'pipe', 'ipc']`: stderr is kept for diagnosis. */
  stdio?: ForkOptions['stdio']
}

/**
 * `child_process.fork` of the sibling module `name` (without extension) of `callerUrl`, with
 * structured-clone messages (`serialization: 'advanced'`: a `Uint8Array` crosses as bytes, not
 * base64), an explicit environment and explicit Node flags. From TypeScript sources the child
 * loads tsx first.
 *
 * @example
 * const child = forkChild(import.meta.url, './transpile-child', { env: {}, execArgv: ['--max-old-space-size=512'] })
 */
export function forkChild(
  callerUrl: string,
  name: string,
  options: ForkChildOptions,
): ChildProcess {
  const typescript = callerUrl.endsWith('.ts')
  const entry = fileURLToPath(new URL(`${name}.${typescript ? 'ts' : 'js'}`, callerUrl))
  // NB: tsx is a dev dependency, resolved only from the sources; `dist/` never needs it.
  const loader = typescript ? ['--import', import.meta.resolve('tsx')] : []
  return fork(entry, [], {
    env: options.env,
    execArgv: [...options.execArgv, ...loader],
    serialization: 'advanced',
    stdio: options.stdio ?? ['ignore', 'ignore', 'pipe', 'ipc'],
  })
}
