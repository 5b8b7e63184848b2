import { randomUUID } from 'node:crypto'
import {
  appendFile,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createFileRevocationList, createMemoryRevocationList } from './revocations.js'

let dataDir: string

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'warden-revocations-'))
})

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

const A = '11111111-1111-4111-8111-111111111111'
const B = '22222222-2222-4222-8222-222222222222'
const C = '33333333-3333-4333-8333-333333333333'

describe('createFileRevocationList', () => {
  it('knows nothing before the file exists', async () => {
    const list = createFileRevocationList(dataDir)
    expect(await list.isRevoked(A)).toBe(false)
  })

  it('revokes durably: the line is on disk when revoke resolves', async () => {
    const list = createFileRevocationList(dataDir)
    await list.revoke(A)
    expect(await list.isRevoked(A)).toBe(true)
    expect(await list.isRevoked(B)).toBe(false)
    expect(await readFile(list.path, 'utf8')).toBe(`${A}\n`)
    expect((await stat(list.path)).mode & 0o777).toBe(0o600)
  })

  it('survives a restart', async () => {
    await createFileRevocationList(dataDir).revoke(A)
    const reopened = createFileRevocationList(dataDir)
    expect(await reopened.isRevoked(A)).toBe(true)
    expect(await reopened.isRevoked(B)).toBe(false)
  })

  it("sees another list's revocations on the same dir (another process)", async () => {
    const first = createFileRevocationList(dataDir)
    const second = createFileRevocationList(dataDir)
    expect(await second.isRevoked(A)).toBe(false)
    await first.revoke(A)
    expect(await second.isRevoked(A)).toBe(true)
  })

  it('is append-only and idempotent', async () => {
    const list = createFileRevocationList(dataDir)
    await Promise.all([list.revoke(A), list.revoke(B), list.revoke(A), list.revoke(C)])
    await list.revoke(B)
    const lines = (await readFile(list.path, 'utf8')).trim().split('\n')
    expect(lines.sort()).toEqual([A, B, C])
  })

  it('skips a torn last line and starts the next on a fresh line', async () => {
    const list = createFileRevocationList(dataDir)
    await list.revoke(A)
    await appendFile(list.path, '4444')
    const reopened = createFileRevocationList(dataDir)
    expect(await reopened.isRevoked(A)).toBe(true)
    await reopened.revoke(B)
    expect(await readFile(list.path, 'utf8')).toBe(`${A}\n4444\n${B}\n`)
    expect(await createFileRevocationList(dataDir).isRevoked(B)).toBe(true)
  })

  it('fails closed with store_unavailable when the file cannot be read', async () => {
    const list = createFileRevocationList(dataDir)
    // We may run as root, whom chmod does not stop: a directory cannot be read as a file.
    await mkdir(list.path)
    for (const jti of [A, B]) {
      const err = await list.isRevoked(jti).catch((e) => e)
      expect(err.code).toBe('store_unavailable')
    }
    const revoke = await list.revoke(A).catch((e) => e)
    expect(revoke.code).toBe('store_unavailable')
    // Revoked in this process all the same: a failed write never un-revokes.
    expect(await list.isRevoked(A)).toBe(true)
  })

  it('fails closed with store_unavailable when the data dir is not a directory', async () => {
    const file = join(dataDir, 'not-a-dir')
    await writeFile(file, 'x')
    const err = await createFileRevocationList(file)
      .isRevoked(A)
      .catch((e) => e)
    expect(err.code).toBe('store_unavailable')
  })

  it.each([
    ['JSON', `{"revoked": ["${A}"]}\n`],
    ['binary', `${A}\n\u0000\u0000\u0000\u0000\n`],
    ['invalid UTF-8', Buffer.concat([Buffer.from(`${A}\n`), Buffer.from([0xff, 0xfe, 0x0a])])],
    ['a line too long for an id', `${'a'.repeat(129)}\n`],
    ['a line with spaces inside', `${A} ${B}\n`],
  ])('fails closed with store_unavailable on corrupt content (%s)', async (_, content) => {
    const list = createFileRevocationList(dataDir)
    await writeFile(list.path, content)
    for (const jti of [B, C]) {
      const err = await list.isRevoked(jti).catch((e) => e)
      expect(err.code).toBe('store_unavailable')
    }
  })

  it('refuses a malformed token id with invalid_request', async () => {
    const list = createFileRevocationList(dataDir)
    for (const jti of ['', 'short', `${A}\n${B}`, 'a b c d e f g h']) {
      const err = await list.revoke(jti).catch((e) => e)
      expect(err.code).toBe('invalid_request')
    }
  })
})

