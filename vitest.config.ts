import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real-QEMU tests start daemons: keep within 2 cores.
    maxWorkers: 2,
  },
});
