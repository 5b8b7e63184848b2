/**
 * The `warden` command line as a commander program over a {@link CliIo}. Each command is a
 * function elsewhere in this folder; here flags are parsed, Warden is opened and closed, results
 * are printed and exit codes set: 0 ok, 1 a Warden error (`error: <code>: <message>`), 2 usage
 * (bad flags, or `invalid_request`), 3 the guest returned its own `err`.
 *
 * With `--server <url>` (or `WARDEN_SERVER`) the admin commands talk to that server with the
 * API key in `WARDEN_KEY` (see `remote.ts`); a command that exists both ways branches inside.
 */
import { createPublicKey } from 'node:crypto'
import { join } from 'node:path'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { API_ROLES, openApiKeyStore } from '../../control-plane/index.js'
import type { ApiKeyStore, ApiRole } from '../../control-plane/index.js'
import {
  openRedisConnection,
  openWarden,
  resolveHostConfig,
  toWardenError,
  verifyAuditFile,
  WardenError,
} from '../../runtime/index.js'
import type {
  GrantsInput,
  HostConfig,
  Invocation,
  LimitsRequest,
  RedisConnection,
  Warden,
} from '../../runtime/index.js'
import { WardenApiError } from '../client/index.js'
import type { App, AppStatus, RiskTier, Route, WardenClient } from '../client/index.js'
import {
  auditFileReader,
  auditLogFile,
  auditSigningKeyFile,
  formatCheckpointResult,
  formatVerifyResult,
  loadCheckpointKey,
  tailAudit,
  verifyAudit,
  verifyRedisStream,
} from './audit.js'
import { parsePiiFields, putData, setDataSchema } from './data.js'
import { grantsFromFlags, hasGrantFlags, parseFuel, parseTtl } from './grant-flags.js'
import type { GrantFlagValues } from './grant-flags.js'
import { registerAuthorCommands } from './author.js'
import { runDemo } from './demo.js'
import { serveCommand } from './serve.js'
import { terminalSafe } from './terminal.js'
import { createValueReader } from './io.js'
import type { CliIo } from './io.js'
import { formatKeys, listKeys, publicJwks, rotateKey } from './keys.js'
import { readComponentFile } from './load-file.js'
import {
  connectRemote,
  formatAppDetail,
  formatAppLine,
  formatRemoteVerify,
  formatRoute,
  tailRemoteAudit,
} from './remote.js'
import { EXIT, runApp, runWithToken } from './run.js'
import { checkSecretName, deleteSecret, listSecrets, readSecretValue, setSecret } from './secret.js'
import {
  attenuateToken,
  DEFAULT_TOKEN_TTL_SECONDS as DEFAULT_TTL,
  describeClaims,
  grantToken,
  inspectToken,
  revokeToken,
} from './token.js'

/** Flags of `warden run` that a token replaces: grants and limits come from the token alone. */
const LOCAL_RUN_FLAGS: Readonly<Record<string, string>> = {
  grant: '--grant/--no-grant',
  fuel: '--fuel',
  memoryMb: '--memory-mb',
  timeoutMs: '--timeout-ms',
  hostCalls: '--host-calls',
}

/**
 * Build the `warden` program over `io`. Commander's own output goes to `io` too, and it throws
 * a `CommanderError` instead of exiting (see {@link runCli} for the exit code of those).
 *
 * @example
 * const program = buildProgram(io)
 * await program.parseAsync(['token', 'revoke', jti], { from: 'user' })
 */
