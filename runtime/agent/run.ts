/**
 * One agent run's input and answer: what `agent.js` parses (`{"source", "input"}`) and what its
 * `run` export answers (`{"ok": value}`, or an `err` of `{"message", "stack"}`), turned into the
 * script's return value or its error. The guest's words are checked here, not trusted: an
 * answer of the wrong shape is the guest's `guest_trap`, and a return value over
 * {@link MAX_AGENT_OUTPUT_BYTES} is `limit_exceeded`.
 */
import { Buffer } from 'node:buffer'
import { WardenError } from '../errors.js'
import type { Invocation } from '../runtime.js'

/** The largest script source, in UTF-16 units (the HTTP body is capped at 1 MiB anyway). */
export const MAX_AGENT_SOURCE_CHARS = 512 * 1024

/** The largest return value a script may hand back, as JSON text: 1 MiB. */
export const MAX_AGENT_OUTPUT_BYTES = 1024 * 1024

/** What the script threw: its message and its own frames (`name@script:LINE:COL`). */
export interface AgentScriptError {
  message: string
  stack: string
}

/** An agent run's outcome. */
export type AgentAnswer =
  | { ok: true; value: unknown }
  | { ok: false; scriptError: AgentScriptError }
  | { ok: false; error: WardenError }

/**
 * The input of the agent's `run`: the script and its input, as one JSON text.
 *
 * @example
 * await warden.run(agent, agentRequest('return input.a + 1', { a: 1 }), { token })
 */
export function agentRequest(source: string, input: unknown): string {
  if (typeof source !== 'string' || source.length > MAX_AGENT_SOURCE_CHARS) {
    throw new WardenError(
      'invalid_request',
      `source: a string of at most ${MAX_AGENT_SOURCE_CHARS} characters`,
    )
  }
  try {
    return JSON.stringify({ source, input: input === undefined ? null : input })
  } catch {
    throw new WardenError('invalid_request', 'input: not JSON (or nested too deeply)')
  }
}

function parse(text: unknown): unknown {
  if (typeof text !== 'string') {
    return undefined
  }
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const NOT_AN_ANSWER = new WardenError(
  'guest_trap',
  'the agent answered something that is not an answer',
)

/** The script's outcome from the agent's invocation (a Warden error stays in `invocation.error`). */
export function agentAnswer(invocation: Invocation): AgentAnswer {
  if (invocation.ok) {
    const text = invocation.output
    if (typeof text === 'string' && Buffer.byteLength(text) > MAX_AGENT_OUTPUT_BYTES + 8) {
      return {
        ok: false,
        error: new WardenError(
          'limit_exceeded',
          `the script returned more than ${MAX_AGENT_OUTPUT_BYTES} bytes of JSON`,
        ),
      }
    }
    const answer = parse(text)
    if (answer === null || typeof answer !== 'object' || !Object.hasOwn(answer, 'ok')) {
      return { ok: false, error: NOT_AN_ANSWER }
    }
    return { ok: true, value: (answer as { ok: unknown }).ok }
  }
  if (invocation.guestError !== undefined) {
    const thrown = parse(invocation.guestError) as Partial<AgentScriptError> | undefined
    if (typeof thrown?.message !== 'string' || typeof thrown.stack !== 'string') {
      return { ok: false, error: NOT_AN_ANSWER }
    }
    return { ok: false, scriptError: { message: thrown.message, stack: thrown.stack } }
  }
  return {
    ok: false,
    error: WardenError.fromJSON(invocation.error ?? { code: 'internal', message: 'no outcome' }),
  }
}
