/**
 * Runs in a worker with a heap limit, one job at a time, under a deadline (see `transpile.ts`):
 * jco reads the untrusted component, prints its world, generates the instantiation-mode glue,
 * and every core module is instrumented for fuel and memory. Hostile input can only waste
 * this worker, which is then replaced.
 */
import { parentPort } from 'node:worker_threads'
import { componentWit, transpile } from '@bytecodealliance/jco'
import { instrumentModule } from '../limits/instrument.js'
import type { TranspileRequest, TranspileResponse } from './transpile.js'

async function transpileOne(request: TranspileRequest): Promise<TranspileResponse> {
  const bytes = new Uint8Array(request.bytes)
  let wit: string
  let files: Record<string, Uint8Array>
  try {
    wit = await componentWit(bytes)
    // NB: jco 1.11.2 reads `typescript: false` (no .d.ts output) but its types omit it.
    const options = {
      name: 'component',
      instantiation: 'sync',
      typescript: false,
      nodejsCompat: false,
      base64Cutoff: 0,
    } as Parameters<typeof transpile>[1]
    ;({ files } = await transpile(bytes, options))
  } catch (error) {
    return { ok: false, code: 'invalid_component', message: firstLine(error) }
  }
  const glue = files['component.js']
  if (!glue) {
    return { ok: false, code: 'internal', message: 'jco produced no glue' }
  }
  const modules: TranspileResponse & { ok: true } = {
    ok: true,
    wit,
    glue: new TextDecoder().decode(glue),
    modules: [],
  }
  for (const [name, content] of Object.entries(files)) {
    if (!name.endsWith('.wasm')) {
      continue
    }
    try {
      const out = instrumentModule(content, {
        maxMemoryPages: request.maxMemoryPages,
        maxTableElements: request.maxTableElements,
      })
      modules.modules.push({
        name,
        bytes: out.bytes as Uint8Array<ArrayBuffer>,
        minMemoryPages: out.memories.reduce((sum, m) => sum + m.minPages, 0),
      })
    } catch (error) {
      return { ok: false, code: 'invalid_component', message: `${name}: ${firstLine(error)}` }
    }
  }
  return modules
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  return text.split('\n')[0]!.slice(0, 500)
}

parentPort!.on('message', ({ id, request }: { id: number; request: TranspileRequest }) => {
  transpileOne(request).then(
    (response) => parentPort!.postMessage({ id, response }),
    (error: unknown) =>
      parentPort!.postMessage({ id, response: { ok: false, code: 'internal', message: firstLine(error) } }),
  )
})
