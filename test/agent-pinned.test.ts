/**
 * The built-in `js` app keeps its digest across installs and hosts: componentize-js builds are
 * not byte-reproducible, so a server whose registry already holds a `js` build of the same
 * inputs (its build key) adopts those bytes instead of its own build. A version of other
 * inputs, or a stored blob that no longer hashes to its digest, is not adopted.
 *
 * "Another install's build" is the real agent with a custom section appended: the same engine,
 * different bytes, as a second `npm ci` produces. Each case uses its own build cache (a copy of
 * the prepared one), never the shared one other test files read.
 */
import { createHash } from 'node:crypto'
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prepareAgentApp } from '../control-plane/agent.js'
import { openAppRegistry } from '../control-plane/registry.js'
import type { AppRegistry } from '../control-plane/registry.js'
import { assessRisk } from '../control-plane/risk.js'
import {
  AGENT_APP_NAME,
  agentAnswer,
  agentBuildKey,
  agentCacheDir,
  agentComponent,
  agentRequest,
} from '../runtime/index.js'
import type { LoadedComponent } from '../runtime/index.js'
import { openTestWarden } from './support/warden.js'
import type { TestWarden } from './support/warden.js'

const digestOf = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`

/** `bytes` with a component-level custom section appended: another build of the same agent. */
function rebuilt(bytes: Uint8Array): Uint8Array {
  const name = Buffer.from('warden-test-rebuild')
  const payload = Buffer.concat([Buffer.from([name.length]), name, Buffer.from('another install')])
  return Buffer.concat([bytes, Buffer.from([0x00, payload.length]), payload])
}

let host: TestWarden
let registry: AppRegistry
let ours: Uint8Array
/** This install's build, loaded (from test 1). */
let first: LoadedComponent
let buildKey: string
const dirs: string[] = []

/** A build cache holding a copy of the prepared agent (no 40 s build, no shared writes). */
async function cacheCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-agent-cache-'))
  dirs.push(dir)
  await cp(agentCacheDir(), dir, { recursive: true })
  return dir
}

async function twoPlusTwo(component: LoadedComponent): Promise<unknown> {
  const answer = agentAnswer(
    await host.warden.runtime.invoke(component, agentRequest('return 2 + 2', null), {
      appId: 'test',
    }),
  )
  return answer.ok ? answer.value : answer
}

/** Register `bytes` as the current `js` version, built from `key`. */
async function registerAs(bytes: Uint8Array, key: string): Promise<void> {
  const component = first
  await registry.putBlob(digestOf(bytes), bytes)
  await registry.registerBuiltin({
    name: AGENT_APP_NAME,
    digest: digestOf(bytes),
    sizeBytes: bytes.byteLength,
    kind: component.kind,
    imports: component.imports,
    exports: component.world.exports.map((e) => e.name),
    risk: assessRisk(component.imports, []),
    buildKey: key,
  })
}

beforeAll(async () => {
  ours = await agentComponent()
  buildKey = await agentBuildKey()
  host = await openTestWarden()
  registry = await openAppRegistry(host.dataDir)
}, 300_000)

afterAll(async () => {
  await host?.close()
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

describe('the built-in js app across installs', () => {
  it('registers this install build with its build key', async () => {
    const cacheDir = await cacheCopy()
    const component = await prepareAgentApp(host.warden, registry, { cacheDir })
    expect(component?.digest).toBe(digestOf(ours))
    expect(registry.get(AGENT_APP_NAME)?.versions.at(-1)?.buildKey).toBe(buildKey)
    first = component!
  })

  it("adopts the deployment's build of the same inputs, keeps its digest, and runs it", async () => {
    const theirs = rebuilt(ours)
    await registerAs(theirs, buildKey)
    const cacheDir = await cacheCopy()
    const logs: string[] = []
    const component = await prepareAgentApp(host.warden, registry, {
      cacheDir,
      log: (m) => logs.push(m),
    })
    expect(component?.digest).toBe(digestOf(theirs))
    expect(registry.get(AGENT_APP_NAME)?.digest).toBe(digestOf(theirs))
    expect(logs.some((m) => m.includes('as this deployment registered it'))).toBe(true)
    expect(await twoPlusTwo(component!)).toBe(4)
    // The cache now holds their bytes (and only their transpile entry): a restart is quick.
    expect(digestOf(await readFile(join(cacheDir, `${buildKey}.wasm`)))).toBe(digestOf(theirs))
    const entries = await readdir(join(cacheDir, 'cache', 'components'))
    expect(entries.every((e) => e.startsWith(digestOf(theirs).slice(7)))).toBe(true)

    const again: string[] = []
    const restarted = await prepareAgentApp(host.warden, registry, {
      cacheDir,
      log: (m) => again.push(m),
    })
    expect(restarted?.digest).toBe(digestOf(theirs))
    expect(again).toEqual([])
  }, 600_000)

  it('does not adopt a build of other inputs (another Warden version): it runs its own', async () => {
    await registerAs(rebuilt(rebuilt(ours)), 'f'.repeat(64))
    const cacheDir = await cacheCopy()
    const component = await prepareAgentApp(host.warden, registry, { cacheDir })
    expect(component?.digest).toBe(digestOf(ours))
    expect(digestOf(await readFile(join(cacheDir, `${buildKey}.wasm`)))).toBe(digestOf(ours))
  })

  it('does not adopt a stored blob that no longer hashes to its digest', async () => {
    const theirs = rebuilt(rebuilt(rebuilt(ours)))
    await registerAs(theirs, buildKey)
    const blob = join(host.dataDir, 'blobs', 'sha256', `${digestOf(theirs).slice(7)}.wasm`)
    const tampered = Buffer.from(theirs)
    tampered[tampered.length - 1] ^= 1
    await writeFile(blob, tampered)
    const cacheDir = await cacheCopy()
    const component = await prepareAgentApp(host.warden, registry, { cacheDir })
    expect(component?.digest).toBe(digestOf(ours))
    expect(digestOf(await readFile(join(cacheDir, `${buildKey}.wasm`)))).toBe(digestOf(ours))
  })
})
