/**
 * `npm run fuzz`: mutated and structurally hostile components through the runtime's `load`
 * (and `invoke` when they load), in child processes that are restarted when they crash.
 *
 *   npm run fuzz -- [--count 10000] [--seed 1] [--jobs 2] [--transpile-ms 3000] [--hang-ms 60000]
 *   npm run fuzz -- --seed 1 --only 4711 [--save /tmp/input.wasm]     # one input, in process
 *
 * Exits 1 when any child crashed or hung, any error had no stable code, or a health check
 * failed. See test/reliability/README.md for what each figure means.
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { rmSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { buildCorpus } from './corpus.js'
import type { CorpusEntry } from './corpus.js'
import type { FromChild, ToChild } from './fuzz-child.js'
import { FUZZ_TRANSPILE_BUDGET, fuzzOne, mib, parseFlags, startFuzzRuntime } from './harness.js'
import { Tally } from './harness.js'
import { buildInput, describeInput, sampleInputs } from './mutate.js'

const flags = parseFlags(process.argv.slice(2), {
  count: 'number',
  seed: 'number',
  jobs: 'number',
  only: 'number',
  save: 'string',
  'transpile-ms': 'number',
  'hang-ms': 'number',
})
const count = Math.floor(Number(flags.count ?? 10_000))
const seed = Math.floor(Number(flags.seed ?? 1))
const jobs = Math.max(1, Math.floor(Number(flags.jobs ?? Math.min(2, availableParallelism()))))
const transpileMs = Number(flags['transpile-ms'] ?? FUZZ_TRANSPILE_BUDGET.timeoutMs)
const hangMs = Number(flags['hang-ms'] ?? 60_000)
/** Each child proves the host alive after this many inputs, and once at the end. */
const HEALTH_EVERY = 500
/** A child has this long (or `--hang-ms`, if longer) to start its runtime and load echo. */
const START_MS = 60_000
/** Slowest loads listed. */
const SLOWEST = 5
/** Give up when children keep dying without finishing a single input. */
const MAX_FAILED_STARTS = 5

/** `--only i`: build input `i` of the seed, run it in this process, say everything about it. */
async function runOnly(index: number): Promise<number> {
  const corpus = await buildCorpus()
  const input = sampleInputs(seed, index + 1)[index]!
  const bytes = buildInput(input, corpus)
  console.log(`input #${index} of seed ${seed}: ${describeInput(input, corpus)}`)
  console.log(`  ${bytes.length} bytes, sha256 ${createHash('sha256').update(bytes).digest('hex')}`)
  console.log(`  descriptor ${JSON.stringify(input)}`)
  if (typeof flags.save === 'string') {
    writeFileSync(flags.save, bytes)
    console.log(`  saved to ${flags.save}`)
  }
  const rt = await startFuzzRuntime({ ...FUZZ_TRANSPILE_BUDGET, timeoutMs: transpileMs })
  try {
    // Start jco first, so the time below is this input's own.
    await rt.warden.load(corpus[0]!.bytes)
    const outcome = await fuzzOne(rt.warden, bytes, transpileMs)
    const times = `load ${outcome.loadMs.toFixed(1)} ms, run ${outcome.runMs.toFixed(1)} ms`
    console.log(`  outcome ${outcome.outcome}: ${times}`)
    if (outcome.detail) {
      console.log(`  ${outcome.detail}`)
    }
    if (outcome.uncoded) {
      console.log(`  UNCODED ${outcome.uncoded}`)
      return 1
    }
    return 0
  } finally {
    await rt.close()
  }
}

interface Slowest {
  ms: number
  index: number
  outcome: string
}

interface Finding {
  index: number
  what: string
  detail: string
}

type Answer =
  | FromChild
  | { type: 'exit'; code: number | null; signal: string | null }
  | { type: 'hang' }

/** One fuzz child and its one pending request. */
class Child {
  readonly proc: ChildProcess
  dataDir: string | undefined
  fatal: string | undefined
  tail = ''
  rss = 0
  dead = false
  #pending: ((answer: Answer) => void) | undefined
  #timer: NodeJS.Timeout | undefined

