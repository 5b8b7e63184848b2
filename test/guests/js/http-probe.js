// A hostile and helpful HTTP micro-app for the route tests: the path picks the behaviour.
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const text = (status, body, headers = []) => ({
  status,
  headers: [{ name: 'content-type', value: 'text/plain' }, ...headers],
  body: encoder.encode(body),
})

export const handler = {
  handle(request) {
    const [, mode, arg] = request.path.split('/')
    switch (mode) {
      case 'echo':
        return {
          status: 200,
          headers: [{ name: 'content-type', value: 'application/json' }],
          body: encoder.encode(
            JSON.stringify({
              method: request.method,
              path: request.path,
              query: request.query,
              headers: request.headers,
              body: decoder.decode(request.body),
              bodyBytes: request.body.length,
            }),
          ),
        }
      case 'status':
        return text(Number(arg), '')
      case 'crlf':
        return text(200, 'split', [{ name: 'x-split', value: 'a\r\nx-injected: 1' }])
      case 'nul':
        return text(200, 'nul', [{ name: 'x-nul', value: 'a\u0000b' }])
      case 'unicode':
        return text(200, 'unicode', [{ name: 'x-uni', value: 'caf\u00e9' }])
      case 'bad-name':
        return text(200, 'name', [{ name: 'x bad', value: '1' }])
      case 'many':
        return text(
          200,
          'many',
          Array.from({ length: Number(arg) }, (_, i) => ({ name: `x-h${i}`, value: 'v' })),
        )
      case 'framing':
        return text(200, 'framed by the host', [
          { name: 'Content-Length', value: '1' },
          { name: 'transfer-encoding', value: 'chunked' },
          { name: 'connection', value: 'close' },
          { name: 'keep-alive', value: 'timeout=1' },
          { name: 'set-cookie', value: 'session=stolen; Path=/' },
          { name: 'strict-transport-security', value: 'max-age=31536000; includeSubDomains' },
          { name: 'clear-site-data', value: '"*"' },
          { name: 'service-worker-allowed', value: '/' },
          { name: 'x-warden-invocation', value: 'forged' },
          { name: 'x-content-type-options', value: 'sniff' },
          { name: 'content-security-policy', value: "default-src 'self'" },
          { name: 'cache-control', value: 'max-age=60' },
          { name: 'x-app', value: 'one' },
          { name: 'X-App', value: 'two' },
        ])
      case 'big':
        return { status: 200, headers: [], body: new Uint8Array(Number(arg)).fill(97) }
      case 'no-content':
        return { status: 204, headers: [], body: encoder.encode('x') }
      case 'loop':
        for (;;) {}
      default:
        return text(404, `no ${mode}`)
    }
  },
}
