/** A loopback upstream for egress tests, and the grant entry that reaches it. */
import type { Server } from 'node:net'
import type { AddressInfo } from 'node:net'

/** Listen on `127.0.0.1:0`; the port. */
export async function listenLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

type Method = 'DELETE' | 'GET' | 'HEAD' | 'OPTIONS' | 'PATCH' | 'POST' | 'PUT'

/** An http grant entry for a loopback upstream on `port` (private addresses allowed). */
export function loopbackHttp(port: number, methods: Method[], pathPrefix = '/') {
  return {
    scheme: 'http' as const,
    host: '127.0.0.1',
    port,
    methods,
    pathPrefix,
    allowPrivate: true,
  }
}
