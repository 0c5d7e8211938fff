// Mutation runs only (vitest.stryker.config.ts): one fixed fast-check seed, fewer runs; and the
// hand-over of StrykerJS's per-test coverage and hit count, which its own setup file does in
// `afterAll((suite) => …)`: Vitest 4.1 passes the suite as a hook's second argument (the first is
// the fixture context) and refuses that hook, so StrykerJS 9.4 saw no coverage at all and ran
// every test against every mutant (stryker-js#5928). Done here the Vitest 4.1 way.
import fc from 'fast-check';
import { afterAll, inject } from 'vitest';

fc.configureGlobal({ seed: 20261128, numRuns: 100 });

interface StrykerGlobal {
  mutantCoverage?: unknown;
  hitCount?: number;
}
const namespace = inject('globalNamespace' as never) as string | undefined;
const mode = inject('mode' as never) as 'dry-run' | 'mutant' | undefined;
if (namespace !== undefined && mode !== undefined) {
  // eslint-disable-next-line no-empty-pattern
  afterAll(({}, suite) => {
    const ns = (globalThis as Record<string, StrykerGlobal | undefined>)[namespace];
    const meta = suite.meta as Record<string, unknown>;
    if (mode === 'mutant') meta['hitCount'] = ns?.hitCount;
    else meta['mutantCoverage'] = ns?.mutantCoverage;
  });
}
