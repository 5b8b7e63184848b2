/**
 * `isolation: 'process'`: the sandbox pool in a child process under Node's permission model,
 * with an empty environment and (where the platform allows) no network. Runs behave as with
 * worker threads of the host; host calls cross to the host's broker; the child can read only
 * Warden's compiled code, write nothing, start nothing, reach no network; and the host outlives
 * anything that happens to the child: killed, hung, out of heap, or sending garbage.
 *
 * The restrictions are checked twice: on the real child (its command line, environment and
 * network namespace, read from /proc) and by a probe script started with exactly the child's
 * command line, which tries each forbidden thing. The child has no test hook a guest could reach.
 */
import { spawn } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo, Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'
import { createTestEchoCapability, ECHO_INTERFACE } from '../host-capabilities/test-echo/index.js'
import type { BrokerCapability } from '../host-capabilities/types.js'
import { resolveHostConfig } from '../runtime/host-config.js'
import { resolveLimits } from '../runtime/index.js'
import type { Decision, Invocation, Limits, LoadedComponent, Sandbox } from '../runtime/index.js'
import type { SandboxPool } from '../runtime/sandbox/pool.js'
import {
  childCommand,
  childPaths,
  detectNetworkIsolation,
} from '../runtime/sandbox/process/launch.js'
import { ProcessSandboxPool } from '../runtime/sandbox/process/pool.js'
import { FrameReader, frame, parseFromChild } from '../runtime/sandbox/process/protocol.js'
import { fakeRunContext } from './support/context.js'
import { ECHO_CALLER, hostCallFlood, infiniteLoop } from './support/guests.js'
import { actionWat, compileWat, guestFile } from './support/wat.js'
import { startTestRuntime } from './support/runtime.js'
import type { TestRuntime } from './support/runtime.js'
import type { NetworkIsolation } from '../runtime/sandbox/process/launch.js'

const LOG = 'warden:platform/log'

/** Host calls the broker received, by function name. */
const brokerCalls: string[] = []

function spy(capability: BrokerCapability): BrokerCapability {
  return {
    descriptor: capability.descriptor,
    handle(fn, args, ctx) {
      brokerCalls.push(fn)
      return capability.handle(fn, args, ctx)
    },
  }
}

let threads: TestRuntime
let processes: TestRuntime
let echo: { thread: LoadedComponent; process: LoadedComponent }
let caller: LoadedComponent

function processPool(): ProcessSandboxPool {
  const pool = processes.warden.pool
  if (!(pool instanceof ProcessSandboxPool)) {
    throw new Error('not a process pool')
  }
  return pool
}

beforeAll(async () => {
  const capabilities = [spy(createTestEchoCapability())]
  ;[threads, processes] = await Promise.all([
    startTestRuntime({ poolSize: 1, brokerCapabilities: capabilities }),
    startTestRuntime({ poolSize: 2, brokerCapabilities: capabilities, isolation: 'process' }),
  ])
  const bytes = await guestFile('echo')
  echo = { thread: await threads.warden.load(bytes), process: await processes.warden.load(bytes) }
  caller = await processes.warden.load(await compileWat(ECHO_CALLER))
})

afterAll(async () => {
  await Promise.all([threads?.close(), processes?.close()])
})

/** What must not depend on where the run happened. */
function comparable(run: Invocation) {
  const { fuelUsed, memoryPeakBytes, hostCalls, outcome, fuelLimit, memoryLimitBytes } = run.report
  return {
    ok: run.ok,
    output: run.output,
    code: run.error?.code,
    logs: run.logs,
    decisions: run.decisions,
    report: { fuelUsed, memoryPeakBytes, hostCalls, outcome, fuelLimit, memoryLimitBytes },
  }
}

