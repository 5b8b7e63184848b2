/**
 * The `platform-caller` WAT guest (test/guests/platform-caller.wat): a core module built into
 * a component against a world that imports four platform capabilities, with jco's WIT
 * tools (componentEmbed + componentNew), in the test setup.
 */
import { readFile } from 'node:fs/promises'
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'

const PLATFORM_WIT = new URL('../../wit/platform.wit', import.meta.url)

/** The world: the platform package plus a world importing http, secrets, data and log. */
async function witSource(): Promise<string> {
  const platform = await readFile(PLATFORM_WIT, 'utf8')
  // The platform WIT is the root package; add a world to it for this guest.
  return `${platform}
world platform-caller {
  import http;
  import secrets;
  import data;
  import log;
  export run: func(input: string) -> result<string, string>;
}
`
}

let built: Promise<Uint8Array> | undefined

/** The platform-caller component (built once per process). */
export function platformCaller(): Promise<Uint8Array> {
  built ??= (async () => {
    const core = await parse(
      await readFile(new URL('../guests/platform-caller.wat', import.meta.url), 'utf8'),
    )
    const embedded = await componentEmbed({
      binary: core,
      witSource: await witSource(),
      world: 'platform-caller',
      stringEncoding: 'utf8',
    })
    return componentNew(embedded, [])
  })()
  return built
}
