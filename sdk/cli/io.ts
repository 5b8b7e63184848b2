/**
 * What the `warden` commands touch outside themselves: output streams, stdin, the environment,
 * the exit code and the Warden host. `main.ts` passes the process's; tests pass their own, so
 * the whole command line runs in-process (see `program.ts`).
 */
import { readFile } from 'node:fs/promises'
import type { z } from 'zod'
import { describeIssue, WardenError } from '../../runtime/index.js'
import type { HostConfig, Warden } from '../../runtime/index.js'

/** The outside world of the command line. */
export interface CliIo {
  /** Write to stdout: a command's data (a token, JSON, JSONL, a guest's output). */
  stdout(text: string): void
  /** Write to stderr: summaries, progress, guest log lines, errors. */
  stderr(text: string): void
  /** All of stdin, as UTF-8. */
  readStdin(): Promise<string>
  /** The environment: `WARDEN_*` host settings, `WARDEN_TOKEN`, `--from-env` variables. */
  env: Readonly<Record<string, string | undefined>>
  /** Record the process exit code of the command that ran. */
  setExitCode(code: number): void
  /** The host configuration. Default: `resolveHostConfig(env)`. */
  hostConfig?: () => Readonly<HostConfig>
  /**
   * Open Warden for one command; the command closes it when done. Default:
   * `openWarden({ ...hostConfig(), poolSize: 1 })`.
   */
  openWarden?: () => Promise<Warden>
  /** Whether stderr is a terminal (progress redraws one line). Default false. */
  isTTY?: boolean
  /** `warden serve` runs until this resolves. Default: the first SIGTERM or SIGINT. */
  waitForStop?: () => Promise<void>
}

/**
 * Reads the values of arguments that accept `@file` (read that file) or `-` (read stdin),
 * as `--grants`, `--token` and `data put` do. Stdin can be read once per command.
 */
export interface ValueReader {
  /** The text of `arg`: the file's content for `@file`, stdin for `-`, else `arg` itself. */
  text(arg: string, what: string): Promise<string>
  /** {@link ValueReader.text}, parsed as JSON. Throws `invalid_request` if it is not JSON. */
  json(arg: string, what: string): Promise<unknown>
}

/**
 * A {@link ValueReader} over `readStdin`. File contents are used as they are (a JSON file's
 * trailing newline is harmless); callers that need a bare value (a token) trim it.
 *
 * @example
 * const grants = await createValueReader(io).json('@grants.json', '--grants')
 */
export function createValueReader(io: Pick<CliIo, 'readStdin'>): ValueReader {
  let stdinTaken: string | undefined
  const reader: ValueReader = {
    async text(arg, what) {
      if (arg === '-') {
        if (stdinTaken !== undefined) {
          throw new WardenError(
            'invalid_request',
            `${what} and ${stdinTaken} cannot both be read from stdin (-)`,
          )
        }
        stdinTaken = what
        return io.readStdin()
      }
      if (arg.startsWith('@')) {
        const path = arg.slice(1)
        try {
          return await readFile(path, 'utf8')
        } catch (error) {
          throw new WardenError('invalid_request', `${what}: cannot read ${path}`, { cause: error })
        }
      }
      return arg
    },
    async json(arg, what) {
      return parseJson(await reader.text(arg, what), what)
    },
  }
  return reader
}

/** `text` parsed as JSON; `invalid_request` naming `what` (never quoting the text) if it is not. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new WardenError('invalid_request', `${what} is not valid JSON`, { cause: error })
  }
}

/**
 * `value` parsed with a zod schema; a failure is `invalid_request` naming the first bad field
 * under `root` (`grants.http[0].host: not a canonical host pattern`).
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  root: string,
): z.output<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    throw new WardenError('invalid_request', describeIssue(parsed.error, root))
  }
  return parsed.data
}