describe('isolation: process', () => {
  it('is the same Sandbox surface as the thread pool', () => {
    expectTypeOf<SandboxPool>().toMatchTypeOf<Sandbox>()
    expectTypeOf<ProcessSandboxPool>().toMatchTypeOf<Sandbox>()
    expect(processes.warden.isolation).toEqual({
      mode: 'process',
      networkIsolated: detectNetworkIsolation().kind === 'namespace',
    })
    expect(threads.warden.isolation).toEqual({ mode: 'thread', networkIsolated: false })
  })

  it('gives the same output and metering as worker threads', async () => {
    const options = { interfaces: [LOG] }
    const [a, b] = await Promise.all([
      threads.warden.invoke(echo.thread, 'hello, Ada', options),
      processes.warden.invoke(echo.process, 'hello, Ada', options),
    ])
    expect(a.ok).toBe(true)
    expect(a.output).toBe('hello, Ada')
    expect(a.logs).toEqual([{ level: 'info', message: 'hello, Ada' }])
    expect(comparable(b)).toEqual(comparable(a))
  })

  it('gives the same failures and metering as worker threads', async () => {
    for (const options of [{ interfaces: [LOG], limits: { fuel: 5 } }, { interfaces: [] }]) {
      const [a, b] = await Promise.all([
        threads.warden.invoke(echo.thread, 'x', options),
        processes.warden.invoke(echo.process, 'x', options),
      ])
      expect(comparable(b)).toEqual(comparable(a))
    }
  })

  it('answers broker host calls in the host', async () => {
    brokerCalls.length = 0
    const interfaces = [ECHO_INTERFACE]
    const run = await processes.warden.invoke(caller, 'refused across processes', { interfaces })
    expect(run.error).toBeUndefined()
    expect(run.output).toBe('refused across processes')
    expect(brokerCalls).toEqual(['fail'])
    // The capability's own error case answered an allowed call.
    expect(run.decisions).toMatchObject([
      { call: 1, capability: ECHO_INTERFACE, fn: 'fail', decision: 'allow' },
    ])
    const denied = await processes.warden.invoke(caller, 'x', { interfaces: [] })
    expect(denied.error?.code).toBe('capability_denied')
  })

  it('runs several jobs at once, each with its own host calls', async () => {
    const inputs = Array.from({ length: 8 }, (_, i) => `run ${i}`)
    const runs = await Promise.all(
      inputs.map((input) =>
        processes.warden.invoke(caller, input, { interfaces: [ECHO_INTERFACE] }),
      ),
    )
    expect(runs.map((r) => r.output)).toEqual(inputs)
  })
})

/** Logs its input three times, then loops until its deadline: no broker call, no result. */
const LOG_THEN_SPIN = actionWat(`
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (call $log (i32.const 1) (local.get $ptr) (local.get $len))
    (call $log (i32.const 2) (local.get $ptr) (local.get $len))
    (call $log (i32.const 3) (local.get $ptr) (local.get $len))
    (loop $l (br $l))
    (i32.const 0))`)

