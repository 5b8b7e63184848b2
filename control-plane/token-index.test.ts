import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { openTokenIndex } from './token-index.js'
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
