/**
 * Runs in a child process of its own with a heap limit and an empty environment, one job at a
 * time, under a deadline (see `transpile.ts`): jco reads the untrusted component, prints its
 * world, generates the instantiation-mode glue, and every core module is instrumented for fuel
 * and memory. Or jco compiles WAT text. Hostile input can only waste this process, which is
 * then killed and replaced; jco's WebAssembly memory (over 100 MB for a 12 MB upload) never
 * counts against the host's.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { componentWit, parse, transpile } from '@bytecodealliance/jco'
import { instrumentModule, REFUSED_FEATURES } from '../limits/instrument.js'
import { TRANSPILE_INPUT_FILE, transpiledModuleFile } from './transpile.js'
import type {
  ChildTranspileResponse,
  FromTranspileChild,
  ToTranspileChild,
  WatResponse,
} from './transpile.js'

// NB: jco 1.11.2 reads `typescript: false` (no .d.ts output) but its types omit it.
const TRANSPILE_OPTIONS = {
  name: 'component',
  instantiation: 'sync',
  typescript: false,
  nodejsCompat: false,
  base64Cutoff: 0,
} as Parameters<typeof transpile>[1]

async function transpileOne(
  request: ToTranspileChild & { kind: 'component' },
): Promise<ChildTranspileResponse> {
  const { dir } = request
  const bytes = await readFile(join(dir, TRANSPILE_INPUT_FILE))
  let wit: string
  let files: Record<string, Uint8Array>
  try {
    wit = await componentWit(bytes)
    ;({ files } = await transpile(bytes, TRANSPILE_OPTIONS))
  } catch (error) {
    return { ok: false, code: 'invalid_component', message: firstLine(error) }
  }
  const glue = files['component.js']
  if (!glue) {
    return { ok: false, code: 'internal', message: 'jco produced no glue' }
  }
  const out: ChildTranspileResponse & { ok: true } = {
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
    // Each module's input is dropped as soon as it is instrumented, and its output as soon as
    // it is written: one extra copy at a time.
    delete files[name]
    let instrumented: ReturnType<typeof instrumentModule>
    try {
      instrumented = instrumentModule(content, {
        maxMemoryPages: request.maxMemoryPages,
        maxTableElements: request.maxTableElements,
        provideMemory: true,
      })
    } catch (error) {
      return { ok: false, code: 'invalid_component', message: `${name}: ${firstLine(error)}` }
    }
    memories += instrumented.memories.length
    await writeFile(join(dir, transpiledModuleFile(out.modules.length)), instrumented.bytes)
    const provided = instrumented.memories.find((m) => m.provided)
    out.modules.push({
      name,
      minMemoryPages: instrumented.memories.reduce((sum, m) => sum + m.minPages, 0),
      ...(provided
        ? { providedMemory: { minPages: provided.minPages, maxPages: provided.maxPages } }
        : {}),
    })
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
    return { ok: true, bytes: (await parse(text)) as Uint8Array<ArrayBuffer> }
  } catch (error) {
    return { ok: false, code: 'invalid_component', message: `not valid WAT: ${firstLine(error)}` }
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  return text.split('\n')[0]!.slice(0, 500)
}

function answer(message: FromTranspileChild): void {
  process.send!(message)
}

/** This process's peak resident set so far, in bytes (for the host's diagnostics). */
function maxRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024
}

// The host is gone (it died or closed the pool): nobody waits for an answer.
process.on('disconnect', () => process.exit(0))

// jco compiles and instantiates its own wasm on first use (about half a second, more on a busy
// machine): warm it on an empty component, so that a job's budget measures the job only.
await transpile(await parse('(component)'), TRANSPILE_OPTIONS)
// Jobs sent meanwhile wait in Node's queue until this listener is added.
process.on('message', (message: ToTranspileChild) => {
  const { id } = message
  const work = message.kind === 'component' ? transpileOne(message) : parseOne(message.text)
  work.then(
    (response) => answer({ id, response, maxRssBytes: maxRssBytes() }),
    (error: unknown) =>
      answer({
        id,
        response: { ok: false, code: 'internal', message: firstLine(error) },
        maxRssBytes: maxRssBytes(),
      }),
  )
})
// From now on the job's budget measures its work, not this process's start-up.
answer({ ready: true })
