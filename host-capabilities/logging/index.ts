export { logDescriptor, LOG_INTERFACE, MAX_LINE_BYTES } from './descriptor.js'
export { createLogImports, keepLogLine, logBudgetSpent } from './worker.js'