describe.each(['thread', 'process'] as const)('live decisions, isolation: %s', (mode) => {
  const runtime = () => (mode === 'thread' ? threads : processes).warden
  /** Messages the sandbox has sent live since the pool began. */
  const posted = () => (runtime().pool as SandboxPool | ProcessSandboxPool).liveDecisions
  /** Run `wat` with log granted and a listener: the answer and what the listener heard. */
  async function listened(wat: string, input: string, limits: Limits) {
    const guest = await runtime().load(await compileWat(wat))
    const heard: Decision[] = []
    const run = await runtime().invoke(guest, input, {
      interfaces: [LOG],
      limits,
      onDecision: (d) => heard.push(d),
    })
    return { run, heard }
  }

  it('tells each log line while the guest still runs: a run that times out was heard', async () => {
    const limits = { timeoutMs: 1500, fuel: 1e12 }
    const { run, heard } = await listened(LOG_THEN_SPIN, 'still running', limits)
    expect(run.error?.code).toBe('timeout')
    // The worker never reported: the three calls are known only from what it posted live.
    expect(run.decisions).toEqual([])
    expect(heard).toEqual(
      ['info', 'warn', 'error'].map((level, i) => ({
        call: i + 1,
        capability: LOG,
        fn: 'write',
        decision: 'allow',
        target: level,
        bytesOut: 'still running'.length,
      })),
    )
  })

  it("posts at most the run's logLines live, however many lines the guest writes", async () => {
    const before = posted()
    const { run, heard } = await listened(hostCallFlood, 'flood', { hostCalls: 200, logLines: 7 })
    expect(run.error?.code).toBe('limit_exceeded')
    expect(run.decisions).toHaveLength(200)
    expect(heard.map((d) => d.call)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(posted() - before).toBe(7)
  })

  it('posts nothing for a run without a listener', async () => {
    const guest = await runtime().load(await guestFile('echo'))
    const before = posted()
    const quiet = await runtime().invoke(guest, 'hi', { interfaces: [LOG] })
    expect(quiet.decisions).toHaveLength(1)
    expect(posted()).toBe(before)
    const heard: Decision[] = []
    const told = await runtime().invoke(guest, 'hi', {
      interfaces: [LOG],
      onDecision: (d) => heard.push(d),
    })
    expect(heard).toEqual(told.decisions)
    expect(posted()).toBe(before + 1)
  })
})

describe('the sandbox process', () => {
  it('has the command line, empty environment and network namespace we asked for', () => {
    const pid = processPool().pid!
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1)
    const expected = childCommand({ heapMb: 1024, network: { kind: 'none' } })
    // `unshare` execs node in place: the process is node, with exactly the child's arguments.
    expect(cmdline).toEqual([process.execPath, ...expected.args])
    expect(readFileSync(`/proc/${pid}/environ`).length).toBe(0)
    const ownNet = statSync('/proc/self/ns/net').ino
    const childNet = statSync(`/proc/${pid}/ns/net`).ino
    expect(childNet !== ownNet).toBe(processPool().networkIsolated)
    // In a user namespace of its own, it holds no capability outside it (not even as root).
    const network = detectNetworkIsolation()
    const inUserNs = network.kind === 'namespace' && network.args.includes('--user')
    const ownUser = statSync('/proc/self/ns/user').ino
    expect(statSync(`/proc/${pid}/ns/user`).ino !== ownUser).toBe(inUserNs)
  })

  it('may read only dist/core, dist/runtime and dist/host-capabilities: nothing from node_modules', () => {
    const paths = childPaths()
    const dist = fileURLToPath(new URL('../dist/', import.meta.url))
    expect(paths.readable).toEqual([
      join(dist, 'core'),
      join(dist, 'runtime'),
      join(dist, 'host-capabilities'),
    ])
    expect(paths.entry.startsWith(join(dist, 'runtime'))).toBe(true)
  })

  describe('under its flags', () => {
    let dir: string
    let server: Server
    let port: number
    let accepted = 0

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'warden-probe-'))
      await writeFile(join(dir, 'secret.txt'), 'not for the sandbox')
      server = createServer((socket) => {
        accepted++
        socket.destroy()
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      port = (server.address() as AddressInfo).port
    })

    afterAll(async () => {
      await new Promise((resolve) => server?.close(resolve))
      await rm(dir, { recursive: true, force: true })
    })

    /** Each forbidden thing, tried in a process started exactly as the child is. */
    const PROBE = `
      const out = {}
      const code = (f) => { try { f(); return 'allowed' } catch (e) { return e.code ?? e.name } }
      const fs = await import('node:fs')
      out.readOutside = code(() => fs.readFileSync(process.argv[1] + '/secret.txt'))
      out.readPackageJson = code(() => fs.readFileSync(process.argv[2]))
      out.readOwnCode = code(() => fs.readFileSync(process.argv[3]))
      out.write = code(() => fs.writeFileSync(process.argv[1] + '/written.txt', 'x'))
      const cp = await import('node:child_process')
      out.spawn = code(() => cp.spawnSync('/bin/true'))
      out.addon = code(() => process.dlopen({ exports: {} }, process.argv[1] + '/addon.node'))
      out.binding = code(() => process.binding('spawn_sync'))
      const inspector = await import('node:inspector')
      out.inspector = code(() => inspector.open(0))
      const wasi = await import('node:wasi')
      out.wasi = code(() => new wasi.WASI({ version: 'preview1' }))
      out.eval = code(() => eval('1'))
      out.newFunction = code(() => new Function('return 1'))
      out.env = Object.keys(process.env).length
      const net = await import('node:net')
      out.connect = await new Promise((resolve) => {
        const socket = net.connect(Number(process.argv[4]), '127.0.0.1')
        socket.on('connect', () => { socket.destroy(); resolve('allowed') })
        socket.on('error', (e) => resolve(e.code))
      })
      console.log(JSON.stringify(out))
    `

    async function probe(network: NetworkIsolation): Promise<Record<string, unknown>> {
      const { command, args } = childCommand({ heapMb: 64, network }, [
        '--input-type=module',
        '-e',
        PROBE,
        dir,
        fileURLToPath(new URL('../package.json', import.meta.url)),
        childPaths().entry,
        String(port),
      ])
      const child = spawn(command, args, { env: {}, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      await new Promise((resolve) => child.on('close', resolve))
      expect(stderr).toBe('')
      return JSON.parse(stdout) as Record<string, unknown>
    }

    it('cannot read outside its code, write, spawn, load addons, debug, eval', async () => {
      const result = await probe(detectNetworkIsolation())
      expect(result).toMatchObject({
        readOutside: 'ERR_ACCESS_DENIED',
        readPackageJson: 'ERR_ACCESS_DENIED',
        readOwnCode: 'allowed',
        write: 'ERR_ACCESS_DENIED',
        spawn: 'ERR_ACCESS_DENIED',
        eval: 'EvalError',
        newFunction: 'EvalError',
        addon: 'ERR_DLOPEN_DISABLED',
        binding: 'ERR_ACCESS_DENIED',
        inspector: 'ERR_ACCESS_DENIED',
        wasi: 'ERR_ACCESS_DENIED',
        env: 0,
      })
    })

    it.runIf(detectNetworkIsolation().kind === 'namespace')(
      'cannot connect a socket in its network namespace (the permission model alone would let it)',
      async () => {
        const before = accepted
        expect((await probe(detectNetworkIsolation())).connect).toBe('ENETUNREACH')
        expect(accepted).toBe(before)
        expect((await probe({ kind: 'none' })).connect).toBe('allowed')
      },
    )
  })
})

