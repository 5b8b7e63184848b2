/**
 * Per-run limits. A token (issue 3) or the CLI supplies {@link Limits}; {@link resolveLimits}
 * fills the defaults and clamps everything to the host's ceilings, once, before a run starts.
 */

/** What one run may use. Every field is optional; defaults are in {@link DEFAULT_LIMITS}. */
export interface Limits {
  /** Fuel units: one per instruction of straight-line code (see `instrument.ts`). Default 1e9. */
  fuel?: number
  /** Linear memory cap across the component, in MiB. Default 64. */
  memoryMb?: number
  /** Wall-clock deadline, in ms, from dispatch to answer. Default 5000. */
  timeoutMs?: number
  /** Host calls (every import call, allowed or denied). Default 1000. */
  hostCalls?: number
  /** Bytes sent and received by `http` in total. Default 10 MiB. */
  egressBytes?: number
  /** Log lines kept; later lines are dropped and counted. Default 1000. */
  logLines?: number
  /** Log bytes kept (UTF-8), across lines. Default 64 KiB. */
  logBytes?: number
}

/** Limits with every field set. */
export type ResolvedLimits = Readonly<Required<Limits>>

/** The defaults of {@link Limits}. */
export const DEFAULT_LIMITS: ResolvedLimits = Object.freeze({
  fuel: 1_000_000_000,
  memoryMb: 64,
  timeoutMs: 5_000,
  hostCalls: 1_000,
  egressBytes: 10 * 1024 * 1024,
  logLines: 1_000,
  logBytes: 64 * 1024,
})

/** The host's ceilings: no run gets more, whatever it asks for. */
export interface LimitCeilings {
  /** Largest memory cap, in MiB. It is also written into every module's memory maximum. */
  maxMemoryMb: number
  /** Largest deadline, in ms. */
  maxTimeoutMs: number
  /** Largest fuel budget. */
  maxFuel: number
  /** Largest host call budget. Default 100,000. */
  maxHostCalls?: number
  /** Largest egress budget, in bytes. Default 1 GiB. */
  maxEgressBytes?: number
  /** Largest log line budget. Default 10,000. */
  maxLogLines?: number
  /** Largest log byte budget. Default 1 MiB. */
  maxLogBytes?: number
}

/** Default ceilings: 1 GiB of memory, 5 minutes, 1e12 fuel. */
export const DEFAULT_CEILINGS: Readonly<LimitCeilings> = Object.freeze({
  maxMemoryMb: 1024,
  maxTimeoutMs: 300_000,
  maxFuel: 1e12,
})

/** 64 KiB WebAssembly pages per MiB. */
export const PAGES_PER_MB = 16

/**
 * Fill defaults and clamp to ceilings. Throws TypeError on a value that is not a positive
 * integer: that is host misuse, not a guest failure.
 *
 * @example
 * resolveLimits({ fuel: 1e6 }) // { fuel: 1000000, memoryMb: 64, timeoutMs: 5000, ... }
 */
export function resolveLimits(
  limits: Limits = {},
  ceilings: LimitCeilings = DEFAULT_CEILINGS,
): ResolvedLimits {
  const out: Required<Limits> = { ...DEFAULT_LIMITS }
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const value = limits[key]
    if (value === undefined) {
      continue
    }
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`limit ${key} must be a positive integer, got ${String(value)}`)
    }
    out[key] = value
  }
  out.memoryMb = Math.min(out.memoryMb, ceilings.maxMemoryMb)
  out.timeoutMs = Math.min(out.timeoutMs, ceilings.maxTimeoutMs)
  out.fuel = Math.min(out.fuel, ceilings.maxFuel)
  out.hostCalls = Math.min(out.hostCalls, ceilings.maxHostCalls ?? 100_000)
  out.egressBytes = Math.min(out.egressBytes, ceilings.maxEgressBytes ?? 1024 ** 3)
  out.logLines = Math.min(out.logLines, ceilings.maxLogLines ?? 10_000)
  out.logBytes = Math.min(out.logBytes, ceilings.maxLogBytes ?? 1024 * 1024)
  return Object.freeze(out)
}

/**
 * Bytes the glue may copy out of guest memory in one run, strings and byte lists together:
 * 64 MiB. A copy of a byte list (`memory.buffer.slice`) lives outside the JS heap, so the
 * worker's heap limit does not bound it: a guest returning the same 60 MiB region sixteen
 * times held a gigabyte (found by the outside attack). Past it the run ends `limit_exceeded`.
 */
export const MAX_RUN_LIFT_BYTES = 64 * 1024 * 1024
