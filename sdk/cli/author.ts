/**
 * The author's commands: `warden init`, `build`, `dev` and `deploy`, registered on the program
 * by {@link registerAuthorCommands} (program.ts calls it once). The work is in `sdk/author/`;
 * here are flags, progress and printing.
 */
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { relative, resolve } from 'node:path'
import type { Command } from 'commander'
import type { Invocation } from '../../runtime/index.js'
import { WardenError } from '../../runtime/index.js'
import { buildApp } from '../author/build.js'
import type { BuildResult, BuildStep } from '../author/build.js'
import { openDevHost } from '../author/dev-host.js'
import type { DevHost } from '../author/dev-host.js'
import { toIncomingRequest, toHttpResponse } from '../author/dev-server.js'
import { manifestGrants, readManifest } from '../author/manifest.js'
import { grantCommand, routeCommand } from '../author/deploy.js'
import { scaffoldApp } from '../author/scaffold.js'
import type { WardenClient } from '../client/index.js'
import type { CliIo } from './io.js'
import { packageRoot } from './paths.js'
import { formatAppDetail } from './remote.js'
import { EXIT, exitCodeOf } from './run.js'
import { terminalSafe } from './terminal.js'

/** What the author's commands need from the program. */
export interface AuthorContext {
  io: CliIo
  out(line: string): void
  err(line: string): void
  act<A extends unknown[]>(
    body: (...args: A) => Promise<number | undefined>,
  ): (...args: A) => Promise<void>
  needRemote(what: string): WardenClient
}

const STEP_TEXT: Readonly<Record<BuildStep, string>> = {
  generate: 'generating the WIT world and types from warden.json',
  typecheck: 'type-checking',
  bundle: 'bundling (esbuild)',
  'cache-hit': 'unchanged: the component comes from the cache',
  componentize: 'building the component (componentize-js: a minute or more the first time)',
  validate: "validating with Warden's loader (transpile, instrument)",
  done: 'done',
}

/**
 * Progress of a build on stderr: on a terminal one line that redraws with the step and its
 * seconds; elsewhere one line per step.
 */
export function progressPrinter(io: CliIo): {
  step: (step: BuildStep, detail?: string) => void
  stop: () => void
} {
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
  let timer: NodeJS.Timeout | undefined
  let current = ''
  let since = 0
  let frame = 0
  const draw = () => {
    const seconds = ((performance.now() - since) / 1000).toFixed(1)
    io.stderr(`\r\x1b[2K${frames[frame++ % frames.length]} ${current} ${seconds}s`)
  }
  const stop = () => {
    if (timer) {
      clearInterval(timer)
      timer = undefined
      io.stderr('\r\x1b[2K')
    }
  }
  return {
    step(step, detail) {
      const text = `${STEP_TEXT[step]}${detail ? ` (${detail})` : ''}`
      if (!io.isTTY) {
        if (step !== 'done') {
          io.stderr(`warden: ${text}\n`)
        }
        return
      }
      stop()
      if (step === 'done') {
        return
      }
      current = text
      since = performance.now()
      draw()
      timer = setInterval(draw, 100)
      timer.unref()
    },
    stop,
  }
}

/** A build for a terminal. */
export function formatBuild(built: BuildResult, cwd: string): string[] {
  const mib = (built.sizeBytes / (1024 * 1024)).toFixed(1)
  const secs = (built.durationMs / 1000).toFixed(1)
  const safe = (s: string) => terminalSafe(s, false)
  return [
    `built ${built.manifest.name} (${built.manifest.kind}) in ${secs} s${built.cached ? ' (cached)' : ''}`,
    `  component   ${relative(cwd, built.wasmPath) || built.wasmPath}  ${mib} MiB (${built.sizeBytes} bytes)`,
    `  digest      ${built.digest}`,
    `  declares    ${built.capabilities.join(', ') || '(no platform capability)'}`,
    `  risk tier   ${built.risk.tier}: ${built.risk.reasons.map(safe).join('; ')}`,
    ...(built.capabilities.includes('warden:platform/data')
      ? ['              (data: high on a server where a collection has PII fields)']
      : []),
  ]
}

