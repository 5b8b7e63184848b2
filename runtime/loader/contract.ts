/**
 * A component against `wit/`: it must implement the world it claims (`action` or `micro-app`)
 * with the exports' exact types, and every function and type it imports must be one Warden
 * provides, with the signature Warden provides it with. Types are compared structurally (as
 * the component model does), resources by their defining interface and name.
 */
import type { CapabilityDescriptor } from '../../host-capabilities/types.js'
import { WardenError } from '../errors.js'
import type { ComponentSurface, Entity, Items, TypeEntry } from './component-types.js'
import { printFunc, printType, TypeKeys } from './wit-types.js'
import type { Contracts, FuncType, InterfaceContract, ResourceType, ValType } from './wit-types.js'
import { splitInterfaceName } from './world.js'

/** What a world exports decides how Warden calls it. */
export type ComponentKind = 'action' | 'micro-app'

/** The worlds Warden runs, and the kind each makes a component. */
const WORLDS: readonly { world: string; kind: ComponentKind }[] = [
  { world: 'warden:platform/action', kind: 'action' },
  { world: 'warden:platform/micro-app', kind: 'micro-app' },
]

/**
 * Check a component's imports and exports against the contracts. Returns the world's kind.
 * Throws `unsupported_import` for an import Warden does not provide as declared, naming the
 * function or type and both signatures, and `invalid_component` for a component that does
 * not implement exactly one of Warden's worlds, naming what is missing or mistyped.
 *
 * @example
 * const surface = readComponentSurface(bytes)
 * const kind = checkComponentContract(surface, shippedContracts(), DEFAULT_CAPABILITIES)
 */
export function checkComponentContract(
  surface: ComponentSurface,
  contracts: Contracts,
  capabilities: readonly CapabilityDescriptor[],
): ComponentKind {
  const keys = new TypeKeys()
  checkImportTypes(surface.imports, contracts, capabilities, keys)
  return checkWorld(surface.exports, contracts, keys)
}

function checkImportTypes(
  imports: Items,
  contracts: Contracts,
  capabilities: readonly CapabilityDescriptor[],
  keys: TypeKeys,
): void {
  const byName = new Map(capabilities.map((d) => [d.interface, d]))
  for (const [name, entity] of imports) {
    const { interface: iface, version } = splitInterfaceName(name)
    const descriptor = byName.get(iface)
    if (
      entity.sort !== 'instance' ||
      !descriptor ||
      version === undefined ||
      !descriptor.versions.includes(version)
    ) {
      throw new WardenError(
        'unsupported_import',
        `the component imports ${name}, which Warden does not provide`,
      )
    }
    // A resource first seen in an imported instance belongs to that interface.
    for (const [item, e] of entity.exports) {
      if (e.sort === 'type' && e.type.kind === 'resource' && e.type.owner === undefined) {
        e.type.owner = iface
        e.type.name = item
      }
    }
    const contract = contracts.interfaces.get(iface)
    for (const [item, e] of entity.exports) {
      if (contract) {
        checkImportedItem(name, contract, item, e, keys)
      } else {
        checkImportedName(name, descriptor, item, e)
      }
    }
  }
}

function checkImportedItem(
  name: string,
  contract: InterfaceContract,
  item: string,
  e: Entity,
  keys: TypeKeys,
): void {
  const want = contract.items.get(item)
  if (e.sort === 'func') {
    if (want?.sort !== 'func') {
      throw new WardenError(
        'unsupported_import',
        `the component imports ${name} function ${printFunc(item, e.type)}, but ${contract.name} ` +
          `has no function ${item} in Warden`,
      )
    }
    if (keys.of(e.type) !== keys.of(want.type)) {
      throw new WardenError(
        'unsupported_import',
        `the component imports ${name} function ` +
          signatures(item, e.type, want.type, 'Warden provides'),
      )
    }
    return
  }
  if (e.sort === 'type' && isValueOrResource(e.type)) {
    if (want?.sort !== 'type') {
      throw new WardenError(
        'unsupported_import',
        `the component imports ${name} type ${item}, which ${contract.name} does not have in ` +
          'Warden',
      )
    }
    if (keys.of(e.type) !== keys.of(want.type)) {
      throw new WardenError(
        'unsupported_import',
        `the component imports ${name} type ${item} = ${printType(e.type, 1)}, but Warden ` +
          `provides ${item} = ${printType(want.type, 1)}`,
      )
    }
    return
  }
  throw new WardenError(
    'unsupported_import',
    `the component imports ${name} ${e.sort} ${item}, which Warden does not provide`,
  )
}

/**
 * An interface Warden provides without a WIT contract (an embedder's capability): its
 * functions are checked by name against the descriptor, as jco names them on the import
 * object (`echo-item` → `echoItem`; a resource's methods → its class, `OutputStream`).
 */
function checkImportedName(
  name: string,
  descriptor: CapabilityDescriptor,
  item: string,
  e: Entity,
): void {
  if (e.sort === 'type') {
    return
  }
  const resource = /^\[(?:method|static|constructor)\]([a-z0-9-]+)/.exec(item)
  const jsName = resource ? pascal(resource[1]!) : camel(item)
  if (e.sort !== 'func' || !descriptor.functions.includes(jsName)) {
    throw new WardenError(
      'unsupported_import',
      `the component imports ${name} ${e.sort} ${item}, which Warden does not provide`,
    )
  }
}

