/**
 * The safe WASI 0.2.x baseline: the interfaces a component may import without a grant because
 * Warden answers them inside the worker with no host authority behind them. Clocks, randomness,
 * an empty environment, an always-closed stdin, stdout/stderr into the run's log, and the
 * `wasi:io` plumbing those need. Filesystem, sockets and HTTP are not listed: they are refused.
 */
import type { CapabilityDescriptor } from '../types.js'

/** The WASI 0.2 versions each descriptor lists; {@link isWasiBaselineVersion} accepts any 0.2.x. */
export const WASI_BASELINE_VERSIONS: readonly string[] = Object.freeze(
  Array.from({ length: 11 }, (_, patch) => `0.2.${patch}`),
)

const VERSION = /^0\.2\.(0|[1-9]\d{0,8})$/

/** True for any released WASI 0.2 version (`0.2.0`, `0.2.7`, …); false for prereleases. */
export function isWasiBaselineVersion(v: string): boolean {
  return VERSION.test(v)
}

function wasi(iface: string, functions: readonly string[]): CapabilityDescriptor {
  return Object.freeze({
    interface: iface,
    versions: WASI_BASELINE_VERSIONS,
    functions: Object.freeze([...functions]),
    side: 'worker',
  })
}

/** One descriptor per baseline interface, keyed as jco keys imports (no version). */
export const WASI_BASELINE: readonly CapabilityDescriptor[] = Object.freeze([
  wasi('wasi:clocks/wall-clock', ['now', 'resolution']),
  wasi('wasi:clocks/monotonic-clock', [
    'now',
    'resolution',
    'subscribeInstant',
    'subscribeDuration',
  ]),
  wasi('wasi:random/random', ['getRandomBytes', 'getRandomU64']),
  wasi('wasi:random/insecure', ['getInsecureRandomBytes', 'getInsecureRandomU64']),
  wasi('wasi:random/insecure-seed', ['insecureSeed']),
  wasi('wasi:cli/environment', ['getEnvironment', 'getArguments', 'initialCwd']),
  wasi('wasi:cli/exit', ['exit', 'exitWithCode']),
  wasi('wasi:cli/stdin', ['getStdin']),
  wasi('wasi:cli/stdout', ['getStdout']),
  wasi('wasi:cli/stderr', ['getStderr']),
  wasi('wasi:cli/terminal-input', ['TerminalInput']),
  wasi('wasi:cli/terminal-output', ['TerminalOutput']),
  wasi('wasi:cli/terminal-stdin', ['getTerminalStdin']),
  wasi('wasi:cli/terminal-stdout', ['getTerminalStdout']),
  wasi('wasi:cli/terminal-stderr', ['getTerminalStderr']),
  wasi('wasi:io/error', ['Error']),
  wasi('wasi:io/poll', ['Pollable', 'poll']),
  wasi('wasi:io/streams', ['InputStream', 'OutputStream']),
])