describe('createFileRevocationList: the in-memory copy and its change check', () => {
  it('sees a line another handle appended, at the next check after an answer from memory', async () => {
    const list = createFileRevocationList(dataDir)
    await list.revoke(A)
    expect(await list.isRevoked(B)).toBe(false)
    expect(await list.isRevoked(B)).toBe(false) // answered from memory: the file is unchanged
    await appendFile(list.path, `${B}\n`) // another process, not through any list
    expect(await list.isRevoked(B)).toBe(true)
    expect(await list.isRevoked(C)).toBe(false)
  })

  it('sees a file created after a check that found none', async () => {
    const list = createFileRevocationList(dataDir)
    expect(await list.isRevoked(A)).toBe(false)
    expect(await list.isRevoked(A)).toBe(false)
    await writeFile(list.path, `${A}\n`)
    expect(await list.isRevoked(A)).toBe(true)
  })

  it('reads a replaced file from its start and forgets no id it knew', async () => {
    const list = createFileRevocationList(dataDir)
    await writeFile(list.path, `${A}\n${B}\n`)
    expect(await list.isRevoked(C)).toBe(false)
    // A longer file put in place by rename (a new inode): C sits where the old file had ended.
    const next = join(dataDir, 'next')
    await writeFile(next, `${randomUUID()}\n${randomUUID()}\n${C}\n`)
    await rename(next, list.path)
    expect(await list.isRevoked(C)).toBe(true)
    expect(await list.isRevoked(A)).toBe(true)
  })

  it('sees an in-place rewrite of the same size once its times change', async () => {
    const list = createFileRevocationList(dataDir)
    await writeFile(list.path, `${A}\n`)
    expect(await list.isRevoked(B)).toBe(false)
    await writeFile(list.path, `${B}\n`) // same inode, same size
    // The clock behind mtime can be coarser than two writes apart: set a distinct time.
    await utimes(list.path, new Date(2001, 1, 1), new Date(2001, 1, 1))
    expect(await list.isRevoked(B)).toBe(true)
  })

  it('fails closed at the next check once the file it had read turns unreadable', async () => {
    const list = createFileRevocationList(dataDir)
    await writeFile(list.path, `${A}\n`)
    expect(await list.isRevoked(B)).toBe(false)
    await rm(list.path)
    await mkdir(list.path)
    for (let i = 0; i < 2; i++) {
      const err = await list.isRevoked(B).catch((e) => e)
      expect(err.code).toBe('store_unavailable')
    }
    expect(await list.isRevoked(A)).toBe(true) // what it knew still counts
  })

  it('fails closed when the data dir turns into a file after an answer from memory', async () => {
    const list = createFileRevocationList(dataDir)
    expect(await list.isRevoked(A)).toBe(false)
    await rm(dataDir, { recursive: true })
    await writeFile(dataDir, 'x')
    const err = await list.isRevoked(A).catch((e) => e)
    expect(err.code).toBe('store_unavailable')
    await rm(dataDir)
    await mkdir(dataDir)
  })

  it('keeps failing closed on a corrupt line appended after an answer from memory', async () => {
    const list = createFileRevocationList(dataDir)
    await writeFile(list.path, `${A}\n`)
    expect(await list.isRevoked(B)).toBe(false)
    await appendFile(list.path, 'not an id!\n')
    for (let i = 0; i < 2; i++) {
      const err = await list.isRevoked(B).catch((e) => e)
      expect(err.code).toBe('store_unavailable')
    }
  })

  it('answers as the file says, whatever the order of checks, revocations and outside appends', async () => {
    const ids = Array.from({ length: 6 }, () => randomUUID())
    const step = fc.oneof(
      fc.record({ op: fc.constant('check' as const), id: fc.nat(5) }),
      fc.record({ op: fc.constant('revoke' as const), id: fc.nat(5) }),
      fc.record({ op: fc.constant('outside' as const), id: fc.nat(5) }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 20 }), async (steps) => {
        const dir = await mkdtemp(join(tmpdir(), 'warden-revocations-prop-'))
        try {
          const list = createFileRevocationList(dir)
          const other = createFileRevocationList(dir)
          const truth = new Set<string>()
          for (const { op, id } of steps) {
            const jti = ids[id] as string
            if (op === 'check') {
              expect(await list.isRevoked(jti)).toBe(truth.has(jti))
            } else if (op === 'revoke') {
              await other.revoke(jti)
              truth.add(jti)
            } else {
              await appendFile(join(dir, 'revoked-tokens.txt'), `${jti}\n`)
              truth.add(jti)
            }
          }
          for (const jti of ids) {
            expect(await list.isRevoked(jti)).toBe(truth.has(jti))
          }
        } finally {
          await rm(dir, { recursive: true, force: true })
        }
      }),
      { numRuns: 40 },
    )
  })
})

describe('createMemoryRevocationList', () => {
  it('starts from the ids given and revokes more', async () => {
    const list = createMemoryRevocationList([A])
    expect(await list.isRevoked(A)).toBe(true)
    await list.revoke(B)
    expect(await list.isRevoked(B)).toBe(true)
    expect(await list.isRevoked(C)).toBe(false)
  })
})