function camel(label: string): string {
  return label.replace(/-([a-z0-9])/gi, (_, c: string) => c.toUpperCase())
}

function pascal(label: string): string {
  const c = camel(label)
  return c.charAt(0).toUpperCase() + c.slice(1)
}

function isValueOrResource(t: TypeEntry): t is ValType | ResourceType {
  return t.kind !== 'func' && t.kind !== 'instance' && t.kind !== 'component'
}

/** `item: func(…)` as the component has it and as `provider` has it, for a message. */
function signatures(item: string, has: FuncType, want: FuncType, provider: string): string {
  let a = printFunc(item, has)
  let b = printFunc(item, want)
  if (a === b) {
    // The difference is inside a named type: spell the types out.
    a = printFunc(item, has, true)
    b = printFunc(item, want, true)
  }
  return `${a}, but ${provider} ${b}`
}

function checkWorld(exports: Items, contracts: Contracts, keys: TypeKeys): ComponentKind {
  const worlds = WORLDS.map(({ world, kind }) => {
    const contract = contracts.worlds.get(world)
    if (!contract) {
      throw new Error(`wit/ has no world ${world}`)
    }
    const names = [
      ...contract.functions.keys(),
      ...contract.interfaces.map((i) => versioned(i, contracts)),
    ]
    return { contract, kind, names }
  })
  // A world is claimed by exporting any of its items, an interface at any version included.
  const exported = new Set([...exports.keys()].flatMap((e) => [e, splitInterfaceName(e).interface]))
  const claimed = worlds.filter(
    (w) =>
      [...w.contract.functions.keys()].some((f) => exported.has(f)) ||
      w.contract.interfaces.some((i) => exported.has(i)),
  )
  if (claimed.length === 0) {
    const wanted = worlds.map((w) => `${w.contract.name} (export ${w.names.join(', ')})`)
    throw new WardenError(
      'invalid_component',
      `the component implements none of Warden's worlds: ${wanted.join(' or ')}`,
    )
  }
  if (claimed.length > 1) {
    throw new WardenError(
      'invalid_component',
      `the component exports ${claimed.map((w) => w.names.join(', ')).join(' and ')}: ` +
        'a component implements one world',
    )
  }
  const { contract, kind } = claimed[0]!
  const world = contract.name
  for (const [fn, want] of contract.functions) {
    const e = exports.get(fn)
    if (!e) {
      throw new WardenError(
        'invalid_component',
        `the ${world} world exports ${fn}, the component does not`,
      )
    }
    if (e.sort !== 'func') {
      throw new WardenError(
        'invalid_component',
        `the component exports ${fn} as a ${e.sort}; the ${world} world exports ` +
          printFunc(fn, want),
      )
    }
    if (keys.of(e.type) !== keys.of(want)) {
      throw new WardenError(
        'invalid_component',
        `the component exports ${signatures(fn, e.type, want, `the ${world} world exports`)}`,
      )
    }
  }
  for (const iface of contract.interfaces) {
    const name = versioned(iface, contracts)
    const e = exports.get(name)
    if (!e) {
      const other = [...exports.keys()].find((k) => splitInterfaceName(k).interface === iface)
      throw new WardenError(
        'invalid_component',
        other
          ? `the component exports ${other}; the ${world} world exports ${name}`
          : `the ${world} world exports ${name}, the component does not`,
      )
    }
    if (e.sort !== 'instance') {
      throw new WardenError(
        'invalid_component',
        `the component exports ${name} as a ${e.sort}, not an interface`,
      )
    }
    checkExportedInterface(name, e.exports, contracts.interfaces.get(iface)!, keys)
  }
  return kind
}

function versioned(iface: string, contracts: Contracts): string {
  const version = contracts.versions.get(iface.slice(0, iface.indexOf('/')))
  return version ? `${iface}@${version}` : iface
}

function checkExportedInterface(
  name: string,
  items: Items,
  contract: InterfaceContract,
  keys: TypeKeys,
): void {
  for (const [item, want] of contract.items) {
    if (want.sort !== 'func') {
      continue
    }
    const e = items.get(item)
    if (e?.sort !== 'func') {
      throw new WardenError(
        'invalid_component',
        `the component's ${name} does not export ${printFunc(item, want.type)}`,
      )
    }
  }
  for (const [item, e] of items) {
    const want = contract.items.get(item)
    if (e.sort === 'func' && want?.sort === 'func') {
      if (keys.of(e.type) !== keys.of(want.type)) {
        throw new WardenError(
          'invalid_component',
          `the component's ${name} exports ` +
            signatures(item, e.type, want.type, 'the interface has'),
        )
      }
    } else if (e.sort === 'type' && want?.sort === 'type' && isValueOrResource(e.type)) {
      if (keys.of(e.type) !== keys.of(want.type)) {
        throw new WardenError(
          'invalid_component',
          `the component's ${name} exports type ${item} = ${printType(e.type, 1)}, but the ` +
            `interface has ${item} = ${printType(want.type, 1)}`,
        )
      }
    } else {
      throw new WardenError(
        'invalid_component',
        `the component's ${name} exports ${e.sort} ${item}, which the interface does not have`,
      )
    }
  }
}
