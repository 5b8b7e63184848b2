/**
 * The guest library's raw shapes are WIT's: jco generates the guest types of `wit/platform.wit`
 * (the declarations componentize-js bindings follow), and a type-check proves that each raw
 * import the library calls (`RawHttp`, `RawSecrets`, `RawData`, `RawLog`) is implemented by the
 * generated interface, that the WIT `handler` accepts what `wrapHandler` exports, and that
 * `HostErrorKind` is exactly the WIT `host-error` cases. A change to the WIT that the library
 * does not follow fails here.
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { types } from '@bytecodealliance/jco'
import { afterAll, beforeAll, expect, it } from 'vitest'

const guest = dirname(fileURLToPath(import.meta.url))
let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-wit-types-'))
  const wit = join(dir, 'wit')
  await mkdir(join(wit, 'deps', 'platform'), { recursive: true })
  await writeFile(
    join(wit, 'deps', 'platform', 'platform.wit'),
    await readFile(join(guest, '..', '..', 'wit', 'platform.wit'), 'utf8'),
  )
  await writeFile(
    join(wit, 'world.wit'),
    `package warden:check;
world all {
  import warden:platform/http@0.1.0;
  import warden:platform/secrets@0.1.0;
  import warden:platform/data@0.1.0;
  import warden:platform/log@0.1.0;
  export warden:platform/handler@0.1.0;
}
`,
  )
  const files = await types(wit, { worldName: 'all', guest: true } as Parameters<typeof types>[1])
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, 'types', name)), { recursive: true })
    await writeFile(join(dir, 'types', name), text)
  }
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

it('the raw imports and exports of the guest library are the WIT ones', async () => {
  const lib = (file: string) => JSON.stringify(join(guest, file))
  await writeFile(
    join(dir, 'check.ts'),
    `/// <reference path="./types/all.d.ts" />
import type * as Http from 'warden:platform/http@0.1.0'
import type * as Secrets from 'warden:platform/secrets@0.1.0'
import type * as Data from 'warden:platform/data@0.1.0'
import type * as Log from 'warden:platform/log@0.1.0'
import type * as Handler from 'warden:platform/handler@0.1.0'
import type * as Types from 'warden:platform/types@0.1.0'
import type { RawData, RawHttp, RawLog, RawSecrets } from ${lib('capabilities.ts')}
import type { HostErrorKind } from ${lib('api.ts')}
import type { wrapHandler } from ${lib('entry.ts')}

declare const http: typeof Http
declare const secrets: typeof Secrets
declare const data: typeof Data
declare const log: typeof Log
export const rawHttp: RawHttp = http
export const rawSecrets: RawSecrets = secrets
export const rawData: RawData = data
export const rawLog: RawLog = log
export const handler: { handle: typeof Handler.handle } = {} as ReturnType<typeof wrapHandler>

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
export const kinds: Same<HostErrorKind, Types.HostError['tag']> = true
`,
  )
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'Bundler',
        lib: ['ES2022', 'DOM'],
        types: [],
        skipLibCheck: true,
        allowImportingTsExtensions: true,
      },
      files: ['check.ts'],
    }),
  )
  const tsc = join(
    dirname(createRequire(import.meta.url).resolve('typescript/package.json')),
    'bin',
    'tsc',
  )
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', dir, '--pretty', 'false'])
    .then(() => '')
    .catch((error: { stdout?: string }) => error.stdout ?? String(error))
  expect(result).toBe('')
}, 120_000)
