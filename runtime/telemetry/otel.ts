/**
 * Telemetry on: the OpenTelemetry SDK for Node (`@opentelemetry/sdk-node`), configured by the
 * standard `OTEL_*` variables as its documentation says (OTLP over HTTP, protobuf by default or
 * JSON with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`; batching, sampling, resource, headers),
 * with `service.name` defaulting to `warden`. Loaded by `telemetry.ts` only when an OTLP endpoint
 * is set, so a host without one never loads it.
 *
 * Spans: `{method} {route}` (server) per request; `warden.run` per run, child of the request's;
 * one per host call, child of the run's, made with the run's context explicitly because the
 * broker answers host calls on the main thread outside the run's async context. An incoming
 * `traceparent` is a link, never a parent: clients are untrusted, so they neither choose our
 * trace ids nor turn sampling off for their own requests. Nothing is injected into egress
 * requests: guests' upstreams learn no trace ids.
 */
import {
  context,
  createContextKey,
  isSpanContextValid,
  metrics,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api'
import type { Attributes, Context, Link, Span, TextMapGetter } from '@opentelemetry/api'
import { logs, SeverityNumber } from '@opentelemetry/api-logs'
import {
  defaultResource,
  envDetector,
  hostDetector,
  osDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources'
import { NodeSDK } from '@opentelemetry/sdk-node'
import type { AuditRecord } from '../audit/index.js'
import type { HostCallTrace } from '../broker/broker.js'
import { toWardenError } from '../errors.js'
import type { Invocation } from '../runtime.js'
import type { Decision, LogLine } from '../sandbox/protocol.js'
import {
  auditAttributes,
  capabilityName,
  errorAttributes,
  hostCallAttributes,
  httpMethod,
  runAttributes,
  urlPath,
} from './attributes.js'
import { METRIC_BUCKETS } from './telemetry.js'
import type { HttpRequestInfo, HttpResponseInfo, PoolFigures, Telemetry } from './telemetry.js'

/** Host-call spans per run at most; the rest are counted on the run span (`warden.host_calls_untraced`). */
export const MAX_HOST_CALL_SPANS = 1000

const SCOPE = 'warden'
const RUN_KEY = createContextKey('warden.run')

const SEVERITY: Readonly<Record<LogLine['level'], SeverityNumber>> = {
  debug: SeverityNumber.DEBUG,
  info: SeverityNumber.INFO,
  warn: SeverityNumber.WARN,
  error: SeverityNumber.ERROR,
}

// Reads only what the W3C propagator asks for (`traceparent`, `tracestate`).
const headerGetter: TextMapGetter<HttpRequestInfo> = {
  get: (carrier, key) => carrier.header(key),
  keys: () => [],
}

/** One traced run: its span, and which host calls the broker has reported. */
class RunTrace implements HostCallTrace {
  /** Calls the broker reported (settled or not): the rest were answered in the worker. */
  readonly fromBroker = new Set<number>()
  #spans = 0
  untraced = 0
  /** The app and build, once the run has them (its token verified). */
  app: Attributes = {}

  readonly context: Context
  readonly redact: (text: string) => string

  constructor(runContext: Context, redact: (text: string) => string) {
    this.context = runContext
    this.redact = redact
  }

  hostCall(entry: Decision, startedAt: number, answer: unknown, settled: boolean): void {
    this.fromBroker.add(entry.call)
    if (settled) {
      quietly(() => this.emit(entry, answer, 'broker', startedAt))
    }
  }

  /** One host-call span; a worker-side call has no timing of its own (a point at the run's end). */
  emit(entry: Decision, answer: unknown, side: 'broker' | 'worker', startedAt?: number): void {
    if (this.#spans >= MAX_HOST_CALL_SPANS) {
      this.untraced++
      return
    }
    this.#spans++
    const attributes = { ...this.app, ...hostCallAttributes(entry, answer, this.redact) }
    attributes['warden.host_call.side'] = side
    const method = attributes['http.request.method']
    const client = method !== undefined && entry.decision === 'allow'
    // HTTP client spans are named by their method (`HTTP` when unknown), as the conventions say.
    const name = client
      ? method === '_OTHER'
        ? 'HTTP'
        : String(method)
      : `${capabilityName(entry.capability)}.${entry.fn}`
    const span = trace
      .getTracer(SCOPE)
      .startSpan(
        name,
        { kind: client ? SpanKind.CLIENT : SpanKind.INTERNAL, attributes, startTime: startedAt },
        this.context,
      )
    if (attributes['warden.error.code'] !== undefined) {
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: String(attributes['warden.error.code']),
      })
    }
    span.end()
  }
}

