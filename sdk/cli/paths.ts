import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The folder holding Warden's package.json, from sources (`sdk/cli`) or the build (`dist/sdk/cli`). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) || dir.endsWith('dist')) {
    const parent = dirname(dir)
    if (parent === dir) {
      throw new Error('cannot find the warden package root')
    }
    dir = parent
  }
  return dir
}
