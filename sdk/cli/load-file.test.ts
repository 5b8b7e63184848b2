/**
 * Reading a component file for `warden run` (issue 7): regular files only, capped, and WAT
 * compiled off the main thread within a budget. A FIFO named `x.wat` used to block forever.
 */
import { execFileSync } from 'node:child_process'
import { constants } from 'node:fs'
import { mkdir, mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_MAX_COMPONENT_BYTES } from '../../runtime/index.js'
import { MAX_WAT_BYTES, readComponentFile } from './load-file.js'
import { refusal } from '../../test/support/refusal.js'

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-load-file-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** `promise`, or a rejection after `ms`: a read that blocks must fail the test, not hang it. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

describe('readComponentFile', () => {
  it('refuses a FIFO named x.wat at once instead of waiting for a writer', async () => {
    const fifo = join(dir, 'x.wat')
    execFileSync('mkfifo', [fifo])
    try {
      expect((await refusal(within(readComponentFile(fifo), 5_000))).code).toBe('invalid_request')
    } finally {
      // A reader stuck in open(2) is let go by a writer; without one this does nothing.
      const writer = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(
        () => undefined,
      )
      await writer?.close()
    }
  })

  it('refuses a directory', async () => {
    const folder = join(dir, 'folder.wasm')
    await mkdir(folder)
    expect((await refusal(readComponentFile(folder))).code).toBe('invalid_request')
  })

  it('refuses WAT text over its cap without reading it', async () => {
    const big = join(dir, 'big.wat')
    await writeFile(big, '')
    await truncate(big, MAX_WAT_BYTES + 1)
    expect((await refusal(readComponentFile(big))).code).toBe('payload_too_large')
  })

  it('refuses a .wasm over the upload cap without reading it', async () => {
    const big = join(dir, 'big.wasm')
    await writeFile(big, '')
    await truncate(big, DEFAULT_MAX_COMPONENT_BYTES + 1)
    expect((await refusal(readComponentFile(big))).code).toBe('payload_too_large')
  })

  it('compiles WAT within a budget', async () => {
    // Text that takes jco a few hundred ms: past 1 ms even with jco warm (a warm child
    // parses `(component)` in well under a millisecond).
    const funcs = Array.from({ length: 5_000 }, (_, i) => `(func (export "f${i}"))`)
    const slow = join(dir, 'slow.wat')
    await writeFile(slow, `(component (core module ${funcs.join('\n')}))`)
    const error = await refusal(
      readComponentFile(slow, { budget: { timeoutMs: 1, maxHeapMb: 256 } }),
    )
    expect(error.code).toBe('invalid_component')
    const file = join(dir, 'small.wat')
    await writeFile(file, '(component)')
    expect(Array.from(await readComponentFile(file)).slice(0, 4)).toEqual([0, 0x61, 0x73, 0x6d])
  })

  it('compiles WAT off the main thread: the event loop keeps turning', async () => {
    // ~1.5 MB of text: jco takes about a second to parse it.
    const funcs = Array.from(
      { length: 20_000 },
      (_, i) => `(func (export "f${i}") (result i32) (i32.add (i32.const ${i}) (i32.const 1)))`,
    )
    const file = join(dir, 'large.wat')
    await writeFile(file, `(component (core module ${funcs.join('\n')}))`)
    let last = performance.now()
    let longest = 0
    const tick = setInterval(() => {
      const now = performance.now()
      longest = Math.max(longest, now - last)
      last = now
    }, 10)
    try {
      await readComponentFile(file)
    } finally {
      clearInterval(tick)
    }
    longest = Math.max(longest, performance.now() - last)
    expect(longest).toBeLessThan(400)
  })

  it('refuses text that is not WAT with invalid_component', async () => {
    const file = join(dir, 'bad.wat')
    await writeFile(file, '(component (nonsense))')
    expect((await refusal(readComponentFile(file))).code).toBe('invalid_component')
  })
})
