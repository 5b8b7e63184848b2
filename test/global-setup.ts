/**
 * Vitest global setup: make `dist/` current before any test starts. The sandbox process
 * (`isolation: 'process'`) always runs compiled JavaScript from `dist/`, even when the tests
 * run the TypeScript sources, so a stale build would test old code in the child.
 *
 * It builds only when a source is newer than the build (`tsc -p tsconfig.json`, ~1 s with
 * TypeScript 7), once per vitest run rather than per file, and it never fails the run on a type
 * error: `npm run typecheck` reports those; the emitted JavaScript is what the child needs.
 * Then it prepares the built-in JS agent (`runtime/agent/prepare.ts`), so that test files
 * running in parallel never build it twice.
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SOURCES = ['core', 'runtime', 'host-capabilities', 'sdk', 'control-plane']
const STAMP = join(ROOT, 'dist', 'runtime', 'sandbox', 'process', 'child.js')

function newestSource(dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      newest = Math.max(newest, newestSource(path))
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      newest = Math.max(newest, statSync(path).mtimeMs)
    }
  }
  return newest
}

function builtAt(): number {
  try {
    return statSync(STAMP).mtimeMs
  } catch {
    return 0
  }
}

/**
 * Rebuild `dist/` when any source is newer than it, and make sure the built-in JS agent is
 * built and prepared (once per vitest run; a cache hit takes a second, a cold build 25–45 s).
 */
export function setup(): void {
  buildDist()
  // From dist/, in a child: the global setup cannot start the sandbox's worker threads.
  execFileSync(process.execPath, [join(ROOT, 'dist', 'runtime', 'agent', 'prepare-main.js')], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}

function buildDist(): void {
  const newest = Math.max(...SOURCES.map((dir) => newestSource(join(ROOT, dir))))
  if (builtAt() >= newest) {
    return
  }
  const started = Date.now()
  try {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'pipe' })
  } catch (error) {
    // Type errors still emit; only a build that wrote nothing is a failure here.
    if (builtAt() < started - 1000) {
      throw error
    }
  }
}
