#!/usr/bin/env node
/**
 * The `warden` command line. The program is built in `program.ts` over an injected `CliIo`;
 * this file only hands it the process's streams, environment and exit code, and runs it.
 */
import { buffer } from 'node:stream/consumers'
import type { CliIo } from './io.js'
import { runCli } from './program.js'

const io: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  async readStdin() {
    if (process.stdin.isTTY) {
      process.stderr.write('warden: reading stdin; end with Ctrl-D\n')
    }
    return (await buffer(process.stdin)).toString('utf8')
  },
  // NB: the one read of process.env outside runtime/host-config.ts: the CLI also needs
  // WARDEN_TOKEN and the variable named by `secret set --from-env`. Host settings are still
  // resolved by resolveHostConfig(env).
  env: process.env,
  isTTY: process.stderr.isTTY === true,
  setExitCode: (code) => {
    process.exitCode = code
  },
}

await runCli(io, process.argv.slice(2))
