/**
 * The seed corpus of the reliability fuzzer: every WAT guest of the test suite and the bundled
 * examples, compiled to real components with jco's `parse` (and, for `platform-caller`, jco's
 * `componentEmbed` + `componentNew`). Mutants are made from these.
 */
import { readFile } from 'node:fs/promises'
import * as guests from '../support/guests.js'
import { platformCaller } from '../support/platform-guest.js'
import { compileWat, guestFile } from '../support/wat.js'

/** One seed component. */
export interface CorpusEntry {
  /** Where it comes from: `guests.infiniteLoop`, `test/guests/echo.wat`, … */
  name: string
  bytes: Uint8Array
}

const EXAMPLES = ['hello', 'memory-hog', 'runaway'] as const

/**
 * Compile the corpus, in a fixed order (inputs name seeds by index). Takes about a second.
 *
 * @example
 * const corpus = await buildCorpus()
 * corpus[0].name // 'test/guests/echo.wat'
 */
export async function buildCorpus(): Promise<CorpusEntry[]> {
  const entries: [string, Promise<Uint8Array>][] = [
    ['test/guests/echo.wat', guestFile('echo')],
    ['test/guests/atomic-wait.wat', guestFile('atomic-wait')],
    ['test/guests/platform-caller.wat', platformCaller()],
    ['guests.growBy(4)', compileWat(guests.growBy(4))],
    ['guests.cpuKernel(50)', compileWat(guests.cpuKernel(50))],
  ]
  for (const [name, value] of Object.entries(guests)) {
    if (typeof value === 'string') {
      entries.push([`guests.${name}`, compileWat(value)])
    }
  }
  for (const example of EXAMPLES) {
    const url = new URL(`../../examples/${example}/${example}.wat`, import.meta.url)
    entries.push([`examples/${example}`, readFile(url, 'utf8').then(compileWat)])
  }
  const out: CorpusEntry[] = []
  for (const [name, bytes] of entries) {
    out.push({ name, bytes: await bytes })
  }
  return out
}
