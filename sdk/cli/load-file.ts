/**
 * Read a component from disk: `.wasm` bytes as they are, `.wat` (component-model text)
 * compiled with jco's `parse`, for quick experiments.
 */
import { readFile } from 'node:fs/promises'
import { parse } from '@bytecodealliance/jco'
import { WardenError } from '../../runtime/errors.js'

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
