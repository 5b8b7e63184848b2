/**
 * The server span of every request (OpenTelemetry HTTP server conventions), when the Warden's
 * telemetry is on: `createControlPlane` installs this middleware only then. The span records the
 * method, the path (credential-shaped segments masked, secrets redacted, never the query), the
 * route pattern, the status and an error answer's code and blame; never a header value or a body.
 */
import type { MiddlewareHandler } from 'hono'
import type { Telemetry } from '../runtime/index.js'
import type { ControlPlaneEnv } from './auth.js'

/**
 * The route pattern that answered, or undefined when none matched (the catch-all).
 *
 * @example
 * matchedRoute('/v1/apps/:id') // '/v1/apps/:id'
 */
export function matchedRoute(routePath: string): string | undefined {
  return routePath === '/*' || routePath === '*' ? undefined : routePath
}

/** A middleware that runs each request inside its server span. */
export function traceRequests(
  telemetry: Telemetry,
  redact: (text: string) => string,
): MiddlewareHandler<ControlPlaneEnv> {
  return (c, next) =>
    telemetry.traceRequest(
      { method: c.req.method, path: c.req.path, header: (name) => c.req.header(name), redact },
      async () => {
        await next()
        return {
          route: matchedRoute(c.req.routePath),
          status: c.res.status,
          errorCode: c.get('errorCode'),
        }
      },
    )
}
