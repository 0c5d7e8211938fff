import { describe, expect, it } from 'vitest';
import { runModel, runs, timeoutFor } from './runner.js';

const RUNS = runs(1000);

describe('model-based: start, pivot, abort, speed, pause, guest writes, domain operations', () => {
  it(
    'the engine and the model agree after every command',
    async () => {
      const r = await runModel('lifecycle', RUNS, 'test/model/lifecycle.test.ts');
      console.log(`model lifecycle: ${r.sequences} sequences, ${r.commands} commands, ${Math.round(r.ms)} ms`);
      expect(r.sequences).toBeGreaterThan(0);
    },
    timeoutFor(RUNS),
  );
});