  constructor() {
    // NB: fork inherits tsx's loader flags from process.execArgv, so the child runs TypeScript.
    this.proc = fork(fileURLToPath(new URL('./fuzz-child.ts', import.meta.url)), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    const keep = (chunk: Buffer) => {
      this.tail = (this.tail + chunk.toString('utf8')).slice(-2000)
    }
    this.proc.stdout!.on('data', keep)
    this.proc.stderr!.on('data', keep)
    this.proc.on('message', (message: FromChild) => {
      if (message.type === 'fatal') {
        this.fatal = message.error
        return
      }
      if (message.type === 'ready') {
        this.dataDir = message.dataDir
      }
      if ('rss' in message) {
        this.rss = message.rss
      }
      this.#answer(message)
    })
    this.proc.on('exit', (code, signal) => {
      this.dead = true
      this.#answer({ type: 'exit', code, signal })
    })
  }

  /** Send one message and wait for its answer, the child's exit, or `timeoutMs` (a hang). */
  request(message: ToChild, timeoutMs: number): Promise<Answer> {
    if (this.dead) {
      const { exitCode: code, signalCode: signal } = this.proc
      return Promise.resolve({ type: 'exit', code, signal })
    }
    return new Promise((resolve) => {
      this.#pending = resolve
      this.#timer = setTimeout(() => {
        this.proc.kill('SIGKILL')
        this.#answer({ type: 'hang' })
      }, timeoutMs)
      this.proc.send(message)
    })
  }

  #answer(answer: Answer): void {
    clearTimeout(this.#timer)
    const pending = this.#pending
    this.#pending = undefined
    pending?.(answer)
  }

  /** Remove what a dead child left behind. */
  cleanUp(): void {
    if (this.dataDir) {
      rmSync(this.dataDir, { recursive: true, force: true })
    }
  }
}

