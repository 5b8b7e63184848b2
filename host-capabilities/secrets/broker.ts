/**
 * The broker half of `warden:platform/secrets`. Secrets never enter a worker: the guest names
 * a secret, the broker does the work and returns only the result (an HMAC), or, with an
 * explicit `reveal: true` grant, the plaintext.
 *
 * Denied by default: a run whose grants hold no `warden:platform/secrets` entry can use no
 * secret. A secret that is not granted and one that is granted but missing from the store get
 * the same `denied` answer, so a guest cannot probe which secrets exist.
 */
import { createHmac } from 'node:crypto'
import { HostCallError } from '../types.js'
import type { BrokerCapability, RunContext, SecretSource } from '../types.js'
import { secretsDescriptor } from './descriptor.js'
import { findSecretGrant, isCompiledSecretsGrant } from './grant.js'
import type { CompiledSecretsGrant } from './grant.js'
import { isSecretName } from './names.js'

/** The interface as jco keys it, and as `RunContext.grants` is keyed. */
export const SECRETS_INTERFACE = secretsDescriptor.interface

/**
 * The function name (as the broker records it in `BrokerDecision.fn`) of the one operation
 * that hands a secret's plaintext to a guest. The auditor flags every record with it.
 */
export const REVEAL_OP = 'reveal'

/** Options of {@link createSecretsCapability}. */
export interface SecretsCapabilityOptions {
  /** Where plaintexts are read; e.g. the store from `createFileSecretStore`. */
  source: SecretSource
}

function invalid(message: string): HostCallError {
  return new HostCallError('invalid', message)
}

function notGranted(name: string): HostCallError {
  return new HostCallError('denied', `secret ${name} is not granted (it may or may not exist)`)
}

function arity(args: unknown[], n: number, fn: string): void {
  if (args.length !== n) {
    throw invalid(`${fn} takes ${n} argument${n === 1 ? '' : 's'}`)
  }
}

function parseName(value: unknown): string {
  if (typeof value !== 'string') {
    throw invalid('name is not a string')
  }
  if (!isSecretName(value)) {
    throw invalid('name is not a valid secret name (^[a-z][a-z0-9_]{0,63}$)')
  }
  return value
}

/** The run's compiled grant: absent means nothing granted; malformed is host misuse. */
function grantOf(ctx: RunContext): CompiledSecretsGrant | undefined {
  const grant = ctx.grants[SECRETS_INTERFACE]
  if (grant === undefined) {
    return undefined
  }
  if (!isCompiledSecretsGrant(grant)) {
    throw new TypeError(`grants['${SECRETS_INTERFACE}'] is not a compiled secrets grant`)
  }
  return grant
}

/**
 * Create the secrets capability for the broker.
 *
 * - `hmacSha256(name, data)`: HMAC-SHA256 of `data` keyed by the secret's UTF-8 bytes.
 * - `reveal(name)`: the plaintext, only when the grant says `reveal: true` for `name`.
 *
 * @example
 * const secrets = createSecretsCapability({ source: secretStore })
 * const onHostCall = createBroker([secrets, data, http])
 */
export function createSecretsCapability(options: SecretsCapabilityOptions): BrokerCapability {
  const source = options.source
  if (typeof source?.read !== 'function') {
    throw new TypeError('source must implement SecretSource')
  }

  /** The plaintext of a granted secret, or `denied` exactly as for a secret not granted. */
  async function readGranted(name: string): Promise<string> {
    const value = await source.read(name)
    if (value === undefined) {
      throw notGranted(name)
    }
    return value
  }

  return {
    descriptor: secretsDescriptor,
    target(_fn, args) {
      // The secret's name, never its value.
      return typeof args[0] === 'string' ? args[0].slice(0, 128) : undefined
    },
    async handle(fn: string, args: unknown[], ctx: RunContext): Promise<unknown> {
      if (!Array.isArray(args)) {
        throw invalid('arguments are not a list')
      }
      switch (fn) {
        case 'hmacSha256': {
          arity(args, 2, fn)
          const name = parseName(args[0])
          const data = args[1]
          if (!(data instanceof Uint8Array)) {
            throw invalid('data is not a list<u8>')
          }
          if (!findSecretGrant(grantOf(ctx), name)) {
            throw notGranted(name)
          }
          const key = await readGranted(name)
          const mac = createHmac('sha256', Buffer.from(key, 'utf8')).update(data).digest()
          return new Uint8Array(mac)
        }
        case REVEAL_OP: {
          arity(args, 1, fn)
          const name = parseName(args[0])
          const entry = findSecretGrant(grantOf(ctx), name)
          if (!entry) {
            throw notGranted(name)
          }
          if (!entry.reveal) {
            throw new HostCallError('denied', `secret ${name} may be used but not revealed`)
          }
          return readGranted(name)
        }
        default:
          throw invalid('unknown function')
      }
    },
  }
}
