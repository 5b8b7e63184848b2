/**
 * Telemetry: what Warden tells an OpenTelemetry stack (docs/telemetry.md), behind one small
 * interface that the runtime and the control plane call. Off by default: {@link NO_TELEMETRY}
 * does nothing, and every caller checks {@link Telemetry.enabled} before it computes a single
 * attribute, so a host without `OTEL_EXPORTER_OTLP_ENDPOINT` pays one branch per hook. The
 * OpenTelemetry SDK is loaded only when telemetry is on (`otel.ts`, a dynamic import).
 *
 * What goes out: a span per HTTP request, per run and per host call (context flows request →
 * run → host calls, though host calls are answered on the main thread outside the run's async
 * context: the run's trace rides on the broker's run context); the `/metrics` figures as OTel
 * instruments; guest log lines and audit records as log records. What never does: secret
 * values, tokens, API keys, bodies, query strings, header values.
 */
import type { AuditRecord } from '../audit/index.js'
import type { HostCallTrace } from '../broker/broker.js'
import type { Invocation } from '../runtime.js'

/** Whether telemetry is on, resolved once from the environment by `host-config.ts`. */
export interface TelemetryConfig {
  /**
   * True when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or a per-signal
   * `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`) and `OTEL_SDK_DISABLED` is not `true`.
   * Every other `OTEL_*` variable is read by the OpenTelemetry SDK itself.
   */
  enabled: boolean
}

/** One HTTP request as the server span sees it: never a header value, never the query. */
export interface HttpRequestInfo {
  method: string
  /** The path only (no query); credential-shaped segments are masked before it is recorded. */
  path: string
  /** Reads a request header; only the W3C `traceparent`/`tracestate` are ever asked for. */
  header(name: string): string | undefined
  /** Replaces every stored secret value (the Warden's redactor). */
  redact(text: string): string
}

/** How the request ended, known after the route ran. */
export interface HttpResponseInfo {
  /** The matched route pattern (`/v1/apps/:id/invoke`), or undefined when none matched. */
  route: string | undefined
  status: number
  /** The stable code of an error answer, when the request ended in one. */
  errorCode: string | undefined
}

/** What the pool gauges read, at each metrics collection. */
export interface PoolFigures {
  /** Sandbox workers in the pool. */
  size(): number
  /** Workers started to replace killed or crashed ones since start. */
  replacements(): number
}

/** The telemetry hooks. Call none of them, and compute nothing for them, unless `enabled`. */
export interface Telemetry {
  readonly enabled: boolean
  /** A server span around one HTTP request; the route runs inside its context. */
  traceRequest(request: HttpRequestInfo, handle: () => Promise<HttpResponseInfo>): Promise<void>
  /**
   * A run span around one `Warden.run` (child of the active span: the request's), with the
   * host-call spans, the guest's log lines and the run's figures. `redact` cleans every text
   * that a guest or a client could have written before it becomes an attribute.
   */
  traceRun(
    digest: string,
    redact: (text: string) => string,
    run: () => Promise<Invocation>,
  ): Promise<Invocation>
  /**
   * The host-call tracer of the run in whose context this is called, if one is traced; its
   * host-call spans carry `appId` and `digest`.
   */
  hostCalls(appId: string, digest: string): HostCallTrace | undefined
  /** One durable audit record, as a log record (its own fields, already redacted). */
  auditRecord(record: AuditRecord): void
  /** The `/metrics` figures, as OTel instruments: one HTTP request. */
  request(route: string, method: string, status: number, seconds: number): void
  /** A run through the API starts (in flight). */
  runStarted(): void
  /** A run through the API ends: its invocation, or the code it was refused with. */
  runEnded(invocation: Invocation | undefined, refusedCode?: string): void
  /** Observe the pool's gauges at each collection. */
  observePool(pool: PoolFigures): void
  /** Flush and stop: every span, metric and log record so far is exported first. */
  shutdown(): Promise<void>
}

/** Histogram buckets of `/metrics` and of the OTel instruments alike, so both say the same. */
export const METRIC_BUCKETS = Object.freeze({
  /** HTTP request duration, s. */
  httpSeconds: Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5]),
  /** A run's time in the sandbox, s. */
  runSeconds: Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30]),
  /** Fuel a run used. */
  fuel: Object.freeze([1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10]),
  /** Peak of a run's linear memory, bytes. */
  memoryBytes: Object.freeze([65536, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30]),
})

const nothing = () => {}

/** Telemetry off: every hook does nothing. The default. */
export const NO_TELEMETRY: Telemetry = Object.freeze({
  enabled: false,
  traceRequest: async (_request: HttpRequestInfo, handle: () => Promise<HttpResponseInfo>) => {
    await handle()
  },
  traceRun: (_digest: string, _redact: unknown, run: () => Promise<Invocation>) => run(),
  hostCalls: () => undefined,
  auditRecord: nothing,
  request: nothing,
  runStarted: nothing,
  runEnded: nothing,
  observePool: nothing,
  shutdown: async () => {},
})

/**
 * Start telemetry as configured: {@link NO_TELEMETRY} when off (nothing is loaded), else the
 * OpenTelemetry SDK (`@opentelemetry/sdk-node`) configured by the standard `OTEL_*` variables,
 * registered globally for this process. One per process: shut it down before starting another.
 *
 * @example
 * const telemetry = await startTelemetry(resolveHostConfig().otel)
 * const warden = await openWarden({ ...config, telemetry })
 * // …
 * await warden.close()
 * await telemetry.shutdown()
 */
export async function startTelemetry(config: TelemetryConfig): Promise<Telemetry> {
  if (!config.enabled) {
    return NO_TELEMETRY
  }
  const { startOpenTelemetry } = await import('./otel.js')
  return startOpenTelemetry()
}
