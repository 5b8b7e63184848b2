import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  resolve: {
    // The package's own `warden/testing` export, from sources (authors get dist/ through exports).
    alias: { 'warden/testing': fileURLToPath(new URL('sdk/testing/index.ts', import.meta.url)) },
  },
  test: {
    include: [
      'core/**/*.test.ts',
      'runtime/**/*.test.ts',
      'host-capabilities/**/*.test.ts',
      'control-plane/**/*.test.ts',
      'sdk/**/*.test.ts',
      'test/**/*.test.ts',
      'examples/**/*.test.ts',
      'examples/*/test/**/*.test.ts',
    ],
    // The sandbox process runs from dist/: rebuild it first when the sources are newer.
    globalSetup: ['test/global-setup.ts'],
    // Worker-heavy suites: one process per file (preview2-shim does the same).
    pool: 'forks',
    testTimeout: 60_000,
    // The componentize-js guest takes ~25 s to build on a cold cache.
    hookTimeout: 300_000,
  },
})
