/**
 * Scheduled model runs (fc.scheduledModelRun): random user calls — pivot, abort, pause, resume,
 * set-speed, guest writes, I/O errors, time passing — interleaved by fast-check's scheduler with
 * the hypervisor's replies (every port call's answer is a scheduled task) and its events. Beyond
 * the hand-written races: whatever the interleaving, every call returns, the engine never pivots
 * before READY, a job ends once, a synchronous pivot's answer matches the job's end, COMPLETED
 * means the guest is on the copy, and a call the engine refused changed nothing it reports.
 */
import fc from 'fast-check';
import type { Result } from 'neverthrow';
import { describe, expect, it } from 'vitest';
import type { BlockCopyError } from '../../src/core/errors.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { DEST, racingEngine } from './harness.js';

type Racing = ReturnType<typeof racingEngine>;

interface Call {
  readonly name: string;
  readonly sync: boolean;
  readonly kind: 'pivot' | 'abort' | 'other';
  result: Result<unknown, BlockCopyError> | null;
}

interface Real {
  readonly r: Racing;
  readonly calls: Call[];
}

type Cmd = fc.AsyncCommand<object, Real>;

function call(
  real: Real,
  name: string,
  kind: Call['kind'],
  sync: boolean,
  p: PromiseLike<Result<void, BlockCopyError>>,
) {
  const c: Call = { name, kind, sync, result: null };
  real.calls.push(c);
  void Promise.resolve(p).then((res) => (c.result = res));
}

const cmd = (name: string, run: (real: Real) => void): Cmd => ({
  check: () => true,
  run: (_m, real) => {
    run(real);
    return Promise.resolve();
  },
  toString: () => name,
});

const commands = [
  fc
    .record({ async: fc.boolean() })
    .map(({ async }) =>
      cmd(`pivot${async ? '(async)' : ''}`, (real) =>
        call(
          real,
          'pivot',
          'pivot',
          !async,
          real.r.engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | (async ? AbortFlags.ASYNC : 0)),
        ),
      ),
    ),
  fc
    .record({ async: fc.boolean(), force: fc.boolean() })
    .map(({ async, force }) =>
      cmd(`abort(${async ? 'async' : 'sync'}${force ? ', force' : ''})`, (real) =>
        call(
          real,
          'abort',
          'abort',
          !async,
          real.r.engine.blockJobAbort('demo', 'vda', async ? AbortFlags.ASYNC : 0, { force }),
        ),
      ),
    ),
  fc.constant(cmd('pause', (real) => call(real, 'pause', 'other', true, real.r.engine.blockJobPause('demo', 'vda')))),
  fc.constant(
    cmd('resume', (real) => call(real, 'resume', 'other', true, real.r.engine.blockJobResume('demo', 'vda'))),
  ),
  fc
    .constantFrom(0, 8, 64)
    .map((bw) =>
      cmd(`setSpeed(${bw})`, (real) =>
        call(real, 'speed', 'other', true, real.r.engine.blockJobSetSpeed('demo', 'vda', bw, 0)),
      ),
    ),
  fc.constant(cmd('guestWrite(4 MiB)', (real) => void real.r.sim.guestWrite('demo', 'vda', 4 * 1024 * 1024))),
  fc
    .constantFrom('EIO', 'ENOSPC')
    .map((errno) =>
      cmd(`ioError(${errno}, once)`, (real) => real.r.sim.injectTargetError({ errno: errno, once: true })),
    ),
  fc.constantFrom(10, 100, 600).map((ms) => cmd(`advance(${ms})`, (real) => void real.r.clock.advance(ms))),
];

const RUNS = 150;

