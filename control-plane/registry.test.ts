/**
 * The registry hands out shared, frozen records (a run looks its app up on every request):
 * nobody can change the registry through one, and every change, and every change undone
 * because it could not be saved, shows in the next read.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openAppRegistry } from './registry.js'
import type { AppRegistry, Registration } from './registry.js'

let dir: string
let registry: AppRegistry

const digest = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`

function registration(n: number, tier: 'low' | 'medium' = 'medium'): Registration {
  return {
    name: 'shop',
    owner: 'it',
    purpose: 'testing',
    actor: 'key:pub',
    actorIsAdmin: false,
    digest: digest(n),
    sizeBytes: 10,
    kind: 'action',
    imports: ['warden:platform/http@0.1.0'],
    exports: ['run'],
    risk: { tier, reasons: [`tier ${tier}`] },
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-registry-'))
  registry = await openAppRegistry(dir)
})

afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('app records', () => {
  it('are deeply frozen: changing one throws and changes nothing', async () => {
    const { record } = await registry.register(registration(1))
    const got = registry.get(record.id)!
    expect(Object.isFrozen(got)).toBe(true)
    expect(() => {
      ;(got as { status: string }).status = 'approved'
    }).toThrow(TypeError)
    expect(() => got.versions.push(got.versions[0]!)).toThrow(TypeError)
    expect(() => {
      ;(got.versions[0] as { approvedAt?: string }).approvedAt = 'now'
    }).toThrow(TypeError)
    expect(() => got.imports.push('warden:platform/secrets@0.1.0')).toThrow(TypeError)
    const again = registry.get('shop')!
    expect(again.status).toBe('pending')
    expect(again.versions).toHaveLength(1)
    expect(again.versions[0]!.approvedAt).toBeUndefined()
    expect(again.imports).toEqual(['warden:platform/http@0.1.0'])
    expect(registry.list()[0]!.status).toBe('pending')
  })

  it('show every change at the next read: approval, kill switch, new version, decommission', async () => {
    const { record } = await registry.register(registration(1))
    expect(registry.get(record.id)!.status).toBe('pending')
    await registry.approve(record.id, 'key:admin', { digest: digest(1), isPublisher: () => false })
    expect(registry.get(record.id)!.status).toBe('approved')
    await registry.setDisabled(record.id, true, 'key:admin')
    expect(registry.get('shop')!.status).toBe('disabled')
    expect(registry.list({ status: 'disabled' })).toHaveLength(1)
    await registry.setDisabled(record.id, false, 'key:admin')
    expect(registry.get(record.id)!.status).toBe('approved')
    await registry.register(registration(2))
    const moved = registry.get(record.id)!
    expect(moved.digest).toBe(digest(2))
    expect(moved.status).toBe('pending')
    await registry.decommission(record.id, 'key:admin')
    expect(registry.get(record.id)!.status).toBe('decommissioned')
  })

  it('show a run at the next read, and keep it through a later change', async () => {
    const { record } = await registry.register(registration(1, 'low'))
    expect(registry.get(record.id)!.lastRunAt).toBeUndefined()
    registry.touchRun(record.id)
    const ran = registry.get(record.id)!
    expect(ran.lastRunAt).toEqual(expect.any(String))
    expect(Object.isFrozen(ran)).toBe(true)
    await registry.setDisabled(record.id, true, 'key:admin')
    expect(registry.get(record.id)).toMatchObject({ status: 'disabled', lastRunAt: ran.lastRunAt })
  })

  it('show the state before a change that could not be saved', async () => {
    const { record } = await registry.register(registration(1))
    expect(registry.get(record.id)!.status).toBe('pending')
    // registry.json becomes a directory that is not empty: the atomic rename onto it fails.
    await rm(join(dir, 'registry.json'))
    await mkdir(join(dir, 'registry.json', 'in-the-way'), { recursive: true })
    const approving = registry.approve(record.id, 'key:admin', {
      digest: digest(1),
      isPublisher: () => false,
    })
    registry.get(record.id) // a read while the save is under way
    await expect(approving).rejects.toThrow()
    const after = registry.get(record.id)!
    expect(after.status).toBe('pending')
    expect(after.versions[0]!.approvedAt).toBeUndefined()
    await expect(registry.register(registration(2))).rejects.toThrow()
    expect(registry.get(record.id)!.versions).toHaveLength(1)
    expect(registry.get(record.id)!.digest).toBe(digest(1))
  })
})
