import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openRouteStore, routeView } from './route-store.js'
import type { RouteBinding } from './route-store.js'

const dirs: string[] = []
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-routes-'))
  dirs.push(dir)
  return dir
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

const binding = (name: string, jti = 'j1'): RouteBinding => ({
  name,
  appId: 'app-0123456789abcdef',
  token: 'eyJ.secret.token',
  jti,
  exp: 2_000_000_000,
  boundAt: '2026-11-27T00:00:00.000Z',
  boundBy: 'key:admin',
})

describe('the route store', () => {
  it('binds, rebinds, unbinds, and keeps what it wrote across a reopen (mode 0600)', async () => {
    const dir = await tempDir()
    const routes = await openRouteStore(dir)
    expect(await routes.get('hello')).toBeUndefined()
    await routes.put(binding('hello'))
    await routes.put(binding('hello', 'j2'))
    await routes.put(binding('other'))
    expect((await routes.get('hello'))?.jti).toBe('j2')
    expect((await routes.delete('other'))?.name).toBe('other')
    expect(await routes.delete('other')).toBeUndefined()
    expect((await stat(join(dir, 'routes.json'))).mode & 0o777).toBe(0o600)
    const again = await openRouteStore(dir)
    expect(await again.get('hello')).toEqual(binding('hello', 'j2'))
    expect(await again.get('other')).toBeUndefined()
  })

  it('hands out copies: a caller cannot edit a stored binding', async () => {
    const routes = await openRouteStore(await tempDir())
    await routes.put(binding('hello'))
    const got = await routes.get('hello')
    got!.token = 'changed'
    expect((await routes.get('hello'))?.token).toBe('eyJ.secret.token')
  })

  it('shows no token in its view', () => {
    expect(routeView(binding('hello'))).not.toHaveProperty('token')
  })

  it('refuses a file that does not parse, and serves nothing it could not write', async () => {
    const broken = await tempDir()
    await writeFile(join(broken, 'routes.json'), '{"version":1,"routes":[{"name":1}]}')
    await expect(openRouteStore(broken)).rejects.toMatchObject({ code: 'internal' })

    const dir = await tempDir()
    const routes = await openRouteStore(dir)
    await routes.put(binding('hello'))
    // The data dir becomes a file: every write fails from here on.
    await rm(dir, { recursive: true })
    await writeFile(dir, 'not a directory')
    await expect(routes.put(binding('new'))).rejects.toMatchObject({ code: 'store_unavailable' })
    expect(await routes.get('new')).toBeUndefined()
    await expect(routes.delete('hello')).rejects.toMatchObject({ code: 'store_unavailable' })
    expect(await routes.get('hello')).toBeUndefined()
  })
})
