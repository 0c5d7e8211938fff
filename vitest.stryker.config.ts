// Test runner settings for mutation testing (scripts/mutation.ts, stryker.config.json): per area,
// only the fast, hermetic, deterministic tests of that area (no real QEMU or libvirt, no model or
// race runs: those are left to npm test). BLOCKCOPY_MUTATION_AREA (chart, rules, engine) picks the
// area; without it, every area's tests. Random tests run with a fixed seed (test/stryker-setup.ts)
// so that a mutant's verdict does not depend on the run.
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const AREA_TESTS: Record<string, readonly string[]> = {
  // The charts one step at a time (XState's pure transition, or an actor with hand-answered IO)
  // and the exhaustive check: every state × event in milliseconds. The random property runs
  // (test/machine/*properties.test.ts, 5–15 s each, instrumented several times longer) stay in
  // npm test: here every surviving or static mutant would rerun them (README, Verification).
  chart: [
    'test/machine/*-steps.test.ts',
    'test/machine/block-copy-job.test.ts',
    'test/machine/chart-version.test.ts',
    'test/machine/convergence-policy.test.ts',
    'test/machine/migrate-storage-chart.test.ts',
    'test/exhaustive/**/*.test.ts',
  ],
  rules: [
    'test/validate.test.ts',
    'test/plan.test.ts',
    'test/core/**/*.test.ts',
    'test/errors.test.ts',
    'test/disk-identity.test.ts',
    'test/job-info.test.ts',
  ],
  // The engine on the simulator in virtual time.
  engine: [
    'test/engine/**/*.test.ts',
    'test/regressions/**/*.test.ts',
    'test/api/options.test.ts',
    'test/job-info.test.ts',
  ],
};

/**
 * StrykerJS runs the files one after another and stops at the first failure: the quick unit
 * tests first, so that most mutants are killed in about a second; the exhaustive and property
 * runs (tens of seconds each, instrumented) only for the mutants the unit tests miss.
 */
const SLOW_LAST = [
  'test/exhaustive/',
  'test/machine/properties.test.ts',
  'test/machine/pull-properties.test.ts',
  'test/plan.test.ts',
  'test/job-info.test.ts',
];
class QuickFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = SLOW_LAST.findIndex((p) => f.moduleId.replaceAll('\\', '/').includes(p));
      return i < 0 ? -1 : i;
    };
    return [...files].sort((a, b) => rank(a) - rank(b) || a.moduleId.localeCompare(b.moduleId));
  }
}

const area = process.env['BLOCKCOPY_MUTATION_AREA'];
const include =
  area !== undefined && area in AREA_TESTS ? AREA_TESTS[area]! : [...new Set(Object.values(AREA_TESTS).flat())];

export default defineConfig({
  test: {
    include: [...include],
    setupFiles: ['test/stryker-setup.ts'],
    sequence: { sequencer: QuickFirst },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
