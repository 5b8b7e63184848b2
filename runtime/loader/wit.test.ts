/**
 * `wit/` as contracts: the files parse, jco reads them as the same WIT, a component built from
 * them passes the checks it was built against, and a hostile type cannot make a message slow.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { describe, expect, it } from 'vitest'
import { DEFAULT_CAPABILITIES } from '../../host-capabilities/index.js'
import { WardenError } from '../errors.js'
import { readComponentSurface } from './component-types.js'
import { checkComponentContract } from './contract.js'
import { parseWitContracts, shippedContracts, witDir } from './wit.js'
import { printFunc } from './wit-types.js'

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return error instanceof WardenError ? error.code : 'not-a-warden-error'
  }
  return undefined
}

describe('the contracts of wit/', () => {
  it('has the platform, the WASI baseline and the two worlds', () => {
    const contracts = shippedContracts()
    const log = contracts.interfaces.get('warden:platform/log')!.items.get('write')!
    expect(log.sort === 'func' && printFunc('write', log.type)).toBe(
      'write: func(level: level, message: string)',
    )
    const write = contracts.interfaces
      .get('wasi:io/streams')!
      .items.get('[method]output-stream.blocking-write-and-flush')!
    expect(write.sort === 'func' && printFunc('w', write.type)).toBe(
      'w: func(self: borrow<output-stream>, contents: list<u8>) -> result<_, stream-error>',
    )
    expect([...contracts.worlds.keys()]).toEqual([
      'warden:platform/action',
      'warden:platform/micro-app',
    ])
    // Every baseline interface Warden provides has a contract.
    for (const d of DEFAULT_CAPABILITIES) {
      expect(contracts.interfaces.has(d.interface), d.interface).toBe(true)
    }
  })

  it('is the WIT jco reads: a component importing all of it passes', async () => {
    const texts = ['platform.wit', 'wasi.wit'].map((f) => readFileSync(join(witDir(), f), 'utf8'))
    const contracts = shippedContracts()
    const imports = [...contracts.interfaces.keys()]
      .filter((i) => i !== 'warden:platform/handler')
      .map((i) =>
        i.startsWith('warden:platform/')
          ? `import ${i.slice('warden:platform/'.length)};`
          : `import ${i}@${contracts.versions.get(i.slice(0, i.indexOf('/')))};`,
      )
    // The world goes into the platform package, the WASI packages nest after it.
    const world = [
      'world everything {',
      ...imports.map((i) => `  ${i}`),
      '  export run: func(input: string) -> result<string, string>;',
      '}',
    ].join('\n')
    const wasi = texts[1]!
      .replace('package wasi:io@0.2.0;', 'package wasi:io@0.2.0 {')
      .replace('\npackage wasi:clocks@0.2.0 {', '}\n\npackage wasi:clocks@0.2.0 {')
    // A dummy core module imports every function of the world (componentNew drops the rest).
    const embedded = await componentEmbed({
      dummy: true,
      witSource: `${texts[0]}\n${world}\n${wasi}`,
      world: 'everything',
      stringEncoding: 'utf8',
    } as Parameters<typeof componentEmbed>[0])
    const bytes = await componentNew(embedded, [])
    // NB: not checkComponentStructure: the dummy module's core names (`cm32p2|…`) are refused.
    const surface = readComponentSurface(bytes)
    expect(surface.imports.size).toBe(imports.length)
    expect(checkComponentContract(surface, contracts, DEFAULT_CAPABILITIES)).toBe('action')
  })

  it('refuses WIT outside its grammar or naming an unknown type', () => {
    expect(() => parseWitContracts(['package a:b;\ninterface i { f: func() -> nope; }'])).toThrow(
      TypeError,
    )
    expect(() => parseWitContracts(['package a:b;\nresource r;'])).toThrow(TypeError)
  })
})

describe('a hostile type in a refused import', () => {
  it('is printed within a budget: a type that unfolds to 2^40 parts costs nothing', async () => {
    // t0 = tuple<u8, u8>; t(i) = tuple<t(i-1), t(i-1)>: 40 types, 2^40 leaves unfolded.
    const types = ['(type $t0 (tuple u8 u8))']
    for (let i = 1; i <= 40; i++) {
      types.push(`(type $t${i} (tuple $t${i - 1} $t${i - 1}))`)
    }
    // Imports are checked before exports: this one needs no more to be refused.
    const component = await parse(`(component
      (import "warden:platform/log@0.1.0" (instance
        ${types.join('\n        ')}
        (export "write" (func (param "x" $t40))))))`)
    const started = performance.now()
    const surface = readComponentSurface(component)
    expect(
      codeOf(() => checkComponentContract(surface, shippedContracts(), DEFAULT_CAPABILITIES)),
    ).toBe('unsupported_import')
    expect(performance.now() - started).toBeLessThan(1_000)
  })
})
