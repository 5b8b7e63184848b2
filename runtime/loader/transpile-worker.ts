/**
 * Runs in a worker with a heap limit, one job at a time, under a deadline (see `transpile.ts`):
 * jco reads the untrusted component, prints its world, generates the instantiation-mode glue,
 * and every core module is instrumented for fuel and memory. Or jco compiles WAT text. Hostile
 * input can only waste this worker, which is then replaced.
 */
import { parentPort } from 'node:worker_threads'
import { componentWit, parse, transpile } from '@bytecodealliance/jco'
import { instrumentModule, REFUSED_FEATURES } from '../limits/instrument.js'
import type {
  ToTranspileWorker,
  TranspileRequest,
  TranspileResponse,
  WatResponse,
} from './transpile.js'

async function transpileOne(
  request: Omit<TranspileRequest, 'uploader'>,
): Promise<TranspileResponse> {
  // The bytes were moved here, not copied: read them in place.
  const { bytes } = request
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
  const out: TranspileResponse & { ok: true } = {
    ok: true,
    wit,
    glue: new TextDecoder().decode(glue),
    modules: [],
  }
  let memories = 0
  for (const name of Object.keys(files)) {
    if (!name.endsWith('.wasm')) {
      continue
    }
    const content = files[name]!
    // Each module's input is dropped as soon as it is instrumented: one extra copy at a time.
    delete files[name]
    try {
      const instrumented = instrumentModule(content, {
        maxMemoryPages: request.maxMemoryPages,
        maxTableElements: request.maxTableElements,
      })
      memories += instrumented.memories.length
      out.modules.push({
        name,
        bytes: owned(instrumented.bytes as Uint8Array<ArrayBuffer>),
        minMemoryPages: instrumented.memories.reduce((sum, m) => sum + m.minPages, 0),
      })
    } catch (error) {
      return { ok: false, code: 'invalid_component', message: `${name}: ${firstLine(error)}` }
    }
  }
  // The memory cap is checked per memory, and canonical options name one: a second memory
  // would double what a run may hold.
  if (memories > 1) {
    return {
      ok: false,
      code: 'invalid_component',
      message:
        `the component defines ${memories} memories: it uses ${REFUSED_FEATURES.multiMemory}, ` +
        'which Warden does not run',
    }
  }
  return out
}

async function parseOne(text: string): Promise<WatResponse> {
  try {
    return { ok: true, bytes: owned((await parse(text)) as Uint8Array<ArrayBuffer>) }
  } catch (error) {
    return { ok: false, code: 'invalid_component', message: `not valid WAT: ${firstLine(error)}` }
  }
}

/** The bytes in a buffer of their own, so that the buffer can be moved to the main thread. */
function owned(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes
    : bytes.slice()
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  return text.split('\n')[0]!.slice(0, 500)
}

parentPort!.on('message', (message: ToTranspileWorker) => {
  const { id } = message
  const work = message.kind === 'component' ? transpileOne(message.request) : parseOne(message.text)
  work.then(
    (response) => {
      // Module bytes are moved back, not copied.
      const transfer = !response.ok
        ? []
        : 'modules' in response
          ? response.modules.map((m) => m.bytes.buffer)
          : [response.bytes.buffer]
      parentPort!.postMessage({ id, response }, transfer)
    },
    (error: unknown) =>
      parentPort!.postMessage({
        id,
        response: { ok: false, code: 'internal', message: firstLine(error) },
      }),
  )
})

// jco is loaded: from now on the job's budget measures its work, not this worker's start-up.
parentPort!.postMessage({ ready: true })