/** Run `fn`, ignoring what it throws: telemetry never fails a request, a run or a host call. */
function quietly(fn: () => void): void {
  try {
    fn()
  } catch {
    // Nothing to report it to: the SDK's own diagnostics cover its failures.
  }
}

/** Record `code` (and its blame) on `span` as its error. */
function fail(span: Span, code: string): void {
  const attributes = errorAttributes(code)
  span.setAttributes(attributes)
  span.setStatus({ code: SpanStatusCode.ERROR, message: String(attributes['warden.error.code']) })
}

/**
 * Start the SDK and return the hooks. Call once per process; {@link Telemetry.shutdown} flushes
 * everything and unregisters the SDK's globals, so another may start after it.
 */
export function startOpenTelemetry(): Telemetry {
  const sdk = new NodeSDK({
    // Detected resources (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, host, os) win.
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': 'warden' })),
    // The SDK's default also runs the process detector, which exports the command line
    // (`process.command_args`): a wrapper that passes a credential as an argument would ship it.
    // An operator who wants it names it in OTEL_NODE_RESOURCE_DETECTORS.
    ...(process.env.OTEL_NODE_RESOURCE_DETECTORS
      ? {}
      : { resourceDetectors: [envDetector, hostDetector, osDetector] }),
  })
  sdk.start()
  const tracer = trace.getTracer(SCOPE)
  const meter = metrics.getMeter(SCOPE)
  const logger = logs.getLogger(SCOPE)

  const httpDuration = meter.createHistogram('http.server.request.duration', {
    description: 'HTTP request duration by route pattern, method and status',
    unit: 's',
    advice: { explicitBucketBoundaries: [...METRIC_BUCKETS.httpSeconds] },
  })
  const runs = meter.createCounter('warden.runs', {
    description: 'Runs by outcome (ok, err, an error code, or refused) and code',
    unit: '{run}',
  })
  const fuel = meter.createHistogram('warden.run.fuel', {
    description: 'Fuel a run used',
    unit: '{fuel}',
    advice: { explicitBucketBoundaries: [...METRIC_BUCKETS.fuel] },
  })
  const wall = meter.createHistogram('warden.run.duration', {
    description: 'Time a run spent in the sandbox',
    unit: 's',
    advice: { explicitBucketBoundaries: [...METRIC_BUCKETS.runSeconds] },
  })
  const memory = meter.createHistogram('warden.run.memory.peak', {
    description: "Peak of a run's linear memory",
    unit: 'By',
    advice: { explicitBucketBoundaries: [...METRIC_BUCKETS.memoryBytes] },
  })
  const hostCalls = meter.createCounter('warden.host_calls', {
    description: 'Host calls by capability and decision',
    unit: '{call}',
  })
  const inFlight = meter.createUpDownCounter('warden.runs.in_flight', {
    description: 'Runs started through the API and not answered yet',
    unit: '{run}',
  })
  const poolSize = meter.createObservableGauge('warden.pool.size', {
    description: 'Sandbox workers in the pool',
    unit: '{worker}',
  })
  const replacements = meter.createObservableCounter('warden.pool.replacements', {
    description: 'Sandbox workers started to replace killed or crashed ones since start',
    unit: '{worker}',
  })

  const guestLog = (line: LogLine, attributes: Attributes, runContext: Context) => {
    logger.emit({
      eventName: 'warden.guest.log',
      severityNumber: SEVERITY[line.level] ?? SeverityNumber.INFO,
      severityText: line.level.toUpperCase(),
      body: line.message,
      attributes,
      context: runContext,
    })
  }

  return {
    enabled: true,
    async traceRequest(request, handle) {
      const method = httpMethod(request.method)
      const incoming = trace.getSpanContext(
        propagation.extract(ROOT_CONTEXT, request, headerGetter),
      )
      // The ids only: a client's `tracestate` is its own free text, never exported.
      const links: Link[] =
        incoming !== undefined && isSpanContextValid(incoming)
          ? [
              {
                context: {
                  traceId: incoming.traceId,
                  spanId: incoming.spanId,
                  traceFlags: incoming.traceFlags,
                  isRemote: true,
                },
              },
            ]
          : []
      const span = tracer.startSpan(method === '_OTHER' ? 'HTTP' : method, {
        kind: SpanKind.SERVER,
        root: true,
        links,
        attributes: {
          'http.request.method': method,
          'url.path': urlPath(request.path, request.redact),
          'url.scheme': 'http',
        },
      })
      let response: HttpResponseInfo
      try {
        response = await context.with(trace.setSpan(ROOT_CONTEXT, span), handle)
      } catch (error) {
        quietly(() => fail(span, toWardenError(error).code))
        span.end()
        throw error
      }
      quietly(() => {
        span.setAttribute('http.response.status_code', response.status)
        if (response.route !== undefined) {
          span.setAttribute('http.route', response.route)
          span.updateName(`${method === '_OTHER' ? 'HTTP' : method} ${response.route}`)
        }
        if (response.errorCode !== undefined) {
          span.setAttributes(errorAttributes(response.errorCode))
        }
        // A 4xx is the client's: the conventions leave a server span's status unset for it.
        if (response.status >= 500) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: String(response.status) })
        }
      })
      span.end()
    },
    async traceRun(digest, redact, run) {
      const parent = context.active()
      const span = tracer.startSpan(
        'warden.run',
        { kind: SpanKind.INTERNAL, attributes: { 'warden.app.digest': digest } },
        parent,
      )
      const runContext = trace.setSpan(parent, span)
      const runTrace = new RunTrace(runContext, redact)
      let invocation: Invocation
      try {
        invocation = await context.with(runContext.setValue(RUN_KEY, runTrace), run)
      } catch (error) {
        quietly(() => fail(span, toWardenError(error).code))
        span.end()
        throw error
      }
      quietly(() => {
        const attributes = runAttributes(invocation)
        span.setAttributes(attributes)
        for (const decision of invocation.decisions) {
          if (!runTrace.fromBroker.has(decision.call)) {
            runTrace.emit(decision, undefined, 'worker')
          }
        }
        if (runTrace.untraced > 0) {
          span.setAttribute('warden.host_calls_untraced', runTrace.untraced)
        }
        if (attributes['warden.error.code'] !== undefined) {
          span.setStatus({
            code: SpanStatusCode.ERROR,
            message: String(attributes['warden.error.code']),
          })
        }
        // The lines as the run answered them: already redacted.
        const lineAttributes: Attributes = {
          'warden.app.id': invocation.report.appId,
          'warden.invocation.id': invocation.report.invocationId,
        }
        for (const line of invocation.logs) {
          guestLog(line, lineAttributes, runContext)
        }
      })
      span.end()
      return invocation
    },
    hostCalls(appId, digest) {
      const runTrace = context.active().getValue(RUN_KEY) as RunTrace | undefined
      if (runTrace) {
        runTrace.app = { 'warden.app.id': appId, 'warden.app.digest': digest }
      }
      return runTrace
    },
    auditRecord(record: AuditRecord) {
      // The audit log ignores a sink's failures; so does this.
      logger.emit({
        eventName: 'warden.audit',
        timestamp: new Date(record.ts),
        severityNumber: record.decision === 'deny' ? SeverityNumber.WARN : SeverityNumber.INFO,
        severityText: record.decision === 'deny' ? 'WARN' : 'INFO',
        body: `${record.kind} ${record.op} ${record.decision}`,
        attributes: auditAttributes(record),
        // Audit records belong to no span of their own: never the context of whichever batch
        // happened to write them.
        context: ROOT_CONTEXT,
      })
    },
    request(route, method, status, seconds) {
      httpDuration.record(seconds, {
        'http.request.method': httpMethod(method),
        'http.route': route,
        'http.response.status_code': status,
      })
    },
    runStarted() {
      inFlight.add(1)
    },
    runEnded(invocation: Invocation | undefined, refusedCode?: string) {
      inFlight.add(-1)
      if (!invocation) {
        runs.add(1, { 'warden.outcome': 'refused', 'warden.error.code': refusedCode ?? 'internal' })
        return
      }
      const { report } = invocation
      runs.add(1, {
        'warden.outcome': report.outcome,
        'warden.error.code': invocation.error?.code ?? '',
      })
      if (report.fuelUsed !== null) {
        fuel.record(report.fuelUsed)
      }
      wall.record(report.wallMs / 1000)
      if (report.memoryPeakBytes !== null) {
        memory.record(report.memoryPeakBytes)
      }
      for (const d of invocation.decisions) {
        hostCalls.add(1, { 'warden.capability': d.capability, 'warden.decision': d.decision })
      }
    },
    observePool(pool: PoolFigures) {
      poolSize.addCallback((result) => result.observe(pool.size()))
      replacements.addCallback((result) => result.observe(pool.replacements()))
    },
    async shutdown() {
      try {
        await sdk.shutdown()
      } finally {
        // So that a later start in this process registers its own (tests do).
        trace.disable()
        metrics.disable()
        logs.disable()
        propagation.disable()
        context.disable()
      }
    },
  }
}
