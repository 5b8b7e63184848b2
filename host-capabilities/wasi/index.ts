export { isWasiBaselineVersion, WASI_BASELINE, WASI_BASELINE_VERSIONS } from './descriptor.js'
export {
  createWasiImports,
  GuestExit,
  MAX_BLOCKING_WRITE,
  MAX_RANDOM_BYTES,
  MAX_RANDOM_BYTES_PER_RUN,
  WASI_CALL_FUEL,
  WRITE_PERMIT,
} from './worker.js'
