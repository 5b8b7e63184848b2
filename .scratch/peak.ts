import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime } from '../runtime/index.js'
import { buildJsGuest, JS_MICRO_APP_WORLD } from '../test/support/js-guest.js'
const example = new URL('../examples/hello-http/', import.meta.url)
const js = await buildJsGuest('hello-http', JS_MICRO_APP_WORLD, new URL('hello-http.js', example))
const rt = await createRuntime({ dataDir: await mkdtemp(join(tmpdir(), 'peak-')), poolSize: 1 })
const c = await rt.load(js)
const REQUEST = { method: 'GET', path: '/', query: '', headers: [], body: new Uint8Array() }
for (let i = 0; i < 3; i++) { const r = await rt.call(c, 'handler.handle', [REQUEST]); console.log(JSON.stringify((r as any).report ?? r).slice(0, 600)) }
await rt.close()
