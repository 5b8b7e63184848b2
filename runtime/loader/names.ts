/**
 * The grammar every name in an uploaded component must match before jco sees it (issue 6).
 *
 * jco 1.11.2 pastes names from the component into the glue it generates without escaping
 * them, so a name is code. Each kind of name gets an allowlist (STYLE.md §12): what the
 * component model and the toolchains that target it produce, and nothing else. See
 * docs/component-names.md.
 */
import { WardenError } from '../errors.js'

/** Longest name accepted anywhere in a component, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024

/**
 * Where a name sits, which decides its grammar:
 * - `extern`: a component-level import or export name, an instantiation argument, an alias of
 *   an instance export, an import or export declared inside a component or instance type;
 * - `label`: a record field, variant case, flag, enum case or function parameter;
 * - `core`: a core module's import module and field names and export names, a core
 *   instantiation argument, a core inline export, an alias of a core instance export.
 */
export type NameKind = 'extern' | 'label' | 'core'

// WIT kebab case, as wasmparser 0.227 checks it: every segment starts with a letter and is
// all lower or all upper case.
const WORD = '[a-z][a-z0-9]*'
const SEGMENT = `(?:${WORD}|[A-Z][A-Z0-9]*)`
const LABEL = `${SEGMENT}(?:-${SEGMENT})*`
const LOWER_LABEL = `${WORD}(?:-${WORD})*`
const IDENT = '(?:0|[1-9][0-9]*)'
const DOTTED = '[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*'
const SEMVER = `${IDENT}\\.${IDENT}\\.${IDENT}(?:-${DOTTED})?(?:\\+${DOTTED})?`
const PLAIN_NAME = `(?:${LABEL}|\\[constructor\\]${LABEL}|\\[(?:method|static)\\]${LABEL}\\.${LABEL})`
const INTERFACE_NAME = `${LOWER_LABEL}:${LOWER_LABEL}/${LABEL}(?:@${SEMVER})?`

const LABEL_RE = new RegExp(`^${LABEL}$`)
const EXTERN_RE = new RegExp(`^(?:${PLAIN_NAME}|${INTERFACE_NAME})$`)
// Core names are what wit-component, componentize-js and wasi-libc write: `cabi_realloc`,
// `[export]$root`, `wasi:cli/environment@0.2.3`, `cabi_post_a:b/c@1.0.0#[method]r.m`, `0`, and
// the empty module name of wit-component's fixup module. A `[` only opens a lowercase
// `[annotation]`, at the start or right after a `#`.
const CORE_CHARS = '[A-Za-z0-9_.:/@$-]*'
const ANNOTATION = '(?:\\[[a-z][a-z0-9-]*\\])?'
const CORE_RE = new RegExp(`^${ANNOTATION}${CORE_CHARS}(?:#${ANNOTATION}${CORE_CHARS})*$`)

// Names that change an object rather than name a property of it, wherever glue uses a name as
// a key (`{ '__proto__': … }` sets the prototype) or a class member.
const RESERVED = new Set(['__proto__', 'constructor', 'prototype'])

/** A WIT label: kebab case, each segment all lower or all upper case. */
export function isLabel(name: string): boolean {
  return LABEL_RE.test(name) && !RESERVED.has(name.toLowerCase())
}

/**
 * A component-level extern name: a plain name (`run`, `[method]fields.get`) or an interface
 * name (`wasi:cli/environment@0.2.3`). `url=`, `integrity=` and dependency names are refused.
 */
export function isExternName(name: string): boolean {
  if (!EXTERN_RE.test(name)) {
    return false
  }
  // `[method]r.m`: every label in it, not just the whole, must stay clear of the reserved words.
  const labels = name.replace(/^\[[a-z]+\]/, '').split(/[.:/@]/, 3)
  return !labels.some((label) => RESERVED.has(label.toLowerCase()))
}

/** A core name: ASCII letters, digits, `_ - . : / @ # $` and `[annotation]` prefixes. */
export function isCoreName(name: string): boolean {
  return CORE_RE.test(name) && !RESERVED.has(name)
}

const CHECKS: Readonly<Record<NameKind, (name: string) => boolean>> = {
  extern: isExternName,
  label: isLabel,
  core: isCoreName,
}

/** Whether `name` is allowed as a name of kind `kind` (and within {@link MAX_NAME_BYTES}). */
export function isAllowedName(kind: NameKind, name: string): boolean {
  // The grammars are ASCII-only, so the string length is the byte length.
  return name.length <= MAX_NAME_BYTES && CHECKS[kind](name)
}

/**
 * Throw `invalid_component` unless `name` is allowed as a name of kind `kind`. `where` says
 * where it was found ("core export name of module 2"); the name itself is quoted, escaped and
 * cut to 80 characters.
 *
 * @example
 * checkName('core', 'cabi_realloc', 'core export name of module 1')
 */
export function checkName(kind: NameKind, name: string, where: string): void {
  if (!isAllowedName(kind, name)) {
    throw new WardenError('invalid_component', `${where} ${quoteName(name)} is not allowed`)
  }
}

/**
 * `name` as a JSON string literal cut to 80 characters, with everything outside printable
 * ASCII escaped as `\uXXXX`: safe to print in a log line or a terminal.
 */
export function quoteName(name: string): string {
  const quoted = JSON.stringify(name.length > 80 ? name.slice(0, 80) : name).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
  return name.length > 80 ? `${quoted}...` : quoted
}
