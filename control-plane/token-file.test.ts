import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { openTokenLog, readTokenLog, TOKEN_LOG_FILE } from './token-file.js'

const entry = z.strictObject({ jti: z.string(), n: z.int() })
type Entry = z.output<typeof entry>
const legacy = z.strictObject({ version: z.literal(1), tokens: z.array(entry) })
const idOf = (e: Entry) => e.jti

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-token-log-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const open = (dataDir: string) => openTokenLog(dataDir, entry, idOf, legacy)
const lines = async (dataDir: string) =>
  (await readFile(join(dataDir, TOKEN_LOG_FILE), 'utf8')).split('\n').filter(Boolean)

describe('the token log', () => {
  it('appends one line per change and replays them in place', async () => {
    const dataDir = await mkdtemp(join(dir, 'append-'))
    const doc = await open(dataDir)
    doc.data.tokens.push({ jti: 'a', n: 1 }, { jti: 'b', n: 1 })
    await doc.save(['a', 'b'])
    doc.data.tokens[0]!.n = 2 // a changed entry keeps its place
    await doc.save(['a'])
    doc.data.tokens.splice(1, 1) // taken out: found without being named
    doc.data.tokens.push({ jti: 'c', n: 1 })
    await doc.save(['c'])
    expect(await lines(dataDir)).toEqual([
      '{"put":{"jti":"a","n":1}}',
      '{"put":{"jti":"b","n":1}}',
      '{"put":{"jti":"a","n":2}}',
      '{"del":"b"}',
      '{"put":{"jti":"c","n":1}}',
    ])
    const again = await open(dataDir)
    expect(again.data.tokens).toEqual([
      { jti: 'a', n: 2 },
      { jti: 'c', n: 1 },
    ])
    expect(await readTokenLog(dataDir, entry, idOf)).toEqual(again.data.tokens)
  })

  it('writes only what a save names: its cost is its own entries, however large the index', async () => {
    const dataDir = await mkdtemp(join(dir, 'cost-'))
    const doc = await open(dataDir)
    for (let i = 0; i < 5_000; i++) {
      doc.data.tokens.push({ jti: `t${i}`, n: i })
    }
    await doc.save() // whole: one line per entry
    const before = (await readFile(join(dataDir, TOKEN_LOG_FILE))).length
    doc.data.tokens.push({ jti: 'new', n: 0 })
    await doc.save(['new'])
    const after = (await readFile(join(dataDir, TOKEN_LOG_FILE))).length
    expect(after - before).toBe('{"put":{"jti":"new","n":0}}\n'.length)
  })

  it('rewrites itself whole when it holds twice as many lines as entries, and 1,024 more', async () => {
    const dataDir = await mkdtemp(join(dir, 'compact-'))
    const doc = await open(dataDir)
    doc.data.tokens.push({ jti: 'x', n: 0 })
    for (let i = 1; i <= 1_100; i++) {
      doc.data.tokens[0]!.n = i
      await doc.save(['x'])
    }
    expect((await lines(dataDir)).length).toBeLessThan(100)
    expect((await open(dataDir)).data.tokens).toEqual([{ jti: 'x', n: 1_100 }])
  })

  it('reads a tokens.json of an earlier version once, then replaces it', async () => {
    const dataDir = await mkdtemp(join(dir, 'legacy-'))
    await writeFile(
      join(dataDir, 'tokens.json'),
      JSON.stringify({ version: 1, tokens: [{ jti: 'old', n: 7 }] }),
    )
    const doc = await open(dataDir)
    expect(doc.data.tokens).toEqual([{ jti: 'old', n: 7 }])
    await expect(readFile(join(dataDir, 'tokens.json'))).rejects.toThrow(/ENOENT/)
    expect(await lines(dataDir)).toEqual(['{"put":{"jti":"old","n":7}}'])
  })

  it('drops a torn last line and rewrites the file; refuses a bad line elsewhere', async () => {
    const dataDir = await mkdtemp(join(dir, 'torn-'))
    const doc = await open(dataDir)
    doc.data.tokens.push({ jti: 'a', n: 1 })
    await doc.save(['a'])
    await appendFile(join(dataDir, TOKEN_LOG_FILE), '{"put":{"jti":"b","n"')
    const reopened = await open(dataDir)
    expect(reopened.data.tokens).toEqual([{ jti: 'a', n: 1 }])
    reopened.data.tokens.push({ jti: 'c', n: 1 })
    await reopened.save(['c'])
    expect((await open(dataDir)).data.tokens.map(idOf)).toEqual(['a', 'c'])

    const bad = await mkdtemp(join(dir, 'bad-'))
    await writeFile(join(bad, TOKEN_LOG_FILE), '{"put":{"jti":"a","n":1}}\nnot json\n{"del":"a"}\n')
    await expect(open(bad)).rejects.toMatchObject({ code: 'internal' })
  })
})