async function runAll(): Promise<number> {
  const started = performance.now()
  const corpus = await buildCorpus()
  const inputs = sampleInputs(seed, count)
  console.log(
    `warden fuzz: ${count} inputs, seed ${seed}, ${jobs} child process${jobs === 1 ? '' : 'es'}, ` +
      `corpus of ${corpus.length} components, transpile budget ${transpileMs} ms`,
  )
  const kinds = new Tally()
  for (const input of inputs) {
    kinds.add(input.kind === 'mutant' ? 'mutants' : `hostile ${input.gen}`)
  }

  const outcomes = new Tally()
  const loadTimes = new Tally()
  const crashes: Finding[] = []
  const hangs: Finding[] = []
  const uncoded: Finding[] = []
  const healthFailures: Finding[] = []
  const digests = new Set<string>()
  const rssSamples: string[] = []
  let healthOk = 0
  let memoHits = 0
  let childrenStarted = 0
  /** The slowest loads, slowest first. */
  const slowest: Slowest[] = []
  let slowestRun: Slowest = { ms: -1, index: -1, outcome: '' }
  let next = 0
  let done = 0
  let failedStarts = 0
  const lanes: Child[] = []
  const step = Math.max(1, Math.floor(count / 10))

  const describe = (index: number) => (index >= 0 ? describeInput(inputs[index]!, corpus) : '')
  const lost = (child: Child, answer: Answer): string => {
    const how =
      answer.type === 'exit'
        ? `exit code ${answer.code ?? '-'}, signal ${answer.signal ?? '-'}`
        : answer.type === 'hang'
          ? `no answer in ${hangMs} ms, killed`
          : `unexpected ${answer.type}`
    const indent = (lines: string[]) => lines.join('\n      ')
    const uncaught = child.fatal?.split('\n').slice(0, 6)
    const fatal = uncaught ? `\n      uncaught: ${indent(uncaught)}` : ''
    const output = child.tail.trim().split('\n').slice(-6)
    const tail = child.tail.trim() ? `\n      output: ${indent(output)}` : ''
    return how + fatal + tail
  }

  async function startChild(lane: number): Promise<Child | undefined> {
    while (failedStarts < MAX_FAILED_STARTS) {
      const child = new Child()
      childrenStarted++
      lanes[lane] = child
      const answer = await child.request(
        { type: 'init', seed, count, corpus: corpus as CorpusEntry[], transpileMs },
        Math.max(hangMs, START_MS),
      )
      if (answer.type === 'ready') {
        return child
      }
      failedStarts++
      crashes.push({ index: -1, what: 'while starting', detail: lost(child, answer) })
      child.proc.kill('SIGKILL')
      child.cleanUp()
    }
    return undefined
  }

  function progress(): void {
    const secs = ((performance.now() - started) / 1000).toFixed(0)
    const rss = lanes.map((c) => mib(c.rss)).join(', ')
    rssSamples.push(`${done}: ${lanes.map((c) => (c.rss / 2 ** 20).toFixed(0)).join('/')}`)
    console.log(
      `  [${String(done).padStart(String(count).length)}/${count}] ${secs.padStart(4)} s  ` +
        `rss of children: ${rss}  crashes ${crashes.length}, hangs ${hangs.length}, ` +
        `uncoded ${uncoded.length}`,
    )
  }

  async function health(child: Child, when: string): Promise<boolean> {
    const answer = await child.request({ type: 'health' }, hangMs)
    if (answer.type === 'health') {
      if (answer.problem === undefined) {
        healthOk++
      } else {
        healthFailures.push({ index: -1, what: when, detail: answer.problem })
      }
      return true
    }
    const finding = { index: -1, what: `health check ${when}`, detail: lost(child, answer) }
    ;(answer.type === 'hang' ? hangs : crashes).push(finding)
    child.cleanUp()
    return false
  }

  function record(index: number, answer: FromChild & { type: 'done' }): void {
    loadTimes.add(bucket(answer.loadMs))
    if (answer.uncoded) {
      const detail = `${answer.outcome}: ${answer.uncoded}`
      uncoded.push({ index, what: describe(index), detail })
    }
    if (slowest.length < SLOWEST || answer.loadMs > slowest.at(-1)!.ms) {
      slowest.push({ ms: answer.loadMs, index, outcome: answer.outcome })
      slowest.sort((a, b) => b.ms - a.ms).splice(SLOWEST)
    }
    if (answer.runMs > slowestRun.ms) {
      slowestRun = { ms: answer.runMs, index, outcome: answer.outcome }
    }
  }

  async function lane(id: number): Promise<void> {
    let child: Child | undefined
    let sinceHealth = 0
    while (next < count) {
      child ??= await startChild(id)
      if (!child || next >= count) {
        break
      }
      const index = next++
      const answer = await child.request({ type: 'run', index }, hangMs)
      if (answer.type !== 'done') {
        const finding = { index, what: describe(index), detail: lost(child, answer) }
        ;(answer.type === 'hang' ? hangs : crashes).push(finding)
        child.cleanUp()
        child = undefined
        done++
        continue
      }
      failedStarts = 0
      done++
      digests.add(answer.digest)
      memoHits += answer.memo ? 1 : 0
      outcomes.add(answer.outcome)
      // A memo hit repeats an earlier input's outcome and times: count it once only.
      if (!answer.memo) {
        record(index, answer)
      }
      if (done % step === 0) {
        progress()
      }
      if (++sinceHealth >= HEALTH_EVERY) {
        sinceHealth = 0
        if (!(await health(child, `after input #${index}`))) {
          child = undefined
        }
      }
    }
    if (child) {
      if (await health(child, 'at the end')) {
        const closed = new Promise((resolve) => child!.proc.once('exit', resolve))
        child.proc.send({ type: 'close' } satisfies ToChild)
        await closed
      }
    }
  }

  console.log('progress:')
  await Promise.all(Array.from({ length: jobs }, (_, i) => lane(i)))
  const elapsed = (performance.now() - started) / 1000

  const show = (title: string, findings: Finding[]) => {
    console.log(`${title}: ${findings.length}`)
    for (const f of findings.slice(0, 20)) {
      console.log(`    #${f.index} ${f.what}\n      ${f.detail}`)
    }
  }
  console.log('')
  console.log(
    `inputs: ${done} run of ${count} (${digests.size} distinct; ${memoHits} duplicates of ` +
      `slow inputs answered from the child's memo)`,
  )
  console.log(kinds.lines().join('\n'))
  console.log('outcomes by code:')
  console.log(outcomes.lines().join('\n'))
  console.log('load times:')
  console.log(
    ['< 1 ms', '1-10 ms', '10-100 ms', '100 ms-1 s', '1-5 s', '>= 5 s']
      .filter((b) => loadTimes.get(b) > 0)
      .map((b) => `  ${b.padEnd(10)}  ${String(loadTimes.get(b)).padStart(7)}`)
      .join('\n'),
  )
  show(`crashes (child processes started: ${childrenStarted})`, crashes)
  show('hangs', hangs)
  show('uncoded errors', uncoded)
  console.log(`health checks: ${healthOk} ok, ${healthFailures.length} failed`)
  for (const f of healthFailures.slice(0, 20)) {
    console.log(`    ${f.what}: ${f.detail}`)
  }
  const slow = (s: Slowest) =>
    `${s.ms.toFixed(1)} ms, input #${s.index} (${s.outcome}): ${describe(s.index)}`
  if (slowest.length > 0) {
    console.log(`slowest load: ${slow(slowest[0]!)}`)
    for (const s of slowest.slice(1)) {
      console.log(`  next: ${slow(s)}`)
    }
  }
  if (slowestRun.ms > 0) {
    console.log(`slowest run: ${slow(slowestRun)}`)
  }
  console.log(`rss of each fuzz child over time (inputs done: MiB/MiB): ${rssSamples.join(', ')}`)
  console.log(`elapsed: ${elapsed.toFixed(1)} s (${(done / elapsed).toFixed(1)} inputs/s)`)
  console.log(`one input again: npm run fuzz -- --seed ${seed} --only <index> [--save input.wasm]`)
  const failed = crashes.length + hangs.length + uncoded.length + healthFailures.length
  console.log(failed === 0 ? 'result: ok' : `result: FAILED (${failed} findings)`)
  return failed === 0 ? 0 : 1
}

function bucket(ms: number): string {
  return ms < 1
    ? '< 1 ms'
    : ms < 10
      ? '1-10 ms'
      : ms < 100
        ? '10-100 ms'
        : ms < 1000
          ? '100 ms-1 s'
          : ms < 5000
            ? '1-5 s'
            : '>= 5 s'
}

// Last: the class above must be initialised before anything runs.
if (flags.only !== undefined) {
  process.exitCode = await runOnly(Math.floor(Number(flags.only)))
} else {
  process.exitCode = await runAll()
}
