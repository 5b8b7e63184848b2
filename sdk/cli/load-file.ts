/**
 * Read a component from disk: `.wasm` bytes as they are, `.wat` (component-model text)
 * compiled with jco's `parse`, for quick experiments.
 */
import { readFile } from 'node:fs/promises'
import { parse } from '@bytecodealliance/jco'
import { WardenError } from '../../runtime/errors.js'
import type { LoadedComponent } from '../../runtime/loader/load.js'

/** The bytes of the component at `path`. Throws `invalid_request` or `invalid_component`. */
export async function readComponentFile(path: string): Promise<Uint8Array> {
  let content: Buffer
  try {
    content = await readFile(path)
  } catch (error) {
    throw new WardenError('invalid_request', `cannot read ${path}`, { cause: error })
  }
  if (!path.endsWith('.wat')) {
    return new Uint8Array(content)
  }
  try {
    return await parse(content.toString('utf8'))
  } catch (error) {
    const detail = String(error instanceof Error ? error.message : error).split('\n')[0]
    throw new WardenError('invalid_component', `${path} is not valid WAT: ${detail}`, { cause: error })
  }
}

const SLOW_LOAD_MESSAGE =
  'transpiling and instrumenting (first run of this build; cached afterwards)…'

/**
 * Read the component at `path` and load it into `host` (a runtime or an open Warden), telling
 * `onProgress` when the load is slow: the first transpilation of a build takes seconds.
 *
 * @example
 * const app = await loadComponentFile(warden, 'examples/hello/hello.wat')
 */
export async function loadComponentFile(
  host: { load(bytes: Uint8Array): Promise<LoadedComponent> },
  path: string,
  onProgress?: (message: string) => void,
): Promise<LoadedComponent> {
  const bytes = await readComponentFile(path)
  const slow = setTimeout(() => onProgress?.(SLOW_LOAD_MESSAGE), 300)
  try {
    return await host.load(bytes)
  } finally {
    clearTimeout(slow)
  }
}