/** One host call for a terminal: allowed or denied, what, why. */
export function formatHostCall(d: Invocation['decisions'][number]): string {
  const mark = d.decision === 'allow' ? '✓ allow' : '✗ deny '
  const capability = d.capability.replace(/^warden:platform\//, '')
  const target = d.target ? ` ${terminalSafe(d.target, false)}` : ''
  const reason = d.reason ? ` (${terminalSafe(d.reason, false)})` : ''
  const ms = d.durationMs === undefined ? '' : ` ${d.durationMs} ms`
  return `  ${mark} ${capability}.${d.fn}${target}${reason}${ms}`
}

/** Register `init`, `build`, `dev` and `deploy` on `program`. */
export function registerAuthorCommands(program: Command, ctx: AuthorContext): void {
  const { io, out, err, act } = ctx

  const build = async (dir: string, typecheck: boolean): Promise<BuildResult> => {
    const progress = progressPrinter(io)
    try {
      return await buildApp({ dir, typecheck, onStep: progress.step })
    } finally {
      progress.stop()
    }
  }

  // ── warden init ───────────────────────────────────────────────────────────────────────────

  program
    .command('init')
    .description('create a TypeScript app: warden.json, src/index.ts, a test, a README')
    .argument('<dir>', 'the new folder')
    .option('--kind <kind>', 'action (JSON in, JSON out) or micro-app (serves HTTP)', 'action')
    .option('--name <name>', "the app's name (default: the folder's name)")
    .option('--force', 'write into a folder that is not empty')
    .action(
      act(async (dir: string, flags: { kind: string; name?: string; force?: boolean }) => {
        if (flags.kind !== 'action' && flags.kind !== 'micro-app') {
          throw new WardenError('invalid_request', '--kind must be action or micro-app')
        }
        const files = await scaffoldApp({
          dir,
          kind: flags.kind,
          ...(flags.name ? { name: flags.name } : {}),
          ...(flags.force ? { force: true } : {}),
          wardenPackage: packageRoot(),
        })
        for (const f of files) {
          out(`  created ${terminalSafe(f, false)}`)
        }
        err(`next: cd ${terminalSafe(dir, false)} && npm install && npx warden build`)
        return EXIT.ok
      }),
    )

  // ── warden build ──────────────────────────────────────────────────────────────────────────

  program
    .command('build')
    .description('build the app into a component; print its size, digest, capabilities and tier')
    .argument('[dir]', 'the app folder (holds warden.json)', '.')
    .option('--no-typecheck', 'skip the type-check (the bundler still refuses unlisted imports)')
    .option('--watch', 'rebuild on every change')
    .option('--json', 'print the build as JSON')
    .action(
      act(async (dir: string, flags: { typecheck: boolean; watch?: boolean; json?: boolean }) => {
        const once = async () => {
          const built = await build(dir, flags.typecheck)
          if (flags.json) {
            const { bytes: _bytes, manifest, ...facts } = built
            out(JSON.stringify({ name: manifest.name, kind: manifest.kind, ...facts }))
          } else {
            formatBuild(built, process.cwd()).forEach(out)
          }
        }
        if (!flags.watch) {
          await once()
          return EXIT.ok
        }
        await watchApp(dir, io, err, async () => {
          try {
            await once()
          } catch (error) {
            reportFailure(error, err)
          }
        })
        return EXIT.ok
      }),
    )

  // ── warden dev ────────────────────────────────────────────────────────────────────────────

  program
    .command('dev')
    .description('run the app in the real sandbox with a dev token from warden.json')
    .argument('[dir]', 'the app folder (holds warden.json)', '.')
    .option('-i, --input <json>', 'action: run once with this input and exit')
    .option('--port <port>', 'micro-app: the local port (default warden.json dev.port, 8787)')
    .option('--no-watch', 'do not rebuild on change')
    .addHelpText(
      'after',
      `
An action runs once with --input; without it, each line on stdin is one JSON input. A
micro-app is served on http://127.0.0.1:<port>/ (every request in a fresh sandbox). The app is
rebuilt and reloaded when a file changes. Every host call is printed as it is decided, while
the run goes on: allowed or denied, and why (the sandbox's own log and WASI calls past the
run's logLines limit, when the run ends). Secrets come from warden.secrets.json, data from
fixtures/.`,
    )
    .action(
      act(async (dir: string, flags: { input?: string; port?: string; watch: boolean }) => {
        const manifest = await readManifest(resolve(dir))
        let built = await build(dir, true)
        formatBuild(built, process.cwd()).forEach(err)
        const host = await openDevHost({ dir, manifest })
        try {
          await host.load(built.bytes)
          err(`warden: dev token grants ${terminalSafe(JSON.stringify(host.grants), false)}`)
          if (manifest.kind === 'action' && flags.input !== undefined) {
            return await runOnce(host, flags.input)
          }
          const reload = async () => {
            try {
              const next = await build(dir, true)
              if (next.digest !== built.digest) {
                await host.load(next.bytes)
                built = next
                err(`warden: reloaded ${built.digest}`)
              } else {
                err('warden: unchanged')
              }
            } catch (error) {
              reportFailure(error, err)
            }
          }
          const stopWatching = flags.watch ? startWatching(dir, reload) : () => {}
          try {
            if (manifest.kind === 'action') {
              await repl(host)
            } else {
              const port = flags.port === undefined ? manifest.dev.port : Number(flags.port)
              await serveMicroApp(host, port)
            }
          } finally {
            stopWatching()
          }
          return EXIT.ok
        } finally {
          await host.close()
        }
      }),
    )

  async function runOnce(host: DevHost, input: string): Promise<number> {
    try {
      JSON.parse(input)
    } catch {
      throw new WardenError('invalid_request', 'the input must be JSON')
    }
    const invocation = await host.run(input, { onHostCall: (d) => err(formatHostCall(d)) })
    printRun(invocation)
    return exitCodeOf(invocation)
  }

  function printRun(invocation: Invocation): void {
    for (const line of invocation.logs) {
      err(`[guest ${line.level}] ${terminalSafe(line.message, false)}`)
    }
    err(`host calls: ${invocation.decisions.length}`)
    if (invocation.ok) {
      out(terminalSafe(String(invocation.output), true))
    } else if (invocation.error) {
      err(`error: ${invocation.error.code}: ${terminalSafe(invocation.error.message, false)}`)
    } else {
      err(`guest error: ${terminalSafe(String(invocation.guestError), false)}`)
    }
    const r = invocation.report
    err(`fuel ${r.fuelUsed ?? '?'}  wall ${r.wallMs} ms  memory peak ${r.memoryPeakBytes ?? '?'} B`)
  }

  async function repl(host: DevHost): Promise<void> {
    err('warden: one JSON input per line (Ctrl-D ends)')
    const lines = createInterface({ input: process.stdin, terminal: false })
    for await (const line of lines) {
      if (line.trim() === '') {
        continue
      }
      try {
        await runOnce(host, line)
      } catch (error) {
        reportFailure(error, err)
      }
    }
  }

  async function serveMicroApp(host: DevHost, port: number): Promise<void> {
    const server = createServer((req, res) => {
      void serveOne(host, req, res)
    })
    await new Promise<void>((ready, fail) => {
      server.once('error', fail)
      server.listen(port, '127.0.0.1', ready)
    })
    const { port: bound } = server.address() as AddressInfo
    err(`warden: serving on http://127.0.0.1:${bound}/ (Ctrl-C stops)`)
    await (io.waitForStop ? io.waitForStop() : untilSignal())
    server.closeAllConnections()
    await new Promise<void>((done) => server.close(() => done()))
  }

  async function serveOne(host: DevHost, req: IncomingMessage, res: ServerResponse) {
    try {
      const request = await toIncomingRequest(req)
      const what = `${terminalSafe(request.method, false)} ${terminalSafe(req.url ?? '/', false)}`
      // Requests run side by side: each live line names its request.
      const invocation = await host.handle(request, {
        onHostCall: (d) => err(`${what}${formatHostCall(d)}`),
      })
      const status = toHttpResponse(invocation, res)
      err(`${what} → ${status}`)
      for (const line of invocation.logs) {
        err(`  [guest ${line.level}] ${terminalSafe(line.message, false)}`)
      }
    } catch (error) {
      reportFailure(error, err)
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('warden dev: internal error')
      }
    }
  }

  // ── warden deploy ─────────────────────────────────────────────────────────────────────────

  program
    .command('deploy')
    .description('build and upload the app to $WARDEN_SERVER with its owner and purpose')
    .argument('[dir]', 'the app folder (holds warden.json)', '.')
    .option('--json', 'print the app record as JSON')
    .action(
      act(async (dir: string, flags: { json?: boolean }) => {
        const client = ctx.needRemote('deploy')
        const built = await build(dir, true)
        formatBuild(built, process.cwd()).forEach(err)
        const { manifest } = built
        const { app, changed } = await client.upload(built.bytes, {
          name: manifest.name,
          owner: manifest.owner,
          purpose: manifest.purpose,
        })
        if (flags.json) {
          out(JSON.stringify(app, null, 2))
        } else {
          err(changed ? 'uploaded:' : 'unchanged (this build was already current):')
          formatAppDetail(await client.getApp(app.id)).forEach(out)
          if (app.status === 'pending') {
            out('')
            out(`needs an admin's approval (${app.riskTier} risk):`)
            out(`  warden apps approve ${app.name} --digest ${built.digest}`)
          }
          out('')
          if (manifest.kind === 'micro-app') {
            // A micro-app is served, not invoked: an admin binds it to /apps/<name>/ with a token.
            out(
              `then an admin serves it at /apps/${app.name}/ with a token that matches warden.json:`,
            )
            out(`  ${routeCommand(manifest.name, manifestGrants(manifest))}`)
            const body = JSON.stringify({ grants: manifestGrants(manifest), ttlSeconds: 86400 })
            out('or over the HTTP API:')
            out(
              `  curl -s -X POST "$WARDEN_SERVER/v1/apps/${app.name}/route" -H "authorization: Bearer $WARDEN_KEY" -H 'content-type: application/json' -d '${body.replaceAll("'", "'\\''")}'`,
            )
          } else {
            out('then grant a token that matches warden.json:')
            out(`  ${grantCommand(manifest.name, manifestGrants(manifest))}`)
          }
        }
        return EXIT.ok
      }),
    )
}

