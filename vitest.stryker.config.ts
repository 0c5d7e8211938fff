// Test runner settings for mutation testing (stryker.config.json): the fast, hermetic,
// deterministic tests of the chart, the rules and the engine. Random tests run with a fixed
// seed so that a mutant's verdict does not depend on the run.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Each mutant runs the tests that cover it: keep these to the ones that finish in about a
    // second (the model, race and property runs are left to npm test).
    include: [
      'test/*.test.ts',
      'test/core/**/*.test.ts',
      'test/machine/block-copy-job.test.ts',
      'test/exhaustive/**/*.test.ts',
      'test/engine/**/*.test.ts',
      'test/regressions/**/*.test.ts',
      'test/api/**/*.test.ts',
    ],
    setupFiles: ['test/stryker-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
