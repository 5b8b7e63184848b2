import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { openTokenIndex, readTokenEntries } from './token-index.js'
import type { TokenEntry, TokenIndex } from './token-index.js'

let dir: string
let index: TokenIndex

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-token-index-'))
  index = await openTokenIndex(dir)
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function entry(jti: string, parent: string | undefined, root: string, exp: number): TokenEntry {
  return {
    jti,
    appId: 'app',
    digest: `sha256:${'0'.repeat(64)}`,
    ...(parent ? { parent } : {}),
    root,
    grants: {},
    limits: {},
    iat: 0,
    exp,
    grantedBy: 'key:test',
  }
}

it('counts live children and live descendants at any depth, not the expired or revoked', async () => {
  const later = Math.floor(Date.now() / 1000) + 600
  await index.add(entry('root', undefined, 'root', later))
  await index.add(entry('child-a', 'root', 'root', later))
  await index.add(entry('child-b', 'root', 'root', later))
  await index.add(entry('grandchild', 'child-a', 'root', later))
  await index.add(entry('old', 'root', 'root', 1))
  await index.add(entry('other', undefined, 'other', later))
  await index.markRevoked('child-b', 'key:test')
  expect(index.childrenOf('root')).toBe(1)
  expect(index.descendantsOf('root')).toBe(2)
  expect(index.descendantsOf('other')).toBe(0)
})

it('drops a family’s oldest expired children past the bound, on write, and keeps the live ones', async () => {
  const small = await openTokenIndex(await mkdtemp(join(dir, 'small-')), {
    limits: { maxExpiredPerFamily: 3 },
  })
  const t = Math.floor(Date.now() / 1000)
  await small.add(entry('r', undefined, 'r', t + 600))
  for (let i = 0; i < 6; i++) {
    await small.add(entry(`gone-${i}`, 'r', 'r', t - 60 + i))
  }
  for (let i = 0; i < 5; i++) {
    await small.add(entry(`live-${i}`, 'r', 'r', t + 600))
  }
  // Another family's expired children have their own bound; an expired granted token stays.
  await small.add(entry('s', undefined, 's', t - 60))
  await small.add(entry('s-child', 's', 's', t - 60))
  const jtis = small.list().map((e) => e.jti)
  expect(jtis.filter((j) => j.startsWith('gone-')).sort()).toEqual(['gone-3', 'gone-4', 'gone-5'])
  expect(jtis.filter((j) => j.startsWith('live-'))).toHaveLength(5)
  expect(jtis).toContain('s')
  expect(jtis).toContain('s-child')
  expect(small.childrenOf('r')).toBe(5)
})

it('drops entries expired for more than a day on write, not only on open', async () => {
  const dataDir = await mkdtemp(join(dir, 'day-'))
  const daily = await openTokenIndex(dataDir)
  const t = Math.floor(Date.now() / 1000)
  await daily.add(entry('ancient', undefined, 'ancient', t - 86_401))
  await daily.add(entry('fresh', undefined, 'fresh', t + 600))
  expect(daily.get('ancient')).toBeUndefined()
  expect((await readTokenEntries(dataDir)).map((e: TokenEntry) => e.jti)).toEqual(['fresh'])
})

it('holds at most maxEntries: expired and revoked ones make room first, then minting is refused', async () => {
  const capped = await openTokenIndex(await mkdtemp(join(dir, 'cap-')), {
    limits: { maxEntries: 3 },
  })
  const t = Math.floor(Date.now() / 1000)
  await capped.add(entry('a', undefined, 'a', t - 5))
  await capped.add(entry('b', undefined, 'b', t + 600))
  await capped.add(entry('c', undefined, 'c', t + 600))
  // Full: the expired one goes (though listed for a day otherwise) to make room.
  expect(() => capped.ensureRoom()).not.toThrow()
  await capped.add(entry('d', undefined, 'd', t + 600))
  expect(capped.get('a')).toBeUndefined()
  // Full of live entries: refused, clearly.
  expect(() => capped.ensureRoom()).toThrow(
    expect.objectContaining({ code: 'limit_exceeded', status: 429 }),
  )
  await expect(capped.add(entry('e', undefined, 'e', t + 600))).rejects.toMatchObject({
    code: 'limit_exceeded',
  })
  // "Revoke some" makes room: a revoked token can never be used again.
  await capped.markRevoked('b', 'key:test')
  await capped.add(entry('e', undefined, 'e', t + 600))
  expect(capped.get('b')).toBeUndefined()
  expect(capped.list().map((e) => e.jti)).toEqual(['e', 'd', 'c'])
})
