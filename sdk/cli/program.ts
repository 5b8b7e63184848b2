/**
 * The `warden` command line as a commander program over a {@link CliIo}. Each command is a
 * function elsewhere in this folder; here flags are parsed, Warden is opened and closed, results
 * are printed and exit codes set: 0 ok, 1 a Warden error (`error: <code>: <message>`), 2 usage
 * (bad flags, or `invalid_request`), 3 the guest returned its own `err`.
 */
import { join } from 'node:path'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { API_ROLES, openApiKeyStore } from '../../control-plane/index.js'
import type { ApiKeyStore, ApiRole } from '../../control-plane/index.js'
import {
  openWarden,
  resolveHostConfig,
  toWardenError,
  verifyAuditFile,
  WardenError,
} from '../../runtime/index.js'
import type { HostConfig, Invocation, Warden } from '../../runtime/index.js'
import {
  auditFileReader,
  auditLogFile,
  auditSigningKeyFile,
  formatCheckpointResult,
  formatVerifyResult,
  loadCheckpointKey,
  tailAudit,
  verifyAudit,
} from './audit.js'
import { parsePiiFields, putData, setDataSchema } from './data.js'
import { runDemo } from './demo.js'
import { serveCommand } from './serve.js'
import { terminalSafe } from './terminal.js'
import { createValueReader } from './io.js'
import type { CliIo } from './io.js'
import { formatKeys, listKeys, publicJwks, rotateKey } from './keys.js'
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
  const open = (): Promise<Warden> =>
    io.openWarden ? io.openWarden() : openWarden({ ...hostConfig(), poolSize: 1 })
  const out = (line: string) => io.stdout(`${line}\n`)
  const err = (line: string) => io.stderr(`${line}\n`)
  const progress = (message: string) => err(`warden: ${message}`)

  /** Run a command body: its return value (default 0) or its error decides the exit code. */
  const act =
    <A extends unknown[]>(body: (...args: A) => Promise<number | undefined>) =>
    async (...args: A): Promise<void> => {
      try {
        io.setExitCode((await body(...args)) ?? EXIT.ok)
      } catch (error) {
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

  token
    .command('grant')
    .description('mint a capability token for one build of a component; prints only the token')
    .argument('<component>', 'the component (.wasm or .wat): the token binds to its digest')
    .requiredOption('--grants <json|@file|->', 'what the token grants (see below)')
    .option('--limits <json|@file|->', 'per-run limits: fuel, memoryMb, timeoutMs, hostCalls, …')
    .option('--ttl <seconds>', `lifetime in seconds (default ${DEFAULT_TTL})`, positiveInt)
    .option('--app-id <id>', "the app id (default: the component file's name without extension)")
    .option('-q, --quiet', 'do not print the claims summary on stderr')
    .addHelpText(
      'after',
      `
The token goes to stdout alone, the claims summary to stderr: TOKEN=$(warden token grant …).
Grants, as JSON (a field left out grants nothing; an unknown field is an error):
  {"log": true,
   "http": [{"host": "api.github.com", "pathPrefix": "/repos/", "methods": ["GET"]}],
   "secrets": [{"name": "github_token", "hosts": ["api.github.com"]}],
   "data": [{"collection": "crm", "prefix": "contacts/", "pii": false}]}
Limits, as JSON: {"fuel": 1000000, "memoryMb": 16, "timeoutMs": 2000, "hostCalls": 100,
  "egressBytes": 1048576, "logLines": 100, "logBytes": 8192} (any subset; the rest default).

Examples:
  $ warden token grant examples/hello/hello.wat --grants '{"log":true}'
  $ warden token grant app.wasm --grants @grants.json --limits '{"fuel":1000000}' --ttl 600`,
    )
    .action(
      act(async (component: string, flags: GrantFlags) => {
        const reader = createValueReader(io)
        const grants = await reader.json(flags.grants, '--grants')
        const limits =
          flags.limits === undefined ? undefined : await reader.json(flags.limits, '--limits')
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
        out(minted.token)
        if (!flags.quiet) {
          describeClaims(minted.claims).forEach(err)
        }
      }),
    )

  token
    .command('attenuate')
    .description('derive a narrower child token from a token you hold; prints only the child')
    .argument('<token>', 'the parent token, @file, or - for stdin')
    .requiredOption('--grants <json|@file|->', "the child's grants, each within the parent's")
    .option('--limits <json|@file|->', "the child's limits, each ≤ the parent's (default: its)")
    .option('--ttl <seconds>', "lifetime, seconds (default: to the parent's expiry)", positiveInt)
    .option('-q, --quiet', 'do not print the claims summary on stderr')
    .addHelpText(
      'after',
      `
Anything wider than the parent (a grant, a limit, a later expiry) is refused with forbidden.
Revoking the parent revokes the child.

Example:
  $ CHILD=$(warden token attenuate "$TOKEN" --grants '{"log":false}' --ttl 300)`,
    )
    .action(
      act(async (parent: string, flags: AttenuateFlags) => {
        const reader = createValueReader(io)
        const parentToken = await reader.text(parent, 'the token')
        const grants = await reader.json(flags.grants, '--grants')
        const limits =
          flags.limits === undefined ? undefined : await reader.json(flags.limits, '--limits')
        const minted = await withWarden((warden) =>
          attenuateToken(warden, {
            parent: parentToken,
            grants,
            ...(limits === undefined ? {} : { limits }),
            ...(flags.ttl === undefined ? {} : { ttlSeconds: flags.ttl }),
          }),
        )
        out(minted.token)
        if (!flags.quiet) {
          describeClaims(minted.claims).forEach(err)
        }
      }),
    )

  token
    .command('revoke')
    .description('revoke a token by its jti, and every token derived from it')
    .argument('<jti>', 'the token id (`jti` in its claims: see `warden token inspect`)')
    .action(
      act(async (jti: string) => {
        await withWarden((warden) => revokeToken(warden, jti))
        err(`revoked ${jti} and every token derived from it`)
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
        await withWarden((warden) => setSecret(warden, name, value))
        err(`secret ${name} set`)
      }),
    )

  secret
    .command('list')
    .description('list secret names and update times (never values)')
    .option('--json', 'print JSON')
    .action(
      act(async (flags: { json?: boolean }) => {
        const list = await withWarden(listSecrets)
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
        await withWarden((warden) => deleteSecret(warden, name))
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
        await withWarden((warden) => putData(warden, { collection, key, value }))
        err(`put ${collection}/${key}`)
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
        await withWarden((warden) => setDataSchema(warden, collection, fields))
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

  // ── warden keys (API keys) ────────────────────────────────────────────────────────────────

  const apiKeys = program
    .command('keys')
    .description('API keys of the HTTP API (roles admin, publisher, auditor), on the data dir')
  /** Open the key store with Warden (so the change is audited, under the data dir's lock). */
  const withApiKeys = <T>(task: (store: ApiKeyStore, warden: Warden) => Promise<T>) =>
    withWarden(async (warden) =>
      task(await openApiKeyStore(join(hostConfig().dataDir, 'api-keys.json')), warden),
    )

  apiKeys
    .command('create')
    .description('create a key and print it once (stdout); only its hash is stored')
    .requiredOption('--role <role>', `one of ${API_ROLES.join(', ')}`, apiRole)
    .option('--label <text>', 'who or what holds it', 'cli')
    .action(
      act(async (flags: { role: ApiRole; label: string }) => {
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
        const list = await withApiKeys(async (store) => store.list())
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

  // ── warden demo ───────────────────────────────────────────────────────────────────────────

  program
    .command('demo')
    .description('run the bundled examples through the sandbox (what `npm start` does today)')
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

interface GrantFlags {
  grants: string
  limits?: string
  ttl?: number
  appId?: string
  quiet?: boolean
}

interface AttenuateFlags {
  grants: string
  limits?: string
  ttl?: number
  quiet?: boolean
}
