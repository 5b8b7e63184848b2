/**
 * Question: what does a fresh-instance run of a tiny WAT action cost, and how much of it is
 * Warden's? Floor: raw V8 `new WebAssembly.Instance` + call of the same core modules.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { transpile } from '@bytecodealliance/jco'
import { createRuntime } from '../runtime/index.js'
import { guestFile } from '../test/support/wat.js'
import { medians } from './support.js'
import type { Row } from './support.js'
import { FuelMeter } from '../runtime/limits/refuel.js'

const QUESTION = 'fresh-instance run of a tiny WAT action (echo, 1 log call)'

export async function run(): Promise<Row[]> {
  const bytes = await guestFile('echo')
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'))
  const warden = await createRuntime({ dataDir: dir, poolSize: 1 })
  try {
    const { files } = await transpile(bytes, {
      name: 'component',
      instantiation: 'sync',
    } as Parameters<typeof transpile>[1])
    await writeFile(join(dir, 'c.mjs'), files['component.js']!)
    const glue = (await import(pathToFileURL(join(dir, 'c.mjs')).href)) as {
      instantiate: (
        g: (n: string) => WebAssembly.Module,
        i: object,
        c: (m: WebAssembly.Module, i: WebAssembly.Imports) => WebAssembly.Instance,
      ) => { run: (s: string) => string }
    }
    const plain: Record<string, WebAssembly.Module> = {}
    for (const [name, content] of Object.entries(files)) {
      if (name.endsWith('.wasm')) {
        plain[name] = new WebAssembly.Module(content as Uint8Array<ArrayBuffer>)
      }
    }
    const app = await warden.load(bytes)
    await warden.pool.warm()
    const instrumented = app.sandbox.modules
    const meter = () => {
      const m = new FuelMeter()
      m.start(1_000_000_000n)
      return m.imports(new WebAssembly.Global({ value: 'i32', mutable: false }, 1024))
    }
    const write = () => {}
    // The floor: the echo component's own core modules, wired by hand.
    const memoryModule = Object.values(plain).find(
      (m) =>
        WebAssembly.Module.exports(m).some((e) => e.kind === 'memory') &&
        WebAssembly.Module.imports(m).length === 0,
    )!
    const mainModule = Object.values(plain).find((m) =>
      WebAssembly.Module.exports(m).some((e) => e.name === 'run'),
    )!
    const input = new TextEncoder().encode('x')
    const floor = () => {
      const memory = new WebAssembly.Instance(memoryModule).exports.memory as WebAssembly.Memory
      new Uint8Array(memory.buffer).set(input, 2048)
      const main = new WebAssembly.Instance(mainModule, { env: { memory }, log: { write } })
      ;(main.exports.run as (p: number, l: number) => number)(2048, 1)
    }
    const jcoPlain = () =>
      glue
        .instantiate(
          (n) => plain[n]!,
          { 'warden:platform/log': { write } },
          (m, i) => new WebAssembly.Instance(m, i),
        )
        .run('x')
    // The loader has the module import its memory (`provideMemory`): a fresh one here, as in
    // the floor (the pool's workers reuse reset ones: runtime/sandbox/memories.ts).
    const provided = app.sandbox.providedMemory
    const jcoMetered = () => {
      const meterImports = provided
        ? {
            ...meter(),
            memory: new WebAssembly.Memory({
              initial: provided.minPages,
              maximum: provided.maxPages,
            }),
          }
        : meter()
      return glue
        .instantiate(
          (n) => instrumented[n]!,
          { 'warden:platform/log': { write } },
          (m, i) => new WebAssembly.Instance(m, { ...i, 'warden:meter': meterImports }),
        )
        .run('x')
    }
    const pooled = async () => {
      const r = await warden.invoke(app, 'x', { interfaces: ['warden:platform/log'] })
      if (!r.ok) {
        throw new Error(JSON.stringify(r.error))
      }
    }
    const m = await medians({ floor, jcoPlain, jcoMetered, pooled })
    return [
      { question: QUESTION, name: 'raw V8: new Instance ×2 + call (floor)', medianUs: m.floor! },
      {
        question: QUESTION,
        name: 'jco glue, same thread, plain modules',
        medianUs: m.jcoPlain!,
        ratio: m.jcoPlain! / m.floor!,
        baseline: 'floor',
      },
      {
        question: QUESTION,
        name: 'jco glue, same thread, metered modules',
        medianUs: m.jcoMetered!,
        ratio: m.jcoMetered! / m.floor!,
        baseline: 'floor',
      },
      {
        question: QUESTION,
        name: 'warden.invoke through the pool (end to end)',
        medianUs: m.pooled!,
        ratio: m.pooled! / m.floor!,
        baseline: 'floor',
        target: '≤ 150 µs',
      },
    ]
  } finally {
    await warden.close()
    await rm(dir, { recursive: true, force: true })
  }
}
