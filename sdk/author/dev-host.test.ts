/** Where `warden dev` takes secrets and data from: the dev secrets file and the fixtures. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WardenError } from '../../runtime/index.js'
import { readDevSecrets, readFixtures } from './dev-host.js'
import { parseManifest } from './manifest.js'

let dir: string
const manifest = parseManifest({ name: 'a', kind: 'action', owner: 'me', purpose: 'tests' })

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-dev-host-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const failure = async (promise: Promise<unknown>) => {
  try {
    await promise
  } catch (error) {
    return error as WardenError
  }
  throw new Error('expected a failure')
}

describe('the dev secrets file', () => {
  it('is optional', async () => {
    expect(await readDevSecrets(dir, manifest)).toEqual({})
  })

  it('maps names to values', async () => {
    await writeFile(join(dir, 'warden.secrets.json'), '{"github_token":"ghp_x"}')
    expect(await readDevSecrets(dir, manifest)).toEqual({ github_token: 'ghp_x' })
  })

  it('is refused when it is not JSON, without quoting it', async () => {
    await writeFile(join(dir, 'warden.secrets.json'), '{"github_token": ghp_leak')
    const error = await failure(readDevSecrets(dir, manifest))
    expect(error.code).toBe('invalid_request')
    expect(error.message).not.toContain('ghp_leak')
  })

  it('is refused when a value is not a string, or it is not an object', async () => {
    await writeFile(join(dir, 'warden.secrets.json'), '{"k":1}')
    expect((await failure(readDevSecrets(dir, manifest))).code).toBe('invalid_request')
    await writeFile(join(dir, 'warden.secrets.json'), '["k"]')
    expect((await failure(readDevSecrets(dir, manifest))).code).toBe('invalid_request')
  })
})

describe('the fixtures', () => {
  it('are documents by collection and key, keys from nested paths', async () => {
    const root = join(dir, 'fixtures')
    await mkdir(join(root, 'crm', 'contacts'), { recursive: true })
    await writeFile(join(root, 'crm', 'contacts', 'alice.json'), '{"name":"Alice"}')
    await writeFile(join(root, 'crm', 'README.txt'), 'not a document')
    expect(await readFixtures(root)).toEqual({ crm: { 'contacts/alice': { name: 'Alice' } } })
    expect(await readFixtures(join(dir, 'none'))).toEqual({})
  })

  it('refuse a document that is not JSON, naming the file', async () => {
    const root = join(dir, 'bad-fixtures')
    await mkdir(join(root, 'c'), { recursive: true })
    await writeFile(join(root, 'c', 'k.json'), '{')
    const error = await failure(readFixtures(root))
    expect(error.code).toBe('invalid_request')
    expect(error.message).toContain('k.json')
  })
})