describe('deadlines in the sandbox process', () => {
  it('ends a loop past its deadline in the guest: the child and its worker live on', async () => {
    const pool = processPool()
    const pid = pool.pid
    const before = pool.replacements
    const loop = await processes.warden.load(await compileWat(infiniteLoop))
    const run = await processes.warden.invoke(loop, '', { limits: { fuel: 1e12, timeoutMs: 200 } })
    expect(run.error).toEqual({ code: 'timeout', message: 'the run passed its 200 ms deadline' })
    expect(run.report.fuelUsed).toBeNull()
    const next = await processes.warden.invoke(echo.process, 'after the deadline')
    expect(next.output).toBe('after the deadline')
    expect(pool.replacements).toBe(before)
    expect(pool.pid).toBe(pid)
  })
})

describe('faults in the sandbox process', () => {
  async function waitForBrokerCall(fn: string): Promise<void> {
    await expect.poll(() => brokerCalls.includes(fn), { timeout: 10_000 }).toBe(true)
  }

  it('a killed child ends its run with internal; the next run succeeds', async () => {
    brokerCalls.length = 0
    const pool = processPool()
    const replacements = pool.replacements
    const pid = pool.pid!
    const hanging = processes.warden.invoke(caller, 'hang', { interfaces: [ECHO_INTERFACE] })
    await waitForBrokerCall('hang')
    process.kill(pid, 'SIGKILL')
    const run = await hanging
    expect(run.error?.code).toBe('internal')
    expect(run.report.fuelUsed).toBeNull()
    expect(pool.replacements).toBe(replacements + 1)
    const interfaces = [ECHO_INTERFACE]
    const next = await processes.warden.invoke(caller, 'after the crash', { interfaces })
    expect(next.output).toBe('after the crash')
    expect(pool.pid).not.toBe(pid)
  })

  it('a hung child ends its run with timeout at the host deadline and is replaced', async () => {
    brokerCalls.length = 0
    const pool = processPool()
    const pid = pool.pid!
    const hanging = processes.warden.invoke(caller, 'hang', {
      interfaces: [ECHO_INTERFACE],
      limits: { timeoutMs: 200 },
    })
    await waitForBrokerCall('hang')
    // Frozen, the child cannot run its own watchdog: only the host's deadline is left.
    process.kill(pid, 'SIGSTOP')
    const run = await hanging
    expect(run.error?.code).toBe('timeout')
    const replaced = () => pool.pid !== undefined && pool.pid !== pid
    await expect.poll(replaced, { timeout: 10_000 }).toBe(true)
    const interfaces = [ECHO_INTERFACE]
    const next = await processes.warden.invoke(caller, 'after the hang', { interfaces })
    expect(next.output).toBe('after the hang')
  })

  it('a child out of heap ends its run with internal; the next run succeeds', async () => {
    const pool = new ProcessSandboxPool({
      size: 1,
      heapMb: 32,
      brokerInterfaces: {},
      onHostCall: refuse,
    })
    try {
      await pool.warm()
      const pid = pool.pid
      // 64 MiB of input: the child's 32 MiB heap runs out while it decodes and forwards the job.
      const huge = await pool.run(job(echo.process, 'x'.repeat(64 * 1024 * 1024)))
      expect(huge).toMatchObject({ ok: false, error: { code: 'internal' }, metering: null })
      const next = await pool.run(job(echo.process, 'small'))
      expect(next).toMatchObject({ ok: true, outcome: 'ok', value: 'small' })
      expect(pool.pid).not.toBe(pid)
      expect(pool.replacements).toBe(1)
    } finally {
      await pool.close()
    }
  })

  it('close() ends the child', async () => {
    const pool = new ProcessSandboxPool({ size: 1, brokerInterfaces: {}, onHostCall: refuse })
    await pool.warm()
    const pid = pool.pid!
    await pool.close()
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }))
    const after = await pool.run(job(echo.process, 'x'))
    expect(after).toMatchObject({ ok: false, error: { code: 'internal' } })
  })
})

