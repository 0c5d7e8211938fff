import { describe, expect, it } from 'vitest';
import { runModel, runs, timeoutFor } from './runner.js';

const RUNS = runs(1000);

describe('model-based: hypervisor', () => {
  it(
    'the engine and the model agree after every command',
    async () => {
      const r = await runModel('hypervisor', RUNS, 'test/model/hypervisor.test.ts');
      console.log(`model hypervisor: ${r.sequences} sequences, ${r.commands} commands, ${Math.round(r.ms)} ms`);
      expect(r.sequences).toBeGreaterThan(0);
    },
    timeoutFor(RUNS),
  );
});
