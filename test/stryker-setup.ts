// Mutation runs only (vitest.stryker.config.ts): one fixed fast-check seed, fewer runs.
import fc from 'fast-check';

fc.configureGlobal({ seed: 20261128, numRuns: 100 });