describe('what the host accepts from the child', () => {
  let dir: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warden-hostile-'))
    await mkdir(join(dir, 'code'))
    const codec = new URL('../dist/runtime/sandbox/codec.js', import.meta.url).href
    // A child that completes its handshake, then answers each run as its input says.
    await writeFile(
      join(dir, 'code', 'hostile.mjs'),
      `import { Socket } from 'node:net'
      import { decode, encode } from ${JSON.stringify(codec)}
      const pipe = new Socket({ fd: 3, readable: true, writable: true })
      const frame = (payload) => {
        const b = Buffer.alloc(4 + payload.length)
        b.writeUInt32LE(payload.length)
        b.set(payload, 4)
        return b
      }
      const send = (value) => pipe.write(frame(encode(value)))
      const metering = {
        fuelUsed: 1, memoryPeakBytes: 0, hostCalls: 0, logs: [], logsDropped: 0, decisions: [],
      }
      const call = (id, n) => ({
        type: 'host-call', id, request: { call: n, capability: 'c', fn: 'f', args: [] },
      })
      const lines = Array(2000).fill({ level: 'info', message: 'x' })
      const decision = { call: 1, capability: 1, fn: 'f', decision: 'allow' }
      let pending = Buffer.alloc(0)
      pipe.on('data', (chunk) => {
        pending = Buffer.concat([pending, chunk])
        while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32LE(0)) {
          const message = decode(pending.subarray(4, 4 + pending.readUInt32LE(0)))
          pending = pending.subarray(4 + pending.readUInt32LE(0))
          if (message.type === 'init') send({ type: 'ready', version: message.version })
          if (message.type !== 'run') continue
          const id = message.id
          const result = {
            type: 'result', id, replacements: 0, ok: true, outcome: 'ok', value: 'fine', metering,
          }
          switch (message.args[0]) {
            case 'ok': send(result); break
            case 'unknown type': send({ ...result, type: 'surprise' }); break
            case 'wrong id': send({ ...result, id: id + 1000 }); break
            case 'bad code': send({ ...result, ok: false, error: { code: 'root' } }); break
            case 'fuel above the limit':
              send({ ...result, metering: { ...metering, fuelUsed: 1e300 } })
              break
            case 'too many logs': send({ ...result, metering: { ...metering, logs: lines } }); break
            case 'bad decision':
              send({ ...result, metering: { ...metering, decisions: [decision] } })
              break
            case 'not the codec': pipe.write(Buffer.from([3, 0, 0, 0, 99, 99, 99])); break
            case 'oversized frame': pipe.write(Buffer.from([0xff, 0xff, 0xff, 0x7f])); break
            case 'host call out of a run': send(call(id + 1, 1)); break
            case 'two host calls at once': send(call(id, 1)); send(call(id, 2)); break
            case 'second handshake': send({ type: 'ready', version: 1 }); break
            case 'exit': process.exit(3)
          }
        }
      })
      `,
    )
  })

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it.each([
    'unknown type',
    'wrong id',
    'bad code',
    'fuel above the limit',
    'too many logs',
    'bad decision',
    'not the codec',
    'oversized frame',
    'host call out of a run',
    'two host calls at once',
    'second handshake',
    'exit',
  ])('%s: the run ends with internal and the child is replaced', async (input) => {
    const paths = childPaths()
    const pool = new ProcessSandboxPool({
      size: 1,
      brokerInterfaces: {},
      // Never answers: the second host call arrives while the first is in progress.
      onHostCall: () => new Promise(() => {}),
      childPaths: {
        entry: join(dir, 'code', 'hostile.mjs'),
        readable: [join(dir, 'code'), ...paths.readable],
        root: dir,
      },
    })
    try {
      await pool.warm()
      expect(await pool.run(job(echo.process, 'ok'))).toMatchObject({ ok: true, value: 'fine' })
      expect(await pool.run(job(echo.process, input))).toMatchObject({
        ok: false,
        error: { code: 'internal' },
        metering: null,
      })
      expect(pool.replacements).toBe(1)
      expect(await pool.run(job(echo.process, 'ok'))).toMatchObject({ ok: true, value: 'fine' })
    } finally {
      await pool.close()
    }
  })

  it('a child that cannot start fails warm() and runs, and is retried on demand', async () => {
    await writeFile(join(dir, 'code', 'broken.mjs'), 'process.exit(1)\n')
    const pool = new ProcessSandboxPool({
      size: 1,
      brokerInterfaces: {},
      onHostCall: refuse,
      childPaths: {
        entry: join(dir, 'code', 'broken.mjs'),
        readable: [join(dir, 'code')],
        root: dir,
      },
    })
    try {
      await expect(pool.warm()).rejects.toMatchObject({ code: 'internal' })
      const run = await pool.run(job(echo.process, 'x'))
      expect(run).toMatchObject({ ok: false, error: { code: 'internal' } })
      await expect(pool.warm()).rejects.toMatchObject({ code: 'internal' })
    } finally {
      await pool.close()
    }
  })

  it('refuses to start without a build of the child', () => {
    const options = { brokerInterfaces: {}, onHostCall: refuse }
    const childPaths = { entry: join(dir, 'missing.js'), readable: [dir], root: dir }
    expect(() => new ProcessSandboxPool({ ...options, childPaths })).toThrow(
      expect.objectContaining({ code: 'internal' }),
    )
  })

  it('checks messages field by field and keeps only what it expects', () => {
    const limits = resolveLimits()
    const runOf = (id: number) => (id === 7 ? { limits } : undefined)
    const metering = {
      fuelUsed: 3,
      memoryPeakBytes: 0,
      hostCalls: 0,
      logs: [],
      logsDropped: 0,
      decisions: [],
    }
    const ok = {
      type: 'result',
      id: 7,
      replacements: 0,
      ok: true,
      outcome: 'ok',
      value: 1,
      metering,
    }
    const withMetering = (more: object) => ({ ...ok, metering: { ...metering, ...more } })
    expect(parseFromChild({ ...ok, extra: 'dropped' }, runOf)).toEqual(ok)
    expect(parseFromChild({ ...ok, id: 8 }, runOf)).toBeUndefined()
    expect(parseFromChild({ ...ok, outcome: 'maybe' }, runOf)).toBeUndefined()
    expect(parseFromChild({ ...ok, ok: 'yes' }, runOf)).toBeUndefined()
    expect(parseFromChild(withMetering({ hostCalls: -1 }), runOf)).toBeUndefined()
    const loud = [{ level: 'loud', message: '' }]
    expect(parseFromChild(withMetering({ logs: loud }), runOf)).toBeUndefined()
    expect(parseFromChild(null, runOf)).toBeUndefined()
    expect(parseFromChild([ok], runOf)).toBeUndefined()
    const request = { call: 1, capability: 'c', fn: 'f', args: 'no' }
    expect(parseFromChild({ type: 'host-call', id: 7, request }, runOf)).toBeUndefined()
    expect(
      parseFromChild({ type: 'host-call', id: 7, request: { ...request, args: [] } }, runOf),
    ).toEqual({ type: 'host-call', id: 7, request: { ...request, args: [] } })
    const decision = { call: 1, capability: LOG, fn: 'write', decision: 'allow', target: 'info' }
    expect(parseFromChild({ type: 'decision', id: 7, decision, extra: 1 }, runOf)).toEqual({
      type: 'decision',
      id: 7,
      decision,
    })
    expect(parseFromChild({ type: 'decision', id: 8, decision }, runOf)).toBeUndefined()
    for (const forged of [
      { ...decision, decision: 'maybe' },
      { ...decision, bytesOut: -1 },
      null,
    ]) {
      expect(parseFromChild({ type: 'decision', id: 7, decision: forged }, runOf)).toBeUndefined()
    }
  })

  it('reassembles frames split anywhere and refuses one above the limit', () => {
    const frames: string[] = []
    const reader = new FrameReader(16, (f) => frames.push(Buffer.from(f).toString()))
    const bytes = Buffer.concat(['one', '', 'three'].map((text) => frame(Buffer.from(text))))
    for (let i = 0; i < bytes.length; i++) {
      reader.push(bytes.subarray(i, i + 1))
    }
    reader.push(bytes)
    expect(frames).toEqual(['one', '', 'three', 'one', '', 'three'])
    expect(() => reader.push(frame(Buffer.alloc(17)))).toThrow(RangeError)
  })
})

describe('WARDEN_ISOLATION', () => {
  it('selects the isolation; thread by default', () => {
    expect(resolveHostConfig({}).isolation).toBe('thread')
    expect(resolveHostConfig({ WARDEN_ISOLATION: 'process' }).isolation).toBe('process')
    expect(() => resolveHostConfig({ WARDEN_ISOLATION: 'vm' })).toThrow(TypeError)
  })
})

function refuse(): never {
  throw new Error('no host calls here')
}

function job(app: LoadedComponent, input: string) {
  const context = fakeRunContext({ digest: app.digest })
  return {
    component: app.sandbox,
    exportName: 'run',
    args: [input],
    limits: resolveLimits(),
    grant: { imported: app.imports, granted: [] },
    context,
  }
}
