/**
 * The first checks on uploaded bytes, before anything parses them: size, magic, layer.
 */
import { createHash } from 'node:crypto'
import { WardenError } from '../errors.js'

/** Default upload cap: 64 MiB (a componentize-js app is about 12 MiB). */
export const DEFAULT_MAX_COMPONENT_BYTES = 64 * 1024 * 1024

const MAGIC = [0x00, 0x61, 0x73, 0x6d]

/**
 * Refuse anything that is not a WebAssembly component: too large (`payload_too_large`),
 * a core module or garbage (`invalid_component`).
 */
export function checkComponentBytes(
  bytes: Uint8Array,
  maxBytes: number = DEFAULT_MAX_COMPONENT_BYTES,
): void {
  if (bytes.length > maxBytes) {
    throw new WardenError(
      'payload_too_large',
      `the component is ${bytes.length} bytes, above the ${maxBytes} byte cap`,
    )
  }
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new WardenError('invalid_component', 'not a WebAssembly binary (bad magic number)')
  }
  // Bytes 4..8: version (u16 LE) and layer (u16 LE). Core modules are layer 0, components 1.
  const layer = bytes[6]! | (bytes[7]! << 8)
  const version = bytes[4]! | (bytes[5]! << 8)
  if (layer === 0) {
    throw new WardenError(
      'invalid_component',
      'this is a core WebAssembly module, not a component: wrap it with `wasm-tools component new`',
    )
  }
  if (layer !== 1 || version !== 0x0d) {
    throw new WardenError(
      'invalid_component',
      `unsupported component encoding (version ${version}, layer ${layer})`,
    )
  }
}

/** `sha256:<hex>` of the bytes: the identity of a build, bound into tokens. */
export function componentDigest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}
