/**
 * The one error type of the rewriter, the proposals it refuses by name, and the helpers that
 * build its messages (always with the byte offset where the input went wrong).
 */

/**
 * Proposals a module may not use, as named in the error. Shared memories would let a guest
 * block in `memory.atomic.wait` where no fuel is charged and share state past one run; a second
 * memory would double the memory cap, which is checked per memory; the others V8 in Node 20
 * only runs behind a flag.
 */
export const REFUSED_FEATURES = Object.freeze({
  shared: 'shared memories (threads)',
  multiMemory: 'multiple memories (multi-memory)',
  memory64: 'memory64',
  relaxedSimd: 'relaxed SIMD',
  extendedConst: 'extended constant expressions',
  exnref: 'exception references (exnref)',
} as const)

/**
 * The module is malformed, or uses something the rewriter does not support (it fails closed).
 *
 * @example
 * try {
 *   instrumentModule(bytes, opts)
 * } catch (err) {
 *   if (err instanceof InstrumentError) reject(err.message)
 * }
 */
export class InstrumentError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'InstrumentError'
  }
}

export function malformed(what: string, at: number): InstrumentError {
  return new InstrumentError(`malformed module: ${what} (at byte offset ${at})`)
}

export function unsupported(what: string, at: number): InstrumentError {
  return new InstrumentError(`unsupported module: ${what} (at byte offset ${at})`)
}

export function refused(feature: string, at: number): InstrumentError {
  return new InstrumentError(
    `unsupported module: it uses ${feature}, which Warden does not run (at byte offset ${at})`,
  )
}
