import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { resolveHostConfig } from '../host-config.js'
import { openWarden } from '../warden.js'
import { NO_TELEMETRY, startTelemetry } from './telemetry.js'

describe('telemetry configuration', () => {
  it('is off by default and on when an OTLP endpoint is set', () => {
    expect(resolveHostConfig({}).otel.enabled).toBe(false)
    expect(resolveHostConfig({ OTEL_SERVICE_NAME: 'x' }).otel.enabled).toBe(false)
    expect(resolveHostConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }).otel.enabled).toBe(false)
    for (const name of [
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
      'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
      'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT',
    ]) {
      expect(resolveHostConfig({ [name]: 'http://127.0.0.1:4318' }).otel.enabled).toBe(true)
    }
  })

  it('stays off when the SDK is disabled', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }
    expect(resolveHostConfig({ ...env, OTEL_SDK_DISABLED: 'true' }).otel.enabled).toBe(false)
    expect(resolveHostConfig({ ...env, OTEL_SDK_DISABLED: ' TRUE ' }).otel.enabled).toBe(false)
    expect(resolveHostConfig({ ...env, OTEL_SDK_DISABLED: 'false' }).otel.enabled).toBe(true)
  })

  it('loads nothing when off: the no-op hooks', async () => {
    expect(await startTelemetry({ enabled: false })).toBe(NO_TELEMETRY)
    expect(NO_TELEMETRY.hostCalls('app', 'sha256:x')).toBeUndefined()
    const answer = { ok: true } as never
    expect(
      await NO_TELEMETRY.traceRun(
        'sha256:x',
        (t) => t,
        async () => answer,
      ),
    ).toBe(answer)
    let ran = false
    await NO_TELEMETRY.traceRequest(
      { method: 'GET', path: '/', header: () => undefined, redact: (t) => t },
      async () => {
        ran = true
        return { route: '/', status: 200, errorCode: undefined }
      },
    )
    expect(ran).toBe(true)
  })

  it('is off in a Warden opened without it', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'warden-telemetry-'))
    const warden = await openWarden({
      ...resolveHostConfig({ WARDEN_DATA_DIR: dataDir }),
      poolSize: 1,
    })
    try {
      expect(warden.telemetry).toBe(NO_TELEMETRY)
    } finally {
      await warden.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