function reportFailure(error: unknown, err: (line: string) => void): void {
  const e = error instanceof WardenError ? error : undefined
  err(e ? `error: ${e.code}: ${e.message}` : `error: ${String(error)}`)
}

/** Rebuild on change until a signal: the first run happens at once. */
async function watchApp(
  dir: string,
  io: CliIo,
  err: (line: string) => void,
  onChange: () => Promise<void>,
): Promise<void> {
  await onChange()
  const stop = startWatching(dir, onChange)
  err('warden: watching for changes (Ctrl-C stops)')
  try {
    await (io.waitForStop ? io.waitForStop() : untilSignal())
  } finally {
    stop()
  }
}

/**
 * Call `onChange` after files of the app change (debounced; never two at once). Changes under
 * `.warden/`, `node_modules/` and `.git/` are ignored: the build writes the first.
 */
export function startWatching(dir: string, onChange: () => Promise<void>): () => void {
  let timer: NodeJS.Timeout | undefined
  let running = false
  let again = false
  const fire = async () => {
    if (running) {
      again = true
      return
    }
    running = true
    try {
      await onChange()
    } finally {
      running = false
      if (again) {
        again = false
        void fire()
      }
    }
  }
  const watcher: FSWatcher = watch(resolve(dir), { recursive: true }, (_event, file) => {
    const name = String(file ?? '')
    if (/(^|[\\/])(\.warden|node_modules|\.git)([\\/]|$)/.test(name)) {
      return
    }
    clearTimeout(timer)
    timer = setTimeout(() => void fire(), 150)
  })
  return () => {
    clearTimeout(timer)
    watcher.close()
  }
}

function untilSignal(): Promise<void> {
  return new Promise((resolveStop) => {
    process.once('SIGINT', () => resolveStop())
    process.once('SIGTERM', () => resolveStop())
  })
}
