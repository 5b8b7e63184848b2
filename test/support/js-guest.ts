/**
 * JavaScript guests for tests: `test/guests/js/<name>.js`, built into a real component with
 * componentize-js against the `guest` world below (platform `log` + the test-only `echo`).
 *
 * A build takes ~25 s, so the bytes are cached on disk under
 * `node_modules/.cache/warden-test/<sha256>.wasm`, keyed by the guest source, every WIT text and
 * the componentize-js version; a changed input is a new key, never a stale hit. Within one
 * process, concurrent callers of the same guest share one build.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The default world of a JS guest (`buildJsGuest`'s second argument may name another). */
export const JS_GUEST_WORLD = `package warden:test-guest;

world guest {
  import warden:platform/log@0.1.0;
  import warden:test/echo@0.1.0;
  export run: func(input: string) -> result<string, string>;
}
`

/** The world of `platform.js`: log and the three broker capabilities. */
export const PLATFORM_GUEST_WORLD = `package warden:test-guest;

world guest {
  import warden:platform/log@0.1.0;
  import warden:platform/http@0.1.0;
  import warden:platform/secrets@0.1.0;
  import warden:platform/data@0.1.0;
  export run: func(input: string) -> result<string, string>;
}
`

const ROOT = new URL('../../', import.meta.url)
const PLATFORM_WIT = new URL('wit/platform.wit', ROOT)
const ECHO_WIT = new URL('host-capabilities/test-echo/echo.wit', ROOT)
const COMPONENTIZE_PACKAGE = new URL(
  'node_modules/@bytecodealliance/componentize-js/package.json',
  ROOT,
)
const CACHE_DIR = new URL('node_modules/.cache/warden-test/', ROOT)

const builds = new Map<string, Promise<Uint8Array>>()

/**
 * The world of a JS HTTP micro-app: the `handler` export, and `log` (so it stays low risk).
 * The `guest` world name is what {@link buildJsGuest} builds.
 */
export const JS_MICRO_APP_WORLD = `package warden:test-guest;

world guest {
  import warden:platform/log@0.1.0;
  export warden:platform/handler@0.1.0;
}
`

/**
 * The component built from `test/guests/js/<name>.js` (or the file `source`, e.g. an example):
 * from the disk cache when its inputs are unchanged, else built (~25 s) and cached.
 *
 * @example
 * const app = await warden.load(await buildJsGuest('bridge'))
 */
export function buildJsGuest(
  name: string,
  world: string = JS_GUEST_WORLD,
  source: URL = new URL(`../guests/js/${name}.js`, import.meta.url),
): Promise<Uint8Array> {
  if (!/^[\w-]+$/.test(name)) {
    return Promise.reject(new TypeError(`not a guest name: ${name}`))
  }
  const memo = `${name}\u0000${world}\u0000${source.href}`
  let build = builds.get(memo)
  if (!build) {
    build = loadOrBuild(name, world, source)
    builds.set(memo, build)
    // A failed build is not memoised: the next caller retries.
    build.catch(() => builds.delete(memo))
  }
  return build
}

async function loadOrBuild(name: string, world: string, sourceFile: URL): Promise<Uint8Array> {
  const [source, platformWit, echoWit, pkg] = await Promise.all([
    readFile(sourceFile, 'utf8'),
    readFile(PLATFORM_WIT, 'utf8'),
    readFile(ECHO_WIT, 'utf8'),
    readFile(COMPONENTIZE_PACKAGE, 'utf8'),
  ])
  const version = (JSON.parse(pkg) as { version: string }).version
  const key = createHash('sha256')
  for (const part of [source, world, platformWit, echoWit, version]) {
    // Length-prefixed, so moving text from one part to the next changes the key.
    key.update(`${part.length}:`).update(part)
  }
  const cached = fileURLToPath(new URL(`${key.digest('hex')}.wasm`, CACHE_DIR))
  try {
    return new Uint8Array(await readFile(cached))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw error
    }
  }
  const bytes = await componentizeGuest(name, source, world, platformWit, echoWit)
  await mkdir(CACHE_DIR, { recursive: true })
  const partial = `${cached}.${process.pid}.${randomUUID()}.tmp`
  await writeFile(partial, bytes)
  await rename(partial, cached)
  return bytes
}

async function componentizeGuest(
  name: string,
  source: string,
  world: string,
  platformWit: string,
  echoWit: string,
): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-js-guest-'))
  try {
    await mkdir(join(dir, 'wit', 'deps', 'platform'), { recursive: true })
    await mkdir(join(dir, 'wit', 'deps', 'test'), { recursive: true })
    await Promise.all([
      writeFile(join(dir, 'wit', 'world.wit'), world),
      writeFile(join(dir, 'wit', 'deps', 'platform', 'platform.wit'), platformWit),
      writeFile(join(dir, 'wit', 'deps', 'test', 'echo.wit'), echoWit),
      writeFile(join(dir, `${name}.js`), source),
    ])
    // Imported lazily: a cache hit never loads the engine.
    const { componentize } = await import('@bytecodealliance/componentize-js')
    const { component } = await componentize({
      sourcePath: join(dir, `${name}.js`),
      witPath: join(dir, 'wit'),
      worldName: 'guest',
      disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
    })
    return component
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
