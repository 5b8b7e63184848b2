/**
 * A fixed slice of `npm run fuzz` (issue 7): the same inputs and the same harness, in this
 * process, small enough for every `npm test`. The full fuzzer (`test/reliability/fuzz.ts`)
 * runs 10,000 inputs in restartable child processes; this slice only proves that, for a seed
 * known to cover mutants and hostile generators, every refusal carries a stable code and the
 * host is still alive at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildCorpus } from './reliability/corpus.js'
import type { CorpusEntry } from './reliability/corpus.js'
import { fuzzOne, hostProblem, startFuzzRuntime, Tally } from './reliability/harness.js'
import type { FuzzRuntime } from './reliability/harness.js'
import { buildInput, describeInput, sampleInputs } from './reliability/mutate.js'

// Seed 18's first 300 inputs hold eight hostile generators, and mutants that load and run.
const SEED = 18
const COUNT = 300

let rt: FuzzRuntime
let corpus: CorpusEntry[]

beforeAll(async () => {
  corpus = await buildCorpus()
  rt = await startFuzzRuntime()
}, 60_000)

afterAll(async () => {
  await rt?.close()
})

describe('fuzz slice', () => {
  it(`${COUNT} inputs of seed ${SEED}: every error has a stable code; the host is up`, async () => {
    const inputs = sampleInputs(SEED, COUNT)
    expect(inputs.filter((i) => i.kind === 'hostile').length).toBeGreaterThanOrEqual(5)
    const outcomes = new Tally()
    const uncoded: string[] = []
    for (const [index, input] of inputs.entries()) {
      const outcome = await fuzzOne(rt.warden, buildInput(input, corpus))
      outcomes.add(outcome.outcome)
      if (outcome.uncoded) {
        uncoded.push(`#${index} ${describeInput(input, corpus)}: ${outcome.uncoded}`)
      }
    }
    expect(uncoded).toEqual([])
    // The slice reaches past the loader into the sandbox, not only into the structure walk.
    expect([...outcomes.counts.keys()].some((o) => o.startsWith('run '))).toBe(true)
    const echo = corpus.find((c) => c.name === 'test/guests/echo.wat')!.bytes
    expect(await hostProblem(rt.warden, echo)).toBeUndefined()
  }, 90_000)
})