export function buildProgram(io: CliIo): Command {
  const hostConfig = (): Readonly<HostConfig> =>
    io.hostConfig ? io.hostConfig() : resolveHostConfig(io.env)
  // Redis mode (WARDEN_REDIS_URL): the admin commands act on the deployment, not on files.
  let sharedRedis: RedisConnection | undefined
  const open = async (): Promise<Warden> => {
    if (io.openWarden) {
      return io.openWarden()
    }
    const config = hostConfig()
    if (!config.redisUrl) {
      return openWarden({ ...config, poolSize: 1 })
    }
    const redis = await openRedisConnection({ url: config.redisUrl, prefix: config.redisPrefix })
    try {
      const warden = await openWarden({ ...config, poolSize: 1, redis })
      sharedRedis = redis
      return {
        ...warden,
        async close() {
          await warden.close()
          sharedRedis = undefined
          await redis.close()
        },
      }
    } catch (error) {
      await redis.close()
      throw error
    }
  }
  // Every line goes through terminalSafe: text from a guest or a server (names, ids, codes,
  // messages) never reaches the terminal as control, C1 or bidi characters. JSON stays valid:
  // what it escapes is written as `\uXXXX`, as JSON writes it.
  const out = (line: string) => io.stdout(`${terminalSafe(line, true)}\n`)
  const err = (line: string) => io.stderr(`${terminalSafe(line, true)}\n`)
  const progress = (message: string) => err(`warden: ${message}`)

  /** Run a command body: its return value (default 0) or its error decides the exit code. */
  const act =
    <A extends unknown[]>(body: (...args: A) => Promise<number | undefined>) =>
    async (...args: A): Promise<void> => {
      try {
        io.setExitCode((await body(...args)) ?? EXIT.ok)
      } catch (error) {
        if (error instanceof WardenApiError) {
          err(`error: ${error.code}: ${terminalSafe(error.message, false)}`)
          io.setExitCode(error.code === 'invalid_request' ? EXIT.usage : EXIT.wardenError)
          return
        }
        const e = toWardenError(error)
        err(`error: ${e.code}: ${error instanceof WardenError ? e.message : String(error)}`)
        io.setExitCode(e.code === 'invalid_request' ? EXIT.usage : EXIT.wardenError)
      }
    }

  const withWarden = async <T>(task: (warden: Warden) => Promise<T>): Promise<T> => {
    const warden = await open()
    try {
      return await task(warden)
    } finally {
      await warden.close()
    }
  }

  const program = new Command()
    .name('warden')
    .description(
      'Warden: run untrusted WebAssembly micro-apps in a metered, capability-checked sandbox.',
    )
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .showHelpAfterError()
    .exitOverride()
    .option(
      '--server <url>',
      'talk to this Warden server (default $WARDEN_SERVER), with the API key in $WARDEN_KEY',
    )

  /** The server's client when `--server` or `WARDEN_SERVER` is set; else a local command. */
  const remote = (): WardenClient | undefined =>
    connectRemote(program.opts<{ server?: string }>().server, io.env)
  /** The server's client; `invalid_request` for a command that only exists remotely. */
  const needRemote = (what: string): WardenClient => {
    const client = remote()
    if (!client) {
      throw new WardenError(
        'invalid_request',
        `${what} talks to a server: pass --server <url> or set WARDEN_SERVER`,
      )
    }
    return client
  }
  const printJson = (value: unknown) => out(JSON.stringify(value, null, 2))

  // ── warden run ────────────────────────────────────────────────────────────────────────────

  program
    .command('run')
    .description('run an action component once and print its output')
    .argument('<component>', 'a .wasm component (or .wat component text)')
    .option('-i, --input <json>', 'JSON input passed to run()', '{}')
    .option('-t, --token <jwt|@file|->', 'run under this capability token (default: $WARDEN_TOKEN)')
    .option('--fuel <n>', 'local run: fuel budget, one per instruction (default 1e9)', positiveInt)
    .option('--memory-mb <m>', 'local run: linear memory cap in MiB (default 64)', positiveInt)
    .option('--timeout-ms <t>', 'local run: wall-clock deadline in ms (default 5000)', positiveInt)
    .option('--host-calls <n>', 'local run: host call budget (default 1000)', positiveInt)
    .option('-g, --grant <capability...>', 'local run: capabilities to grant', ['log'])
    .option('--no-grant', 'local run: grant nothing (every imported capability answers denied)')
    .option('--json', 'print one JSON object: output, logs and the metering report')
    .addHelpText(
      'after',
      `
With a token (--token or WARDEN_TOKEN), the run goes through the Warden host: the token is
verified for this build, grants and limits come from it alone (so --grant, --fuel, --memory-mb,
--timeout-ms and --host-calls are refused), secrets and data are available as it grants, and
the run is written to the audit log. Without one, it is a local dev run with the flags' grants.

Capabilities (local run): log; http, secrets and data can only be granted by a token.
Exit codes: 0 ok, 1 Warden error (the code is printed), 2 usage, 3 the guest returned its err case.

Examples:
  $ warden run examples/hello/hello.wat --input '{"name":"Ada"}'
  $ warden run app.wasm --fuel 1000000 --memory-mb 16 --json
  $ TOKEN=$(warden token grant app.wasm --grants '{"log":true}' --quiet)
  $ warden run app.wasm --token "$TOKEN" --input '{}'`,
    )
    .action(
      act(async (component: string, flags: RunFlags, command: Command) => {
        const tokenArg = flags.token ?? (io.env.WARDEN_TOKEN || undefined)
        if (tokenArg === undefined) {
          const { invocation, exitCode } = await runApp({
            file: component,
            input: flags.input,
            limits: {
              ...(flags.fuel ? { fuel: flags.fuel } : {}),
              ...(flags.memoryMb ? { memoryMb: flags.memoryMb } : {}),
              ...(flags.timeoutMs ? { timeoutMs: flags.timeoutMs } : {}),
              ...(flags.hostCalls ? { hostCalls: flags.hostCalls } : {}),
            },
            grant: flags.grant === false ? [] : flags.grant,
            dataDir: hostConfig().dataDir,
            ...(flags.json ? {} : { onProgress: progress }),
          })
          printInvocation(invocation, flags.json === true)
          return exitCode
        }
        const refused = Object.keys(LOCAL_RUN_FLAGS).filter(
          (key) => command.getOptionValueSource(key) === 'cli',
        )
        if (refused.length > 0) {
          const names = refused.map((key) => LOCAL_RUN_FLAGS[key]).join(', ')
          const hint =
            flags.token === undefined ? ' (WARDEN_TOKEN is set; unset it for a local run)' : ''
          throw new WardenError(
            'invalid_request',
            `${names} cannot be used with a token: its grants and limits apply${hint}`,
          )
        }
        const jwt = await createValueReader(io).text(tokenArg, '--token')
        const { invocation, exitCode } = await withWarden((warden) =>
          runWithToken(warden, {
            file: component,
            input: flags.input,
            token: jwt,
            ...(flags.json ? {} : { onProgress: progress }),
          }),
        )
        printInvocation(invocation, flags.json === true)
        return exitCode
      }),
    )

  function printInvocation(invocation: Invocation, json: boolean): void {
    if (json) {
      const { output, guestError, error, logs, report } = invocation
      out(JSON.stringify({ output, guestError, error, logs, report }))
      return
    }
    // Guest text reaches a terminal: escape what would move the cursor, clear a line or
    // rewrite what Warden printed (`\r`, ANSI sequences, bidi controls).
    for (const line of invocation.logs) {
      err(`[guest ${line.level}] ${terminalSafe(line.message, false)}`)
    }
    if (invocation.ok) {
      out(terminalSafe(String(invocation.output), true))
    } else if (invocation.error) {
      err(`error: ${invocation.error.code}: ${terminalSafe(invocation.error.message, false)}`)
    } else {
      err(`guest error: ${terminalSafe(String(invocation.guestError), false)}`)
    }
  }

  // ── warden token ──────────────────────────────────────────────────────────────────────────

  const token = program
    .command('token')
    .description('mint, attenuate, revoke and inspect capability tokens')

  /** `--grants`, the readable grant flags, `--limits`, `--fuel` and `--ttl`. */
  const grantOptions = (command: Command, ttlHelp: string): Command =>
    command
      .option('--grants <json|@file|->', 'what the token grants, as JSON (see below)')
      .option('--http <url>', 'grant http to this URL prefix (repeatable)', collect)
      .option(
        '--method <method>',
        'methods of the --http entries (repeatable; default GET, HEAD)',
        collect,
      )
      .option(
        '--secret <name@host>',
        'grant a secret, sent only to this host (repeatable)',
        collect,
      )
      .option(
        '--data <collection:prefix>',
        'grant reads under this key prefix (repeatable)',
        collect,
      )
      .option('--log', 'grant the log capability')
      .option('--limits <json|@file|->', 'per-run limits: fuel, memoryMb, timeoutMs, hostCalls, …')
      .option('--fuel <n>', 'fuel per run: 1000000 or 5e8 (over --limits)', usage(parseFuel))
      .option('--ttl <1h|30m|3600>', ttlHelp, usage(parseTtl))

  /** {@link grantOptions} and `--quiet`; a grant is required. */
  const withGrantFlags = (command: Command, ttlHelp: string): Command =>
    grantOptions(command, ttlHelp)
      .option('-q, --quiet', 'do not print the claims summary on stderr')
      .hook('preAction', (self) => {
        const flags = self.opts<TokenFlags>()
        if (flags.grants === undefined && !hasGrantFlags(flags)) {
          self.error(
            "error: required option '--grants <json|@file|->' not specified " +
              '(or give --http, --secret, --data or --log)',
            { code: 'commander.missingMandatoryOptionValue' },
          )
        }
      })

  /** The grants and limits of a token command's flags, as JSON to check and send. */
  const tokenRequest = async (flags: TokenFlags) => {
    const reader = createValueReader(io)
    const base = flags.grants === undefined ? {} : await reader.json(flags.grants, '--grants')
    const grants = hasGrantFlags(flags) ? grantsFromFlags(flags, base) : base
    let limits =
      flags.limits === undefined ? undefined : await reader.json(flags.limits, '--limits')
    if (flags.fuel !== undefined) {
      if (limits !== undefined && (typeof limits !== 'object' || limits === null)) {
        throw new WardenError('invalid_request', '--limits must be a JSON object')
      }
      limits = { ...(limits as object | undefined), fuel: flags.fuel }
    }
    return { grants, limits }
  }

  const printMinted = (
    minted: { token: string } & Parameters<typeof describeClaims>[0],
    quiet?: boolean,
  ) => {
    out(minted.token)
    if (!quiet) {
      describeClaims(minted).forEach(err)
    }
  }

  withGrantFlags(
    token
      .command('grant')
      .description('mint a capability token for one build of a component; prints only the token')
      .argument(
        '<component|app>',
        'the component (.wasm or .wat); with --server, the app id or name',
      ),
    `lifetime: seconds, or 90s, 30m, 1h, 7d (default ${DEFAULT_TTL} s)`,
  )
    .option(
      '--app-id <id>',
      "local: the app id (default: the component file's name without extension)",
    )
    .addHelpText(
      'after',
      `
The token goes to stdout alone, the claims summary to stderr: TOKEN=$(warden token grant …).
Locally the token binds to the component file's digest; with --server, to the current build
of the registered, approved app.
Grants, as JSON (a field left out grants nothing; an unknown field is an error):
  {"log": true,
   "http": [{"host": "api.github.com", "pathPrefix": "/repos/", "methods": ["GET"]}],
   "secrets": [{"name": "github_token", "hosts": ["api.github.com"]}],
   "data": [{"collection": "crm", "prefix": "contacts/", "pii": false}]}
or as flags, added to --grants: --http https://api.github.com/repos/ [--method POST],
  --secret github_token@api.github.com, --data crm:contacts/, --log.
Limits, as JSON: {"fuel": 1000000, "memoryMb": 16, "timeoutMs": 2000, "hostCalls": 100,
  "egressBytes": 1048576, "logLines": 100, "logBytes": 8192} (any subset; the rest default).

Examples:
  $ warden token grant examples/hello/hello.wat --grants '{"log":true}'
  $ warden token grant app.wasm --grants @grants.json --limits '{"fuel":1000000}' --ttl 600
  $ warden --server http://127.0.0.1:8080 token grant gh-stats --log \\
      --http https://api.github.com/repos/ --secret github_token@api.github.com --ttl 1h --fuel 5e8`,
    )
    .action(
      act(async (component: string, flags: TokenFlags & { appId?: string }) => {
        const { grants, limits } = await tokenRequest(flags)
        const client = remote()
        if (client) {
          const minted = await client.grantToken({
            app: component,
            grants: grants as GrantsInput,
            ...(limits === undefined ? {} : { limits: limits as LimitsRequest }),
            ...(flags.ttl === undefined ? {} : { ttlSeconds: flags.ttl }),
          })
          printMinted(minted, flags.quiet)
          return
        }
        const minted = await withWarden((warden) =>
          grantToken(warden, {
            file: component,
            grants,
            ...(limits === undefined ? {} : { limits }),
            ...(flags.ttl === undefined ? {} : { ttlSeconds: flags.ttl }),
            ...(flags.appId === undefined ? {} : { appId: flags.appId }),
            ...(flags.quiet ? {} : { onProgress: progress }),
          }),
        )
        printMinted({ token: minted.token, ...minted.claims }, flags.quiet)
      }),
    )

  withGrantFlags(
    token
      .command('attenuate')
      .description('derive a narrower child token from a token you hold; prints only the child')
      .argument('<token>', 'the parent token, @file, or - for stdin'),
    "lifetime: seconds, or 90s, 30m, 1h (default: to the parent's expiry)",
  )
    .addHelpText(
      'after',
      `
The child's grants (--grants and the grant flags, as for token grant) must each be within the
parent's, its limits ≤ the parent's (a limit left out is the parent's), its expiry ≤ the
parent's. Anything wider is refused with forbidden. Revoking the parent revokes the child.
With --server, the server derives it (the parent is sent as the bearer).

Example:
  $ CHILD=$(warden token attenuate "$TOKEN" --grants '{"log":false}' --ttl 300)`,
    )
    .action(
      act(async (parent: string, flags: TokenFlags) => {
        const parentToken = (await createValueReader(io).text(parent, 'the token')).trim()
        const { grants, limits } = await tokenRequest(flags)
        const client = remote()
        if (client) {
          const minted = await client.attenuateToken(
            {
              grants: grants as GrantsInput,
              ...(limits === undefined ? {} : { limits: limits as LimitsRequest }),
              ...(flags.ttl === undefined ? {} : { ttlSeconds: flags.ttl }),
            },
            parentToken,
          )
          printMinted(minted, flags.quiet)
          return
        }
        const minted = await withWarden((warden) =>
          attenuateToken(warden, {
            parent: parentToken,
            grants,
            ...(limits === undefined ? {} : { limits }),
            ...(flags.ttl === undefined ? {} : { ttlSeconds: flags.ttl }),
          }),
        )
        printMinted({ token: minted.token, ...minted.claims }, flags.quiet)
      }),
    )

  token
    .command('revoke')
    .description('revoke a token by its jti, and every token derived from it')
    .argument('<jti>', 'the token id (`jti` in its claims: see `warden token inspect`)')
    .action(
      act(async (jti: string) => {
        const client = remote()
        if (client) {
          await client.revokeToken(jti)
        } else {
          await withWarden((warden) => revokeToken(warden, jti))
        }
        err(`revoked ${jti} and every token derived from it`)
      }),
    )

  token
    .command('list')
    .description('with --server: the tokens granted, newest first (never their strings)')
    .option('--app <app>', 'only the tokens of this app (id or name)')
    .option('--json', 'print JSON')
    .action(
      act(async (flags: { app?: string; json?: boolean }) => {
        const tokens = await needRemote('token list').listTokens(flags.app)
        if (flags.json) {
          printJson(tokens)
          return
        }
        for (const t of tokens) {
          const state = t.revokedAt ? `revoked ${t.revokedAt}` : 'live'
          const parent = t.parent ? `  child of ${t.parent}` : ''
          out(
            `${t.jti}  ${t.appId}  exp ${new Date(t.exp * 1000).toISOString()}  ${state}${parent}`,
          )
        }
      }),
    )

  token
    .command('inspect')
    .description('decode a token WITHOUT verifying it and print its header and claims')
    .argument('<token>', 'the token, @file, or - for stdin')
    .addHelpText(
      'after',
      `
Nothing is checked: not the signature, the expiry, revocation or the build. To know whether a
token works, run with it. The signature is never printed.`,
    )
    .action(
      act(async (value: string) => {
        const inspected = inspectToken(await createValueReader(io).text(value, 'the token'))
        err('warning: UNVERIFIED: decoded only, nothing about this token was checked')
        out(JSON.stringify(inspected, null, 2))
      }),
    )

  // ── warden keys ───────────────────────────────────────────────────────────────────────────

  const keys = program
    .command('signing-keys')
    .description('the key ring that signs capability tokens')

  keys
    .command('list')
    .description('list the keys, newest first: kid, created, signing | verifies | retired')
    .option('--json', 'print JSON')
    .action(
      act(async (flags: { json?: boolean }) => {
        const list = await withWarden(listKeys)
        if (flags.json) {
          out(JSON.stringify(list, null, 2))
        } else if (list.length === 0) {
          err('no keys yet: the first is made when the first token is signed')
        } else {
          formatKeys(list).forEach(out)
        }
      }),
    )

  keys
    .command('rotate')
    .description('make a new signing key; tokens signed by older keys keep verifying')
    .action(
      act(async () => {
        const key = await withWarden(rotateKey)
        out(key.kid)
        err(`new signing key ${key.kid}; older keys still verify until retired`)
      }),
    )

  keys
    .command('jwks')
    .description('print the public JWKS (the keys that verify tokens)')
    .action(
      act(async () => {
        out(JSON.stringify(await withWarden(publicJwks), null, 2))
      }),
    )

  // ── warden secret ─────────────────────────────────────────────────────────────────────────

  const secret = program.command('secret').description('write, list and delete secrets')

  secret
    .command('set')
    .description('create or replace a secret, reading its value from stdin or --from-env')
    .argument('<name>', 'the secret name: ^[a-z][a-z0-9_]{0,63}$')
    .option('--from-env <var>', 'read the value from this environment variable instead of stdin')
    .addHelpText(
      'after',
      `
The value is never taken from an argument: it would land in your shell history and in the
process list. It is read from stdin (one trailing newline is cut) or from --from-env.

Examples:
  $ printf '%s' "$GITHUB_TOKEN" | warden secret set github_token
  $ warden secret set github_token --from-env GITHUB_TOKEN
  $ warden secret set github_token < token.txt`,
    )
    .action(
      act(async (name: string, flags: { fromEnv?: string }) => {
        checkSecretName(name)
        const value = await readSecretValue(
          flags.fromEnv === undefined
            ? { stdin: () => io.readStdin() }
            : { fromEnv: flags.fromEnv, env: io.env },
        )
        const client = remote()
        if (client) {
          await client.secrets.set(name, value)
        } else {
          await withWarden((warden) => setSecret(warden, name, value))
        }
        err(`secret ${name} set`)
      }),
    )

  secret
    .command('list')
    .description('list secret names and update times (never values)')
    .option('--json', 'print JSON')
    .action(
      act(async (flags: { json?: boolean }) => {
        const client = remote()
        const list = client ? await client.secrets.list() : await withWarden(listSecrets)
        if (flags.json) {
          out(JSON.stringify(list, null, 2))
        } else {
          for (const s of list) {
            out(`${s.name}\t${s.updatedAt}`)
          }
        }
      }),
    )

  secret
    .command('delete')
    .description('delete a secret')
    .argument('<name>', 'the secret name')
    .action(
      act(async (name: string) => {
        const client = remote()
        if (!client) {
          await withWarden((warden) => deleteSecret(warden, name))
        } else if (!(await client.secrets.delete(checkSecretName(name)))) {
          throw new WardenError('not_found', `no secret named ${name}`)
        }
        err(`secret ${name} deleted`)
      }),
    )

  // ── warden data ───────────────────────────────────────────────────────────────────────────

  const data = program.command('data').description('documents apps may read through data grants')

  data
    .command('put')
    .description('create or replace one document')
    .argument('<collection>', 'the collection: ^[a-z][a-z0-9_-]{0,63}$')
    .argument('<key>', 'the key: a /-separated path such as contacts/alice')
    .argument('<document>', 'the document: JSON, @file, or - for stdin')
    .addHelpText(
      'after',
      `
Example:
  $ warden data put crm contacts/alice '{"name":"Alice","email":"alice@example.com"}'`,
    )
    .action(
      act(async (collection: string, key: string, document: string) => {
        const value = await createValueReader(io).json(document, 'the document')
        const client = remote()
        if (client) {
          await client.data.put(collection, key, value)
        } else {
          await withWarden((warden) => putData(warden, { collection, key, value }))
        }
        err(`put ${collection}/${key}`)
      }),
    )

  data
    .command('get')
    .description('print one document as stored (PII unmasked), as JSON')
    .argument('<collection>', 'the collection')
    .argument('<key>', 'the key')
    .option('--json', 'print JSON (the default: a document is JSON)')
    .action(
      act(async (collection: string, key: string) => {
        const client = remote()
        const value = client
          ? await client.data.get(collection, key)
          : await withWarden((warden) => warden.readData(collection, key))
        if (value === undefined) {
          throw new WardenError('not_found', 'no such document')
        }
        printJson(value)
      }),
    )

  data
    .command('schema')
    .description("set a collection's schema: the fields masked as [pii] unless a grant says pii")
    .argument('<collection>', 'the collection')
    .requiredOption('--pii <field,...>', "personal-data fields: email,address.street ('' clears)")
    .action(
      act(async (collection: string, flags: { pii: string }) => {
        const fields = parsePiiFields(flags.pii)
        const client = remote()
        if (client) {
          await client.data.schema(collection, fields)
        } else {
          await withWarden((warden) => setDataSchema(warden, collection, fields))
        }
        err(`schema of ${collection}: pii ${fields.length > 0 ? fields.join(', ') : '(none)'}`)
      }),
    )

  // ── warden audit ──────────────────────────────────────────────────────────────────────────

  const audit = program.command('audit').description('the hash-chained audit log')

  audit
    .command('verify')
    .description("check every record's hash, chain link and seq, and every signed checkpoint")
    .option('--expect-last-seq <n>', 'anchored head: the log reached this seq', positiveInt)
    .option('--expect-last-hash <hash>', 'an anchored head: the hash of that record')
    .option(
      '--public-key <file>',
      "the PEM public key of the checkpoints (default: the data dir's audit-signing.key)",
    )
    .addHelpText(
      'after',
      `
Exit code 1 and "first bad seq N (<reason>)" when a record was edited, removed, reordered or
inserted, or when a checkpoint's signature does not match the chain (a chain rebuilt by whoever
can write the log but not read the key). Records cut from the END, back to any checkpoint, are
only caught against a head kept elsewhere: note the "last seq" and "last hash" printed on
success and pass them back with --expect-last-seq and --expect-last-hash. Reads the files only:
it runs beside a Warden that is writing the log. For a public key to verify elsewhere:
openssl pkey -in <data dir>/audit-signing.key -pubout`,
    )
    .action(
      act(
        async (flags: { expectLastSeq?: number; expectLastHash?: string; publicKey?: string }) => {
          const client = remote()
          if (client) {
            return verifyRemote(client, flags)
          }
          const redisResult = await verifyRedisStream(hostConfig(), flags)
          if (redisResult) {
            const { result } = redisResult
            if (!result.ok) {
              err(formatVerifyResult(result))
              return EXIT.wardenError
            }
            out(formatVerifyResult(result))
            out(formatCheckpointResult(result))
            return EXIT.ok
          }
          // NB: the files are read directly, not through openWarden: opening refuses a log whose
          // last record is corrupt, which is exactly when verifying it matters, and takes the
          // writer's lock, which a running Warden holds.
          const { dataDir } = hostConfig()
          const file = auditLogFile(dataDir)
          const keyFile = flags.publicKey ?? auditSigningKeyFile(dataDir)
          const checkpointKey = await loadCheckpointKey(keyFile, flags.publicKey !== undefined)
          const result = await verifyAudit(
            {
              verify: (options) =>
                verifyAuditFile(file, options).catch((error: unknown) => {
                  if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
                    throw new WardenError('not_found', `no audit log at ${file}`, { cause: error })
                  }
                  throw error
                }),
            },
            {
              ...(flags.expectLastSeq === undefined ? {} : { expectLastSeq: flags.expectLastSeq }),
              ...(flags.expectLastHash === undefined
                ? {}
                : { expectLastHash: flags.expectLastHash }),
              ...(checkpointKey === undefined ? {} : { checkpointKey }),
            },
          )
          if (!result.ok) {
            err(formatVerifyResult(result))
            return EXIT.wardenError
          }
          if (checkpointKey === undefined && result.checkpoints > 0) {
            throw new WardenError(
              'not_found',
              `the log has ${result.checkpoints} signed checkpoints and no key at ${keyFile} ` +
                'to check them with; pass --public-key',
            )
          }
          out(formatVerifyResult(result))
          out(formatCheckpointResult(result))
          return EXIT.ok
        },
      ),
    )

  audit
    .command('tail')
    .description('print the last records as JSON lines, oldest first')
    .option('-n, --limit <n>', 'how many records, up to 10000 (default 20)', positiveInt)
    .option('--invocation <id>', 'only the records of this invocation')
    .option('--app <id>', 'only the records of this app')
    .action(
      act(async (flags: { limit?: number; invocation?: string; app?: string }) => {
        const client = remote()
        if (client) {
          for (const record of await tailRemoteAudit(client, flags)) {
            out(JSON.stringify(record))
          }
          return
        }
        // NB: reads the file, without the writer's lock, so it works while Warden runs.
        const records = await tailAudit(auditFileReader(auditLogFile(hostConfig().dataDir)), {
          ...(flags.limit === undefined ? {} : { limit: flags.limit }),
          ...(flags.invocation === undefined ? {} : { invocationId: flags.invocation }),
          ...(flags.app === undefined ? {} : { appId: flags.app }),
        })
        for (const record of records) {
          out(JSON.stringify(record))
        }
      }),
    )

  audit
    .command('head')
    .description('with --server: the head of the chain (seq and hash), to keep elsewhere')
    .option('--json', 'print JSON')
    .action(
      act(async (flags: { json?: boolean }) => {
        const head = await needRemote('audit head').audit.head()
        if (flags.json) {
          printJson(head)
        } else {
          out(`seq ${head.seq} hash ${head.hash}`)
        }
      }),
    )

  audit
    .command('key')
    .description(
      "with --server: the public key of the log's signed checkpoints (SPKI PEM), for audit verify --public-key",
    )
    .option('--json', 'print JSON (keyId and publicKey)')
    .action(
      act(async (flags: { json?: boolean }) => {
        const key = await needRemote('audit key').audit.key()
        // Parsed and written again: what reaches the terminal or the file is a clean Ed25519
        // public key, whatever the server sent.
        const parsed = createPublicKey(key.publicKey)
        if (parsed.asymmetricKeyType !== 'ed25519') {
          throw new WardenError('invalid_response', 'the server sent a key that is not Ed25519')
        }
        const pem = parsed.export({ type: 'spki', format: 'pem' }).toString()
        if (flags.json) {
          printJson({ keyId: key.keyId, publicKey: pem })
        } else {
          // The PEM alone on stdout, so `warden audit key > audit.pub.pem` is the file to use.
          io.stdout(pem)
          err(`key id ${key.keyId}`)
        }
      }),
    )

  /** `audit verify --server`: the server verifies; an expected head is checked here. */
  const verifyRemote = async (
    client: WardenClient,
    flags: { expectLastSeq?: number; expectLastHash?: string; publicKey?: string },
  ): Promise<number> => {
    if (flags.publicKey !== undefined) {
      throw new WardenError(
        'invalid_request',
        '--public-key is for a local verify: the server uses its key',
      )
    }
    const answer = await client.audit.verify()
    const lines = formatRemoteVerify(answer)
    if (!answer.ok) {
      lines.forEach(err)
      return EXIT.wardenError
    }
    if (flags.expectLastSeq !== undefined) {
      // The anchored record, read back from the verified chain: absent means the log was cut.
      const { records } = await client.audit.query({ cursor: flags.expectLastSeq, limit: 1 })
      const anchored = records[0]?.seq === flags.expectLastSeq ? records[0] : undefined
      if (
        !anchored ||
        (flags.expectLastHash !== undefined && anchored.hash !== flags.expectLastHash)
      ) {
        err(
          `the log does not hold the expected head (seq ${flags.expectLastSeq}): cut or rewritten`,
        )
        return EXIT.wardenError
      }
    }
    lines.forEach(out)
    return EXIT.ok
  }

  // ── warden keys (API keys) ────────────────────────────────────────────────────────────────

  const apiKeys = program
    .command('keys')
    .description('API keys of the HTTP API (roles admin, publisher, auditor), on the data dir')
  /** Open the key store with Warden (so the change is audited, under the data dir's lock). */
  const withApiKeys = <T>(task: (store: ApiKeyStore, warden: Warden) => Promise<T>) =>
    withWarden(async (warden) =>
      task(
        await openApiKeyStore(
          join(hostConfig().dataDir, 'api-keys.json'),
          sharedRedis ? { redis: sharedRedis } : {},
        ),
        warden,
      ),
    )

  apiKeys
    .command('create')
    .description('create a key and print it once (stdout); only its hash is stored')
    .requiredOption('--role <role>', `one of ${API_ROLES.join(', ')}`, apiRole)
    .option('--label <text>', 'who or what holds it', 'cli')
    .action(
      act(async (flags: { role: ApiRole; label: string }) => {
        const client = remote()
        if (client) {
          const made = await client.keys.create(flags.role, flags.label)
          out(made.key)
          err(`created ${made.role} key ${made.id}: it is shown once, store it now`)
          return
        }
        const { key, info } = await withApiKeys(async (store, warden) => {
          const made = await store.create(flags.role, { label: flags.label, actor: 'cli' })
          await warden.audit.append({
            kind: 'admin',
            op: 'key.create',
            actor: 'cli',
            target: `key:${made.info.id}`,
            decision: 'allow',
            reason: flags.role,
          })
          return made
        })
        out(key)
        err(`created ${info.role} key ${info.id}: it is shown once, store it now`)
      }),
    )

  apiKeys
    .command('list')
    .description('list the keys: id, role, label, created, revoked (never the keys themselves)')
    .option('--json', 'print JSON')
    .action(
      act(async (flags: { json?: boolean }) => {
        const client = remote()
        const list = client
          ? await client.keys.list()
          : await withApiKeys(async (store) => store.list())
        if (flags.json) {
          out(JSON.stringify(list, null, 2))
          return
        }
        for (const k of list) {
          const state = k.revokedAt ? `revoked ${k.revokedAt}` : 'live'
          out(
            `${k.id}  ${k.role.padEnd(9)}  ${terminalSafe(k.label, false)}  ${k.createdAt}  ${state}`,
          )
        }
      }),
    )

  apiKeys
    .command('revoke <id>')
    .description('revoke a key: it is refused from now on')
    .action(
      act(async (id: string) => {
        const client = remote()
        if (client) {
          await client.keys.revoke(id)
          err(`revoked key ${id}`)
          return
        }
        const revoked = await withApiKeys(async (store, warden) => {
          const done = await store.revoke(id, 'cli')
          if (done) {
            await warden.audit.append({
              kind: 'admin',
              op: 'key.revoke',
              actor: 'cli',
              target: `key:${id}`,
              decision: 'allow',
            })
          }
          return done
        })
        if (!revoked) {
          throw new WardenError('not_found', 'no such key')
        }
        err(`revoked key ${id}`)
      }),
    )

  // ── warden apps, warden invoke (remote) ─────────────────────────────────────────────────

  const apps = program
    .command('apps')
    .description('with --server: upload apps, list and show them, approve, disable, delete')

  apps
    .command('upload')
    .description('upload a component: register an app, or add a version; prints the app id')
    .argument('<file>', 'a .wasm component, or .wat component text (compiled here first)')
    .requiredOption('--name <name>', 'the app name: a DNS label (a-z, 0-9, -)')
    .requiredOption('--owner <owner>', 'who answers for it')
    .requiredOption('--purpose <text>', 'what it is for')
    .option('--review-by <YYYY-MM-DD>', 'when it must be reviewed again')
    .option('--json', 'print the app as JSON')
    .action(
      act(
        async (
          file: string,
          flags: {
            name: string
            owner: string
            purpose: string
            reviewBy?: string
            json?: boolean
          },
        ) => {
          const client = needRemote('apps upload')
          const bytes = await readComponentFile(file)
          const { app, changed } = await client.upload(bytes, {
            name: flags.name,
            owner: flags.owner,
            purpose: flags.purpose,
            ...(flags.reviewBy === undefined ? {} : { reviewBy: flags.reviewBy }),
          })
          if (flags.json) {
            printJson(app)
          } else {
            out(app.id)
          }
          err(`${changed ? 'uploaded' : 'unchanged:'} ${formatAppLine(app)}`)
        },
      ),
    )

  apps
    .command('list')
    .description('the registry: id, name, status, risk tier, owner')
    .option('--status <status>', 'pending, approved, disabled or decommissioned')
    .option('--tier <tier>', 'low, medium or high')
    .option('--owner <owner>', 'only this owner')
    .option('--json', 'print JSON')
    .action(
      act(
        async (flags: { status?: AppStatus; tier?: RiskTier; owner?: string; json?: boolean }) => {
          const client = needRemote('apps list')
          const { json, ...filter } = flags
          const all: App[] = []
          let cursor: string | undefined
          do {
            const page = await client.listApps({
              ...filter,
              limit: 1000,
              ...(cursor ? { cursor } : {}),
            })
            all.push(...page.apps)
            cursor = page.nextCursor ?? undefined
          } while (cursor)
          if (json) {
            printJson(all)
          } else {
            all.map(formatAppLine).forEach(out)
          }
        },
      ),
    )

  apps
    .command('show')
    .description('one app: its facts, versions and tokens (never token strings)')
    .argument('<app>', 'the app id or name')
    .option('--json', 'print JSON')
    .action(
      act(async (app: string, flags: { json?: boolean }) => {
        const detail = await needRemote('apps show').getApp(app)
        if (flags.json) {
          printJson(detail)
        } else {
          formatAppDetail(detail).forEach(out)
        }
      }),
    )

  apps
    .command('approve')
    .description(
      'approve the current build, named by the digest you reviewed (admin; a high-risk one needs an admin other than its publisher)',
    )
    .argument('<app>', 'the app id or name')
    .option('--digest <sha256:…>', 'the build you reviewed (see `apps show`)')
    .action(
      act(async (app: string, flags: { digest?: string }) => {
        const done = await needRemote('apps approve').approve(app, flags.digest)
        err(`${done.name} (${done.id}): ${done.status}`)
      }),
    )

  grantOptions(
    apps
      .command('route')
      .description(
        'serve a micro-app at /apps/<name>/ under a capability token (admin); --show, --unbind',
      )
      .argument('<app>', 'the app id or name'),
    'lifetime of the minted token: seconds, or 90s, 30m, 1h, 7d (default 3600 s)',
  )
    .option('--token <jwt|@file|->', 'bind a token you hold instead of minting one')
    .option('--show', 'print the binding (admin, publisher, auditor)')
    .option('--unbind', 'stop serving the app (the bound token is not revoked)')
    .option('--json', 'print the binding as JSON')
    .addHelpText(
      'after',
      `
Binds an approved micro-app to /apps/<name>/ on the server: with a token minted for the route
from the grant flags (as \`token grant\`, whose --help shows the --grants JSON), or with
--token, one you hold for the app's current build. Binding again replaces the binding. Each
request then runs in a fresh sandbox under that token. The token string is never printed, only
its id (jti) and expiry.

Examples:
  $ warden --server http://127.0.0.1:8080 apps route crm-lookup --data crm:contacts/ --log --ttl 1d
  $ warden apps route crm-lookup --token "$TOKEN"
  $ warden apps route crm-lookup --show
  $ warden apps route crm-lookup --unbind`,
    )
    .action(
      act(async (app: string, flags: RouteFlags) => {
        const client = needRemote('apps route')
        const binding =
          hasGrantFlags(flags) ||
          flags.grants !== undefined ||
          flags.limits !== undefined ||
          flags.fuel !== undefined ||
          flags.ttl !== undefined
        const modes = [flags.show, flags.unbind, flags.token !== undefined || binding].filter(
          Boolean,
        )
        if (modes.length !== 1 || (flags.token !== undefined && binding)) {
          throw new WardenError(
            'invalid_request',
            'apps route takes one of: grant flags (--grants, --http, --secret, --data, --log), --token, --show or --unbind',
          )
        }
        let route: Route
        if (flags.show) {
          route = await client.getRoute(app)
        } else if (flags.unbind) {
          route = await client.unbindRoute(app)
        } else if (flags.token !== undefined) {
          const jwt = (await createValueReader(io).text(flags.token, '--token')).trim()
          route = await client.bindRoute(app, { token: jwt })
        } else {
          const { grants, limits } = await tokenRequest(flags)
          route = await client.bindRoute(app, {
            grants: grants as GrantsInput,
            ...(limits === undefined ? {} : { limits: limits as LimitsRequest }),
            ...(flags.ttl === undefined ? {} : { ttlSeconds: flags.ttl }),
          })
        }
        if (flags.json) {
          printJson(route)
          return
        }
        if (flags.unbind) {
          err(`${route.name} (${route.appId}): no longer served at ${route.path}`)
          return
        }
        formatRoute(route, client.server).forEach(out)
      }),
    )

  const appActions = [
    ['disable', 'kill switch: refuse new runs, end running ones (app_disabled)'],
    ['enable', 'lift the kill switch'],
    ['delete', 'decommission: revoke every token, end runs, keep the audit records'],
  ] as const
  for (const [name, description] of appActions) {
    apps
      .command(name)
      .description(description)
      .argument('<app>', 'the app id or name')
      .action(
        act(async (app: string) => {
          const client = needRemote(`apps ${name}`)
          const done = await (name === 'delete' ? client.decommission(app) : client[name](app))
          err(`${done.name} (${done.id}): ${done.status}`)
        }),
      )
  }

  program
    .command('invoke')
    .description('with --server: run an action once under a capability token')
    .argument('<app>', 'the app id or name')
    .option('-i, --input <json|@file|->', 'the input, as JSON', '{}')
    .option('-t, --token <jwt|@file|->', 'the capability token (default: $WARDEN_TOKEN)')
    .option('--json', 'print one JSON object: output, invocationId and the metering report')
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 Warden error (the code is printed), 2 usage, 3 the app returned its err.

