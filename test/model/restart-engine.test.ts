/**
 * Engine restarts in the model-based runs: RestartEngine is in every mix (commands/restart-engine.ts);
 * this run checks that restarts do land while jobs run, so that the oracle is really asked to
 * predict through them, and that every outcome stays as predicted (the runner checks that).
 */
import { describe, expect, it } from 'vitest';
import { runModel, runs, timeoutFor } from './runner.js';

const RUNS = runs(100);

describe('model-based: engine restarts from the job store', () => {
  it(
    'restarts at random points, jobs running, change no outcome',
    async () => {
      const r = await runModel('restarts', RUNS, 'test/model/restart-engine.test.ts', 20, 'large');
      console.log(
        `model restarts: ${r.sequences} sequences, ${r.commands} commands, ${r.restarts} engine restarts (${r.restartsWithJobs} with jobs running), ${Math.round(r.ms)} ms`,
      );
      expect(r.restartsWithJobs).toBeGreaterThan(0);
    },
    timeoutFor(RUNS),
  );
});
