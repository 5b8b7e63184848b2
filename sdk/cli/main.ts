#!/usr/bin/env node
/**
 * The `warden` command line. Each command is a function elsewhere in this folder; this file
 * only parses flags, prints, and sets the exit code.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { WardenError, toWardenError } from '../../runtime/errors.js'
import { resolveHostConfig } from '../../runtime/host-config.js'
import { runDemo } from './demo.js'
import { CAPABILITY_ALIASES, EXIT, runApp } from './run.js'

function positiveInt(value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError('expected a positive integer')
  }
  return n
}

const program = new Command()
  .name('warden')
  .description('Warden: run untrusted WebAssembly micro-apps in a metered, capability-checked sandbox.')
  .showHelpAfterError()
  .exitOverride()

program
  .command('run')
  .description('run an action component once and print its output')
  .argument('<component>', 'a .wasm component (or .wat component text)')
  .option('-i, --input <json>', 'JSON input passed to run()', '{}')
  .option('--fuel <n>', 'fuel budget: one unit per instruction (default 1e9)', positiveInt)
  .option('--memory-mb <m>', 'linear memory cap in MiB (default 64)', positiveInt)
  .option('--timeout-ms <t>', 'wall-clock deadline in ms (default 5000)', positiveInt)
  .option('--host-calls <n>', 'host call budget (default 1000)', positiveInt)
  .option('-g, --grant <capability...>', 'capabilities to grant (short names or interface names)', ['log'])
  .option('--no-grant', 'grant nothing: every imported capability answers denied')
  .option('--json', 'print one JSON object: output, logs and the metering report')
  .addHelpText(
    'after',
    `
Capabilities: ${Object.keys(CAPABILITY_ALIASES).join(', ')} (only log is provided before issue 3).
Exit codes: 0 ok, 1 Warden error (the code is printed), 2 usage, 3 the guest returned its err case.

Examples:
  $ warden run examples/hello/hello.wat --input '{"name":"Ada"}'
  $ warden run app.wasm --fuel 1000000 --memory-mb 16 --json`,
  )
  .action(async (component: string, flags: RunFlags) => {
    const config = resolveHostConfig()
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
      dataDir: config.dataDir,
      onProgress: flags.json ? undefined : (m) => process.stderr.write(`warden: ${m}\n`),
    })
    if (flags.json) {
      const { output, guestError, error, logs, report } = invocation
      process.stdout.write(`${JSON.stringify({ output, guestError, error, logs, report })}\n`)
    } else {
      for (const line of invocation.logs) {
        process.stderr.write(`[guest ${line.level}] ${line.message}\n`)
      }
      if (invocation.ok) {
        process.stdout.write(`${String(invocation.output)}\n`)
      } else if (invocation.error) {
        process.stderr.write(`error: ${invocation.error.code}: ${invocation.error.message}\n`)
      } else {
        process.stderr.write(`guest error: ${String(invocation.guestError)}\n`)
      }
    }
    process.exitCode = exitCode
  })

program
  .command('demo')
  .description('run the bundled examples through the sandbox (what `npm start` does today)')
  .action(async () => {
    const ok = await runDemo(resolveHostConfig().dataDir, (line) => process.stdout.write(`${line}\n`))
    process.exitCode = ok ? 0 : 1
  })

interface RunFlags {
  input: string
  fuel?: number
  memoryMb?: number
  timeoutMs?: number
  hostCalls?: number
  grant: string[] | false
  json?: boolean
}

try {
  await program.parseAsync()
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version exit 0; every other parse failure is a usage error.
    process.exitCode = error.exitCode === 0 ? 0 : EXIT.usage
    process.exit()
  }
  const e = toWardenError(error)
  process.stderr.write(`error: ${e.code}: ${e instanceof WardenError && e.code !== 'internal' ? e.message : String(error)}\n`)
  process.exitCode = e.code === 'invalid_request' ? EXIT.usage : EXIT.wardenError
}