Example:
  $ warden --server http://127.0.0.1:8080 invoke hello --input '{"name":"Ada"}' --token "$TOKEN"`,
    )
    .action(
      act(async (app: string, flags: { input: string; token?: string; json?: boolean }) => {
        const client = needRemote('invoke')
        const reader = createValueReader(io)
        const input = await reader.json(flags.input, '--input')
        const tokenArg = flags.token ?? (io.env.WARDEN_TOKEN || undefined)
        if (tokenArg === undefined) {
          throw new WardenError('invalid_request', 'invoke needs --token or WARDEN_TOKEN')
        }
        const jwt = (await reader.text(tokenArg, '--token')).trim()
        try {
          const result = await client.invoke(app, input, jwt)
          if (flags.json) {
            out(JSON.stringify(result))
          } else {
            const output = result.output
            out(terminalSafe(typeof output === 'string' ? output : JSON.stringify(output), true))
          }
          return EXIT.ok
        } catch (error) {
          if (!(error instanceof WardenApiError) || error.report === undefined) {
            throw error
          }
          if (flags.json) {
            const { code, message } = error
            const { report, invocationId, guestError } = error
            out(JSON.stringify({ error: { code, message }, guestError, report, invocationId }))
          } else if (error.code === 'guest_error') {
            err(`guest error: ${terminalSafe(JSON.stringify(error.guestError) ?? '', false)}`)
          } else {
            err(`error: ${error.code}: ${terminalSafe(error.message, false)}`)
          }
          return error.code === 'guest_error' ? EXIT.guestError : EXIT.wardenError
        }
      }),
    )

  // ── warden serve ──────────────────────────────────────────────────────────────────────────

  program
    .command('serve')
    .description('serve the HTTP API on HOST:PORT (default 127.0.0.1:8080) over the data dir')
    .option('--port <port>', 'port to listen on (default PORT or 8080; 0 picks one)', portNumber)
    .action(
      act(async (flags: { port?: number }) => {
        // Listen for the signals first: one that comes while starting stops it once started.
        const stop = io.waitForStop ? io.waitForStop() : untilSignal(err)
        const server = await serveCommand({
          config: hostConfig(),
          ...(flags.port !== undefined ? { port: flags.port } : {}),
          out,
          err,
        })
        await stop
        err('warden: stopping: finishing runs in flight, then closing the audit log')
        await server.close()
        return EXIT.ok
      }),
    )

  // ── warden init, build, dev, deploy (the author's commands: author.ts) ───────────────────

  registerAuthorCommands(program, { io, out, err, act, needRemote })

  // ── warden demo ───────────────────────────────────────────────────────────────────────────

  program
    .command('demo')
    .description('run the bundled examples through the sandbox, without a server')
    .action(
      act(async () =>
        (await runDemo(hostConfig().dataDir, out, hostConfig().isolation))
          ? EXIT.ok
          : EXIT.wardenError,
      ),
    )

  return program
}