describe('scheduled model runs: user calls interleaved with hypervisor replies and events', () => {
  it('every call returns and the answers agree with how the job ended', async () => {
    let completed = 0;
    let canceled = 0;
    let failed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.boolean(),
        fc.constantFrom('report', 'stop', 'enospc') as fc.Arbitrary<'report'>,
        fc.commands(commands, { maxCommands: 8 }),
        async (s, waitReady, policy, cmds) => {
          const r = racingEngine(s, [
            'completeJob',
            'cancelJob',
            'queryJob',
            'pauseJob',
            'resumeJob',
            'setJobSpeed',
            'activeImage',
            'dismissJob',
          ]);
          const started = r.engine.blockRebase('demo', 'vda', DEST, waitReady ? 0 : 8, RebaseFlags.COPY, {
            onTargetError: policy,
          });
          expect(await r.until(started)).toBe(true);
          const job = (await started)._unsafeUnwrap();
          if (waitReady) expect(await r.runUntil(() => job.state().startsWith('ready'))).toBe(true);
          const real: Real = { r, calls: [] };
          await fc.scheduledModelRun(s, () => ({ model: {}, real }), cmds);
          // Every call returns (a synchronous one once the job it waits for has ended or moved on).
          let ended = false;
          void job.result.then(() => (ended = true));
          const allReturned = () => real.calls.every((c) => c.result !== null);
          if (!(await r.runUntil(allReturned))) {
            // Only a call waiting for the end of the job may still wait: heal and end the job.
            r.sim.clearFaults();
            void r.engine.blockJobResume('demo', 'vda');
            await r.runUntil(() => ended || job.state().startsWith('ready.synced'));
            void r.engine.blockJobAbort('demo', 'vda', AbortFlags.ASYNC, { force: true });
          }
          expect(
            await r.runUntil(allReturned),
            `calls never returned: ${real.calls
              .filter((c) => !c.result)
              .map((c) => c.name)
              .join(', ')}`,
          ).toBe(true);
          if (!ended) {
            // A job stopped by an I/O error waits for the admin (policy 'stop'): fix and resume.
            r.sim.clearFaults();
            void r.engine.blockJobResume('demo', 'vda');
            await r.runUntil(() => ended || /^(ready|mirroring)/.test(job.state()));
            if (!ended) void r.engine.blockJobAbort('demo', 'vda', 0, { force: true });
          }
          expect(await r.runUntil(() => ended)).toBe(true);
          const result = await job.result;
          // Never a pivot before READY; one final event; a COMPLETED guest is on the copy.
          for (const c of r.completes) expect(c.afterReady).toBe(true);
          expect(r.events.filter((e) => e.status !== 'READY').map((e) => e.status)).toHaveLength(1);
          expect(r.events.filter((e) => e.status === 'READY').length).toBeLessThanOrEqual(1);
          expect(result.pivoted).toBe(result.outcome === 'completed');
          if (result.outcome === 'completed') {
            completed++;
            expect((await r.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
          } else expect((await r.sim.activeImage('demo', 'vda'))._unsafeUnwrap()).not.toBe(DEST);
          if (result.outcome === 'canceled') canceled++;
          if (result.outcome === 'failed') failed++;
          // A synchronous pivot that returned 0 pivoted; a pivot is reported failed only if none happened.
          for (const c of real.calls.filter((c) => c.kind === 'pivot' && c.sync)) {
            if (c.result!.isOk()) expect(result.outcome).toBe('completed');
          }
          if (result.outcome !== 'completed')
            for (const c of real.calls.filter((c) => c.kind === 'pivot'))
              expect(c.result!.isOk() && c.sync).toBe(false);
          // An abort the engine took (it returned 0) ends the job canceled, whatever QEMU reports.
          for (const c of real.calls.filter((c) => c.kind === 'abort'))
            if (c.result!.isOk()) expect(result.outcome).toBe('canceled');
          expect(r.sim.sttViolations).toEqual([]);
          expect(r.sim.listJobs().filter((j) => j.live)).toEqual([]);
          r.engine.close();
        },
      ),
      { numRuns: RUNS },
    );
    console.log(`scheduled model runs: ${RUNS} (completed ${completed}, canceled ${canceled}, failed ${failed})`);
    expect(completed).toBeGreaterThan(0);
    expect(canceled).toBeGreaterThan(0);
  });
});
