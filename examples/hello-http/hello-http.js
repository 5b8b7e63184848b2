// hello-http in JavaScript: the same answers as hello-http.wat, built with componentize-js
// against a world that imports `log` and exports `warden:platform/handler` (see README.md).
const encoder = new TextEncoder()

export const handler = {
  /** GET answers "hello from Warden at <path>"; a request with a body gets its body back. */
  handle(request) {
    const body =
      request.body.length > 0 ? request.body : encoder.encode(`hello from Warden at ${request.path}`)
    return {
      status: 200,
      headers: [
        { name: 'content-type', value: 'text/plain; charset=utf-8' },
        { name: 'x-method', value: request.method },
      ],
      body,
    }
  },
}
