/**
 * Reads a component's world from the WIT text that jco's `componentWit` prints, and checks
 * its imports against the capabilities this host can provide.
 */
import type { CapabilityDescriptor } from '../../host-capabilities/types.js'
import { WardenError } from '../errors.js'

/** One import or export of the component's world. */
export interface WorldItem {
  /** As written: `warden:platform/log@0.1.0`, or a plain name (`run`) for a function. */
  name: string
  /** `interface` for a package interface, `function` or `inline` otherwise. */
  kind: 'interface' | 'function' | 'inline'
}

/** The component's world. */
export interface ComponentWorld {
  imports: WorldItem[]
  exports: WorldItem[]
}

/** Parse the `world root { … }` block of `componentWit` output. Nested blocks are skipped. */
export function parseWorld(wit: string): ComponentWorld {
  // Comments first: a `{`, `}` or `;` inside one must not move the parser.
  const text = wit.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ')
  const start = text.search(/^\s*world\s+[\w-]+\s*\{/m)
  if (start < 0) {
    throw new WardenError('invalid_component', 'the component has no world')
  }
  const world: ComponentWorld = { imports: [], exports: [] }
  let depth = 0
  let statement = ''
  const body = text.slice(text.indexOf('{', start) + 1)
  for (const ch of body) {
    if (ch === '{') {
      depth++
      if (depth === 1) {
        take(world, statement)
        statement = ''
      }
      continue
    }
    if (ch === '}') {
      if (depth === 0) {
        break
      }
      depth--
      continue
    }
    if (depth > 0) {
      continue
    }
    if (ch === ';') {
      take(world, statement)
      statement = ''
    } else {
      statement += ch
    }
  }
  return world
}

function take(world: ComponentWorld, raw: string): void {
  // Drop doc comments and whitespace; what is left is `import x;`, `export f: func(...)`, …
  const text = raw.replace(/\/\/[^\n]*/g, '').trim()
  const match = /^(import|export)\s+([\s\S]+)$/.exec(text)
  if (!match) {
    return
  }
  const [, direction, rest] = match
  // `name: func(…)` and `name: interface { … }` are plain names; anything else is a path.
  const named = /^%?([\w-]+)\s*:\s*(func|interface|async)\b/.exec(rest!)
  const item: WorldItem = named
    ? { name: named[1]!, kind: named[2] === 'interface' ? 'inline' : 'function' }
    : { name: rest!.trim().replace(/^%/, ''), kind: 'interface' }
  if (direction === 'import') {
    world.imports.push(item)
  } else {
    world.exports.push(item)
  }
}

/** `warden:platform/log@0.1.0` → `{ interface: 'warden:platform/log', version: '0.1.0' }`. */
export function splitInterfaceName(name: string): {
  interface: string
  version: string | undefined
} {
  const at = name.lastIndexOf('@')
  return at < 0
    ? { interface: name, version: undefined }
    : { interface: name.slice(0, at), version: name.slice(at + 1) }
}

/**
 * Refuse the first import this host cannot provide, naming it (`unsupported_import`).
 * Returns the unversioned interface names, as jco keys them in the import object.
 */
export function checkImports(
  world: ComponentWorld,
  available: readonly CapabilityDescriptor[],
): string[] {
  const byName = new Map(available.map((d) => [d.interface, d]))
  const accepted: string[] = []
  for (const item of world.imports) {
    const { interface: iface, version } = splitInterfaceName(item.name)
    const descriptor = item.kind === 'interface' ? byName.get(iface) : undefined
    if (!descriptor || version === undefined || !descriptor.versions.includes(version)) {
      throw new WardenError(
        'unsupported_import',
        `the component imports ${item.name}, which Warden does not provide`,
      )
    }
    accepted.push(iface)
  }
  return accepted
}
