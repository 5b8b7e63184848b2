/**
 * `/metrics` in the Prometheus text format (`prom-client`, one registry per server): runs by
 * outcome and code, fuel, wall time and memory histograms, runs in flight, the pool's size and
 * replacements, host calls by capability and decision, HTTP requests by route and status.
 * Labels never carry app ids, tokens or anything a caller chose beyond the route pattern.
 * With telemetry on, every figure also goes to the Warden's OpenTelemetry instruments, from the
 * same calls (docs/telemetry.md maps the names).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { METRIC_BUCKETS } from '../runtime/index.js'
import type { Invocation, Warden } from '../runtime/index.js'

/** The server's metrics. */
export interface ControlPlaneMetrics {
  readonly registry: Registry
  /** Count one HTTP request: its route pattern (not its path), method and status. */
  request(route: string, method: string, status: number, seconds: number): void
  /** A run starts / ends (in flight). */
  runStarted(): void
  runEnded(invocation: Invocation | undefined, refusedCode?: string): void
}

/**
 * Metrics over `warden`'s pool.
 *
 * @example
 * const metrics = createMetrics(warden)
 * app.get('/metrics', async (c) => c.text(await metrics.registry.metrics()))
 */
export function createMetrics(warden: Warden): ControlPlaneMetrics {
  const registry = new Registry()
  const otel = warden.telemetry.enabled ? warden.telemetry : undefined
  otel?.observePool({
    size: () => warden.runtime.pool.size,
    replacements: () => warden.runtime.pool.replacements,
  })
  const runs = new Counter({
    name: 'warden_runs_total',
    help: 'Runs by outcome (ok, err, an error code, or refused) and code',
    labelNames: ['outcome', 'code'] as const,
    registers: [registry],
  })
  const fuel = new Histogram({
    name: 'warden_run_fuel_used',
    help: 'Fuel a run used',
    buckets: [...METRIC_BUCKETS.fuel],
    registers: [registry],
  })
  const wall = new Histogram({
    name: 'warden_run_wall_seconds',
    help: 'Time a run spent in the sandbox',
    buckets: [...METRIC_BUCKETS.runSeconds],
    registers: [registry],
  })
  const memory = new Histogram({
    name: 'warden_run_memory_peak_bytes',
    help: "Peak of a run's linear memory",
    buckets: [...METRIC_BUCKETS.memoryBytes],
    registers: [registry],
  })
  const hostCalls = new Counter({
    name: 'warden_host_calls_total',
    help: 'Host calls by capability and decision',
    labelNames: ['capability', 'decision'] as const,
    registers: [registry],
  })
  let inFlight = 0
  new Gauge({
    name: 'warden_runs_in_flight',
    help: 'Runs started through the API and not answered yet',
    registers: [registry],
    collect() {
      this.set(inFlight)
    },
  })
  new Gauge({
    name: 'warden_pool_size',
    help: 'Sandbox workers in the pool',
    registers: [registry],
    collect() {
      this.set(warden.runtime.pool.size)
    },
  })
  new Gauge({
    name: 'warden_pool_replacements',
    help: 'Sandbox workers started to replace killed or crashed ones since start',
    registers: [registry],
    collect() {
      this.set(warden.runtime.pool.replacements)
    },
  })
  const requests = new Counter({
    name: 'warden_http_requests_total',
    help: 'HTTP requests by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  })
  const latency = new Histogram({
    name: 'warden_http_request_seconds',
    help: 'HTTP request duration by route pattern and method',
    labelNames: ['route', 'method'] as const,
    buckets: [...METRIC_BUCKETS.httpSeconds],
    registers: [registry],
  })
  return {
    registry,
    request(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) })
      latency.observe({ route, method }, seconds)
      otel?.request(route, method, status, seconds)
    },
    runStarted() {
      inFlight++
      otel?.runStarted()
    },
    runEnded(invocation, refusedCode) {
      inFlight--
      otel?.runEnded(invocation, refusedCode)
      if (!invocation) {
        runs.inc({ outcome: 'refused', code: refusedCode ?? 'internal' })
        return
      }
      const { report } = invocation
      runs.inc({ outcome: report.outcome, code: invocation.error?.code ?? '' })
      if (report.fuelUsed !== null) {
        fuel.observe(report.fuelUsed)
      }
      wall.observe(report.wallMs / 1000)
      if (report.memoryPeakBytes !== null) {
        memory.observe(report.memoryPeakBytes)
      }
      for (const d of invocation.decisions) {
        hostCalls.inc({ capability: d.capability, decision: d.decision })
      }
    },
  }
}