/**
 * Run the program on `argv` (the arguments after `warden`) and set the exit code of every
 * outcome, commander's parse failures included: help and version 0, others {@link EXIT.usage}.
 *
 * @example
 * await runCli(io, process.argv.slice(2))
 */
export async function runCli(io: CliIo, argv: readonly string[]): Promise<void> {
  try {
    await buildProgram(io).parseAsync([...argv], { from: 'user' })
  } catch (error) {
    if (error instanceof CommanderError) {
      io.setExitCode(error.exitCode === 0 ? EXIT.ok : EXIT.usage)
      return
    }
    throw error
  }
}

function apiRole(value: string): ApiRole {
  if (!(API_ROLES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${API_ROLES.join(', ')}`)
  }
  return value as ApiRole
}

function portNumber(value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0 || n > 65535) {
    throw new InvalidArgumentError('expected a port, 0 to 65535')
  }
  return n
}

/** Resolves on the first SIGTERM or SIGINT; a second one exits at once. */
function untilSignal(err: (line: string) => void): Promise<void> {
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals) => {
      err(`warden: ${signal}: stopping (send it again to exit at once)`)
      process.once('SIGTERM', () => process.exit(1))
      process.once('SIGINT', () => process.exit(1))
      resolve()
    }
    process.once('SIGTERM', first)
    process.once('SIGINT', first)
  })
}

function positiveInt(value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError('expected a positive integer')
  }
  return n
}

interface RunFlags {
  input: string
  token?: string
  fuel?: number
  memoryMb?: number
  timeoutMs?: number
  hostCalls?: number
  grant: string[] | false
  json?: boolean
}

/** The flags of `token grant` and `token attenuate`. */
/** Flags of `warden apps route`. */
interface RouteFlags extends Omit<TokenFlags, 'quiet'> {
  token?: string
  show?: boolean
  unbind?: boolean
  json?: boolean
}

interface TokenFlags extends GrantFlagValues {
  grants?: string
  limits?: string
  fuel?: number
  ttl?: number
  quiet?: boolean
}

/** Commander's collector of a repeatable option. */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** A pure parser as a commander argument parser: its refusal is a usage error. */
function usage<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value)
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message)
    }
  }
}
