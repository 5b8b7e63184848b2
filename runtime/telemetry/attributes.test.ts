import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { AuditRecord } from '../audit/index.js'
import {
  auditAttributes,
  cut,
  errorAttributes,
  hostCallAttributes,
  hostCallErrorCode,
  httpMethod,
  MAX_ATTRIBUTE_CHARS,
  parseHttpTarget,
  urlPath,
} from './attributes.js'

const keep = (text: string) => text
const API_KEY = `wdn_0123456789abcdef_${'A'.repeat(43)}`
const JWT = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhcHA6eCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU'

describe('urlPath', () => {
  it('keeps an ordinary path and drops the query and fragment', () => {
    expect(urlPath('/v1/apps/app-0123/invoke', keep)).toBe('/v1/apps/app-0123/invoke')
    expect(urlPath('/v1/apps/shop/route?token=abc#x', keep)).toBe('/v1/apps/shop/route')
  })

  it("masks a data key and a micro-app's own path: run inputs, often a person's name", () => {
    expect(urlPath('/v1/data/crm/alice%40example.com', keep)).toBe('/v1/data/crm/[masked]')
    expect(urlPath('/v1/data/crm/contacts/alice', keep)).toBe('/v1/data/crm/[masked]')
    expect(urlPath('/v1/data/crm/schema', keep)).toBe('/v1/data/crm/schema')
    expect(urlPath('/apps/shop/cart/alice?x=1', keep)).toBe('/apps/shop/[masked]')
    expect(urlPath('/apps/shop/', keep)).toBe('/apps/shop/')
  })

  it('masks an API key, a token and a long opaque segment, also percent-encoded', () => {
    expect(urlPath(`/v1/keys/${API_KEY}`, keep)).toBe('/v1/keys/[masked]')
    expect(urlPath(`/v1/tokens/${JWT}/x`, keep)).toBe('/v1/tokens/[masked]/x')
    expect(urlPath(`/a/${encodeURIComponent(API_KEY).replace('_', '%5F')}`, keep)).toBe(
      '/a/[masked]',
    )
    expect(urlPath(`/a/${'Zm9v'.repeat(13)}`, keep)).toBe('/a/[masked]')
  })

  it('redacts stored secret values and cuts long paths', () => {
    const redact = (text: string) => text.replaceAll('hunter2', '[redacted:pw]')
    expect(urlPath('/v1/secrets/hunter2/y', redact)).toBe('/v1/secrets/[redacted:pw]/y')
    expect(urlPath(`/${'a/'.repeat(500)}`, keep)).toHaveLength(MAX_ATTRIBUTE_CHARS)
  })

  it('never lets a credential segment or a query through, whatever surrounds them', () => {
    const segment = fc.stringMatching(/^[^/?#]{0,20}$/)
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 6 }),
        fc.array(segment, { maxLength: 6 }),
        fc.constantFrom(API_KEY, JWT),
        fc.string(),
        (before, after, credential, query) => {
          const path = `/${[...before, credential, ...after].join('/')}?${query}`
          const out = urlPath(path, keep)
          expect(out).not.toContain(credential)
          expect(out).not.toContain('?')
          expect(out.length).toBeLessThanOrEqual(path.length - query.length)
        },
      ),
    )
  })
})

describe('http client attributes', () => {
  it('reads the canonical audit target, never its path', () => {
    expect(parseHttpTarget('GET https://api.github.com:443/repos/x → 140.82.112.6')).toEqual({
      method: 'GET',
      scheme: 'https',
      host: 'api.github.com',
      port: 443,
      address: '140.82.112.6',
    })
    expect(parseHttpTarget('POST http://[::1]:8080/')).toMatchObject({ host: '::1', port: 8080 })
    expect(parseHttpTarget('crm/contacts/alice')).toBeUndefined()
    expect(parseHttpTarget(undefined)).toBeUndefined()
  })

  it('gives a fetch the HTTP client conventions and nothing of its URL but the host', () => {
    const attributes = hostCallAttributes(
      {
        call: 3,
        capability: 'warden:platform/http',
        fn: 'fetch',
        decision: 'allow',
        target: 'GET https://api.example.com:443/users/secret-path → 93.184.216.34',
        bytesOut: 120,
        durationMs: 4,
      },
      { status: 404, headers: [], body: new Uint8Array() },
      keep,
    )
    expect(attributes).toEqual({
      'warden.capability': 'warden:platform/http',
      'warden.op': 'fetch',
      'warden.decision': 'allow',
      'warden.host_call': 3,
      'warden.bytes_out': 120,
      'http.request.method': 'GET',
      'http.response.status_code': 404,
      'server.address': 'api.example.com',
      'server.port': 443,
      'url.scheme': 'https',
      'warden.target_host': 'api.example.com',
      'network.peer.address': '93.184.216.34',
    })
    expect(JSON.stringify(attributes)).not.toContain('secret-path')
  })

  it('names an unknown method _OTHER', () => {
    expect(httpMethod('get')).toBe('GET')
    expect(httpMethod('BREW')).toBe('_OTHER')
  })

  it('never carries a target other than an http host', () => {
    const attributes = hostCallAttributes(
      {
        call: 1,
        capability: 'warden:platform/data',
        fn: 'get',
        decision: 'allow',
        target: 'crm/contacts/alice',
      },
      undefined,
      keep,
    )
    expect(JSON.stringify(attributes)).not.toContain('alice')
  })
})

