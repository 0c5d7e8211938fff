// @ts-check
/**
 * StrykerJS settings for `npm run test:mutation` (scripts/mutation.ts), one area at a time:
 * BLOCKCOPY_MUTATION_AREA (chart, rules, engine) names the area, whose tests
 * vitest.stryker.config.ts picks and whose reports go to reports/mutation/<area>.{html,json}.
 * No type checker by default: on a loaded 2-core machine it cost ~30 s per mutant against ~1.5 s
 * for the tests (README, Verification); BLOCKCOPY_MUTATION_TYPECHECK=1 turns it on.
 */
/** @type {string} */
const area = process.env['BLOCKCOPY_MUTATION_AREA'] ?? 'all';
const typecheck = process.env['BLOCKCOPY_MUTATION_TYPECHECK'] === '1';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
const config = {
  packageManager: 'npm',
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.stryker.config.ts' },
  checkers: typecheck ? ['typescript'] : [],
  tsconfigFile: 'tsconfig.stryker.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: 'perTest',
  mutate: [],
  incremental: true,
  incrementalFile: `reports/stryker-incremental-${area}.json`,
  concurrency: 2,
  timeoutMS: 8000,
  reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
  jsonReporter: { fileName: `reports/mutation/${area}.json` },
  htmlReporter: { fileName: `reports/mutation/${area}.html` },
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: '.stryker-tmp',
  // The chart is a module-level XState definition: its transitions are static mutants, which
  // must be tested (each reruns the area's tests), not ignored.
  ignoreStatic: false,
};

export default config;
