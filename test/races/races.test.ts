/** Races with fc.scheduler (issue 4 §4). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockCopyJob } from '../../src/engine/engine.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { DEST, racingEngine } from './harness.js';

const RUNS = 60;

async function startReady(r: ReturnType<typeof racingEngine>): Promise<BlockCopyJob> {
  const started = r.engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
  expect(await r.until(started)).toBe(true);
  const job = (await started)._unsafeUnwrap();
  expect(await r.runUntil(() => job.state().startsWith('ready'))).toBe(true);
  return job;
}

function commonChecks(r: ReturnType<typeof racingEngine>, job: BlockCopyJob) {
  // No pivot before ready; READY at most once; exactly one final event; COMPLETED only confirmed.
  for (const c of r.completes) expect(c.afterReady).toBe(true);
  const statuses = r.events.map((e) => e.status);
  expect(statuses.filter((s) => s === 'READY').length).toBeLessThanOrEqual(1);
  expect(statuses.filter((s) => s !== 'READY').length).toBe(1);
  // Ready is sticky: once ready, the chart never goes back to mirroring.
  const states = job.states();
  const firstReady = states.findIndex((s) => s.startsWith('ready'));
  if (firstReady >= 0) expect(states.slice(firstReady).some((s) => s.startsWith('mirroring'))).toBe(false);
  expect(r.sim.sttViolations).toEqual([]);
}

describe('races', () => {
  it('pivot against an I/O error: COMPLETED only with a confirmed pivot, else FAILED; the sync pivot says which', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.constantFrom('report', 'stop') as fc.Arbitrary<'report'>,
        async (s, policy) => {
          const r = racingEngine(s, ['completeJob', 'queryJob', 'cancelJob']);
          const started = r.engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY, { onTargetError: policy });
          await r.until(started);
          const job = (await started)._unsafeUnwrap();
          expect(await r.runUntil(() => job.state().startsWith('ready'))).toBe(true);
          let pivot: Promise<{ isOk(): boolean }> | null = null;
          void s.schedule(Promise.resolve(), 'pivot').then(() => {
            pivot = Promise.resolve(r.engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT));
          });
          void s.schedule(Promise.resolve(), 'io-error').then(() => {
            r.sim.injectTargetError({ errno: 'EIO', once: false });
            r.sim.guestWrite('demo', 'vda', 4 * 1024 * 1024);
          });
          let done = false;
          void job.result.then(() => (done = true));
          // Under 'stop' the job waits for a resume (the fault stays): clear it and resume.
          await r.runUntil(() => done || job.state() === 'ready.standby');
          if (!done) {
            r.sim.clearFaults();
            await r.engine.blockJobResume('demo', 'vda');
            if (pivot === null) await r.runUntil(() => pivot !== null);
            await r.runUntil(() => done || job.state() === 'ready.synced');
            if (!done) void r.engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
          }
          expect(await r.runUntil(() => done)).toBe(true);
          const result = await job.result;
          expect(['completed', 'failed']).toContain(result.outcome);
          expect(result.pivoted).toBe(result.outcome === 'completed');
          if (result.outcome === 'completed')
            expect((await r.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
          await r.runUntil(() => pivot !== null);
          const answer = await pivot!;
          if (result.outcome === 'completed') expect(answer.isOk()).toBe(true);
          commonChecks(r, job);
          r.engine.close();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('abort against ready: always CANCELED; a consistent copy only after READY, and then it is kept', async () => {
    const seen = { beforeReady: 0, afterReady: 0 };
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 0, max: 8 }), async (s, ticks) => {
        const r = racingEngine(s, ['cancelJob', 'queryJob', 'startMirror']);
        const started = r.engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
        await r.until(started);
        const job = (await started)._unsafeUnwrap();
        // The abort lands anywhere from the start of the copy to just after READY (~4 ticks).
        for (let i = 0; i < ticks; i++) {
          if (s.count() > 0) await s.waitOne();
          await r.clock.advance(1_000);
        }
        const aborted = r.engine.blockJobAbort('demo', 'vda', AbortFlags.ASYNC);
        await r.until(aborted);
        let done = false;
        void job.result.then(() => (done = true));
        expect(await r.runUntil(() => done)).toBe(true);
        const result = await job.result;
        expect(result.outcome).toBe('canceled');
        const ready = r.events.some((e) => e.status === 'READY');
        seen[ready ? 'afterReady' : 'beforeReady']++;
        if (result.destinationConsistent) expect(ready).toBe(true);
        // The engine created the destination: it stays only as a consistent copy.
        expect((await r.sim.probeDestination(DEST))._unsafeUnwrap().exists).toBe(result.destinationConsistent);
        commonChecks(r, job);
        r.engine.close();
      }),
      { numRuns: RUNS },
    );
    console.log(`race abort/ready: ${seen.beforeReady} aborts before READY, ${seen.afterReady} after`);
    // Both sides of the race were run.
    expect(seen.beforeReady).toBeGreaterThan(0);
    expect(seen.afterReady).toBeGreaterThan(0);
  });

  it('an event before the reply of the command that caused it changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.boolean(), async (s, pivot) => {
        // Only the replies are delayed: READY, COMPLETED and the status changes overtake them.
        const r = racingEngine(s, ['startMirror', 'completeJob', 'cancelJob', 'dismissJob']);
        const job = await startReady(r);
        const end = r.engine.blockJobAbort('demo', 'vda', pivot ? AbortFlags.PIVOT : 0);
        expect(await r.until(end)).toBe(true);
        expect((await end).isOk()).toBe(true);
        const result = await job.result;
        expect(result.outcome).toBe(pivot ? 'completed' : 'canceled');
        expect(result.pivoted).toBe(pivot);
        commonChecks(r, job);
        r.engine.close();
      }),
      { numRuns: RUNS },
    );
  });

  it('a poll result older than an event already seen does not take the job back', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        // Polls are answered late and in random order, events at once.
        const r = racingEngine(s, ['queryJob']);
        const job = await startReady(r);
        // Stale "running" answers from before READY may still be in flight: let them all land.
        await r.clock.advance(1_000);
        while (s.count() > 0) await s.waitOne();
        expect(job.state().startsWith('ready')).toBe(true);
        const end = r.engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
        expect(await r.until(end)).toBe(true);
        expect((await job.result).outcome).toBe('completed');
        commonChecks(r, job);
        r.engine.close();
      }),
      { numRuns: RUNS },
    );
  });
});
