/** `npm run build:agent`: {@link prepareAgentComponent} for this host's ceilings. */
import { resolveHostConfig } from '../host-config.js'
import { prepareAgentComponent } from './prepare.js'

const started = performance.now()
const { digest, cached } = await prepareAgentComponent({
  ceilings: resolveHostConfig().ceilings,
  log: (message) => process.stderr.write(`${message}\n`),
})
const seconds = ((performance.now() - started) / 1000).toFixed(1)
process.stderr.write(
  `built-in JS agent ${digest}: ${cached ? 'already prepared' : 'prepared'} in ${seconds} s\n`,
)