describe('error attributes', () => {
  it.each([
    [{ decision: 'deny', reason: 'not granted' }, 'capability_denied'],
    [{ decision: 'deny', reason: 'denied: host evil.example not allowed' }, 'capability_denied'],
    [{ decision: 'deny', reason: 'limit-exceeded: egress budget spent' }, 'limit_exceeded'],
    [{ decision: 'deny', reason: 'log budget spent' }, 'limit_exceeded'],
    [{ decision: 'deny', reason: 'invalid: fetch takes 1 argument' }, 'invalid_request'],
    [{ decision: 'deny', reason: 'unknown function' }, 'invalid_request'],
    [{ decision: 'allow', reason: 'upstream: connection refused' }, 'upstream_error'],
    [{ decision: 'deny', reason: 'internal' }, 'internal'],
    [{ decision: 'deny' }, 'capability_denied'],
    [{ decision: 'allow' }, undefined],
  ] as const)('%o is %s', (decision, code) => {
    expect(hostCallErrorCode({ call: 1, capability: 'c', fn: 'f', ...decision })).toBe(code)
  })

  it('says who is to blame, and treats an unknown code as internal', () => {
    expect(errorAttributes('fuel_exhausted')).toEqual({
      'error.type': 'fuel_exhausted',
      'warden.error.code': 'fuel_exhausted',
      'warden.error.blame': 'guest',
    })
    expect(errorAttributes('upstream_error')['warden.error.blame']).toBe('host')
    expect(errorAttributes('no such code')['warden.error.code']).toBe('internal')
  })

  it('redacts and cuts a reason', () => {
    const attributes = hostCallAttributes(
      {
        call: 1,
        capability: 'c',
        fn: 'f',
        decision: 'deny',
        reason: `denied: hunter2 ${'x'.repeat(400)}`,
      },
      undefined,
      (text) => text.replaceAll('hunter2', '[redacted:pw]'),
    )
    expect(attributes['warden.reason']).toMatch(/^denied: \[redacted:pw\] x+…$/)
    expect(String(attributes['warden.reason'])).toHaveLength(MAX_ATTRIBUTE_CHARS)
    expect(cut('short')).toBe('short')
  })
})

describe('auditAttributes', () => {
  const base: AuditRecord = {
    seq: 7,
    ts: '2026-01-01T00:00:00.000Z',
    invocationId: 'inv',
    appId: 'app-1',
    digest: null,
    tokenJti: 'jti-1',
    actor: 'app:app-1',
    kind: 'run',
    capability: null,
    op: 'run',
    target: null,
    decision: 'allow',
    reason: 'ok',
    durationMs: 1.5,
    bytesOut: 0,
    bytesIn: null,
    meter: {
      fuelUsed: 10,
      fuelLimit: 100,
      memoryPeakBytes: null,
      memoryLimitBytes: 1,
      hostCalls: 0,
      egressBytes: 0,
    },
    prevHash: 'a'.repeat(64),
    hash: 'b'.repeat(64),
  }

  it('exports an http target without its path and a data target without its key', () => {
    const http = auditAttributes({
      ...base,
      kind: 'host-call',
      capability: 'warden:platform/http',
      op: 'fetch',
      target: 'GET https://api.example.com:443/users/alice?q=1 → 93.184.216.34',
    })
    expect(http['warden.audit.target']).toBe('GET https://api.example.com:443')
    const read = auditAttributes({
      ...base,
      kind: 'host-call',
      capability: 'warden:platform/data',
      op: 'get',
      target: 'crm/contacts/alice@example.com',
    })
    expect(read['warden.audit.target']).toBe('crm/[masked]')
    const write = auditAttributes({ ...base, kind: 'admin', op: 'data.put', target: 'crm/bob' })
    expect(write['warden.audit.target']).toBe('crm/[masked]')
    const other = auditAttributes({ ...base, kind: 'admin', op: 'app.approve', target: 'app-1' })
    expect(other['warden.audit.target']).toBe('app-1')
  })

  it("carries the record's own fields, leaving out nulls", () => {
    const attributes = auditAttributes(base)
    expect(attributes).toMatchObject({
      'warden.audit.seq': 7,
      'warden.audit.kind': 'run',
      'warden.audit.reason': 'ok',
      'warden.audit.meter.fuelUsed': 10,
      'warden.audit.hash': 'b'.repeat(64),
    })
    expect('warden.audit.digest' in attributes).toBe(false)
    expect('warden.audit.meter.memoryPeakBytes' in attributes).toBe(false)
  })

  it('carries how many calls a host-call record counts, and nothing when it is one', () => {
    const counted = auditAttributes({
      ...base,
      kind: 'host-call',
      capability: 'warden:platform/log',
      op: 'write',
      target: 'info',
      bytesOut: 999,
      meter: null,
      calls: 999,
    })
    expect(counted).toMatchObject({ 'warden.audit.calls': 999, 'warden.audit.bytesOut': 999 })
    expect('warden.audit.calls' in auditAttributes(base)).toBe(false)
  })

  it("names a checkpoint's seq and key, never its signature", () => {
    const sig = 's'.repeat(86)
    const attributes = auditAttributes({
      ...base,
      kind: 'checkpoint',
      meter: null,
      checkpoint: { seq: 6, hash: 'a'.repeat(64), every: 1000, keyId: 'kid', sig },
    })
    expect(attributes).toMatchObject({
      'warden.audit.checkpoint.seq': 6,
      'warden.audit.checkpoint.key_id': 'kid',
    })
    expect(JSON.stringify(attributes)).not.toContain(sig)
  })
})
