// Test runner settings: every test under test/, generous timeouts for real QEMU, at most 2 workers.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // `import … from 'blockcopy'` runs the sources (tsconfig.json paths), not the build in dist/.
  resolve: { tsconfigPaths: true },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real-QEMU tests start daemons: keep within 2 cores.
    maxWorkers: 2,
  },
});
