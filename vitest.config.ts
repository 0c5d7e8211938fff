// Test runner settings: every test under test/, generous timeouts for real QEMU, at most 2 workers.
// The one file that kills libvirtd (test/libvirt/restart.test.ts) runs after all the others, so
// that no other file using libvirtd ever sees the daemon go away under it.
import { configDefaults, defineConfig } from 'vitest/config';

const LIBVIRTD_RESTART = 'test/libvirt/restart.test.ts';

export default defineConfig({
  // `import … from 'blockcopy'` runs the sources (tsconfig.json paths), not the build in dist/.
  resolve: { tsconfigPaths: true },
  test: {
    // A private default job store for the whole run (BLOCKCOPY_STORE), removed at the end.
    globalSetup: ['test/setup/private-store.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real-QEMU tests start daemons: keep within 2 cores.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, LIBVIRTD_RESTART],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'libvirtd-restart', include: [LIBVIRTD_RESTART], sequence: { groupOrder: 1 } },
      },
    ],
  },
});
