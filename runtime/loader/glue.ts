/**
 * jco's glue, generated from an untrusted component, checked and turned into a function body
 * the sandbox worker can evaluate synchronously.
 */
import { WardenError } from '../errors.js'

/**
 * In instantiation mode the glue must not load anything itself: every import comes from us,
 * every core module from `getCoreModule`.
 */
export function checkGlue(glue: string): void {
  const forbidden = [
    /^\s*import\s/m,
    /\bimport\s*\(/,
    /\brequire\s*\(/,
    /WebAssembly\.(compile|compileStreaming|instantiateStreaming|Module)\b/,
  ]
  if (forbidden.some((pattern) => pattern.test(glue))) {
    throw new WardenError('invalid_component', 'the generated bindings would load code of their own')
  }
}

const HEAD = 'export function instantiate('

/**
 * The glue as the body of a function that returns `instantiate`. jco 1.11.2's sync
 * instantiation glue is exactly one exported function; anything else is refused rather than
 * guessed at.
 *
 * @example
 * const instantiate = new Function(glueFunctionBody(glue))()
 */
export function glueFunctionBody(glue: string): string {
  checkGlue(glue)
  if (!glue.startsWith(HEAD) || (glue.match(/^export\b/gm) ?? []).length !== 1) {
    throw new WardenError('invalid_component', 'the generated bindings have an unexpected shape')
  }
  return `'use strict';\n${glue.slice('export '.length)}\nreturn instantiate\n`
}
