export { logDescriptor, LOG_INTERFACE, MAX_LINE_BYTES } from './descriptor.js'
export { createLogImports, keepLogLine } from './worker.js'
