/**
 * Read a component from disk: `.wasm` bytes as they are, `.wat` (component-model text)
 * compiled with jco's `parse` in a budgeted child process, for quick experiments. Only regular files
 * are read, up to a cap.
 */
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { DEFAULT_MAX_COMPONENT_BYTES, Transpiler, WardenError } from '../../runtime/index.js'
import type { LoadedComponent, TranspileBudget } from '../../runtime/index.js'

/** Largest `.wat` text read: 16 MiB (the text of a 64 MiB component would not be typed by hand). */
export const MAX_WAT_BYTES = 16 * 1024 * 1024

/** Options of {@link readComponentFile}. */
export interface ReadComponentOptions {
  /** Cap of a `.wasm` file, in bytes. Default 64 MiB, the loader's. */
  maxComponentBytes?: number
  /** Cap of a `.wat` file, in bytes. Default {@link MAX_WAT_BYTES}. */
  maxWatBytes?: number
  /** Budget of compiling WAT text. Default the transpile budget (20 s, 1 GiB). */
  budget?: TranspileBudget
}

/**
 * The bytes of the component at `path`. Throws `invalid_request` (unreadable, or not a regular
 * file: a FIFO or a device would block or never end), `payload_too_large` (over the cap) or
 * `invalid_component` (WAT that does not compile within the budget).
 *
 * @example
 * const bytes = await readComponentFile('examples/hello/hello.wat')
 */
export async function readComponentFile(
  path: string,
  options: ReadComponentOptions = {},
): Promise<Uint8Array> {
  const wat = path.endsWith('.wat')
  const cap = wat
    ? (options.maxWatBytes ?? MAX_WAT_BYTES)
    : (options.maxComponentBytes ?? DEFAULT_MAX_COMPONENT_BYTES)
  const content = await readRegularFile(path, cap)
  if (!wat) {
    return content
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(content)
  } catch (error) {
    throw new WardenError('invalid_component', `${path} is not UTF-8 text`, { cause: error })
  }
  // jco's parser runs in a child process: hostile text can only waste that process, for the budget.
  const transpiler = new Transpiler({
    workers: 1,
    ...(options.budget ? { budget: options.budget } : {}),
  })
  try {
    return await transpiler.parseWat(text, 'cli')
  } catch (error) {
    if (error instanceof WardenError && error.code === 'invalid_component') {
      throw new WardenError('invalid_component', `${path}: ${error.message}`, { cause: error })
    }
    throw error
  } finally {
    await transpiler.close()
  }
}

/** The whole content of the regular file at `path`, at most `cap` bytes. */
async function readRegularFile(path: string, cap: number): Promise<Uint8Array<ArrayBuffer>> {
  let handle: FileHandle
  try {
    // NB: without O_NONBLOCK, opening a FIFO waits for a writer, forever.
    handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0))
  } catch (error) {
    throw new WardenError('invalid_request', `cannot read ${path}`, { cause: error })
  }
  try {
    const stat = await handle.stat()
    if (!stat.isFile()) {
      throw new WardenError('invalid_request', `${path} is not a regular file`)
    }
    if (stat.size > cap) {
      throw new WardenError(
        'payload_too_large',
        `${path} is ${stat.size} bytes, above the ${cap} byte cap`,
      )
    }
    // One byte more than expected: a file that grew while being read is noticed.
    const buffer = new Uint8Array(stat.size + 1)
    let read = 0
    for (;;) {
      const { bytesRead } = await handle.read(buffer, read, buffer.length - read, read)
      if (bytesRead === 0) {
        break
      }
      read += bytesRead
      if (read === buffer.length) {
        throw new WardenError('invalid_request', `${path} changed while it was read`)
      }
    }
    return buffer.subarray(0, read)
  } catch (error) {
    if (error instanceof WardenError) {
      throw error
    }
    throw new WardenError('invalid_request', `cannot read ${path}`, { cause: error })
  } finally {
    await handle.close()
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
