/**
 * The convergence policy chart one step at a time (XState's pure `transition`): which escalation
 * step each verdict leads to (raise the bandwidth, restart write-blocking, nothing left), steps
 * skipped when they cannot help, the deadline's give-up with the error that says what was tried,
 * and the job's end stopping it. Expectations from the README's convergence section.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, initialTransition, toPromise } from 'xstate';
import type { ConvergencePolicyContext, ConvergencePolicyEvent } from '../../machines/convergence-policy.js';
import { convergencePolicyMachine } from '../../machines/convergence-policy.js';
import { blockCopyError } from '../../src/core/errors.js';
import { notConverging } from '../../src/core/convergence.js';
import { done as doneOf, failed as failedOf, step as stepOf } from './steps.js';

const MiB = 1048576;
const base: ConvergencePolicyContext = {
  jobId: 'job-1',
  disk: 'vda',
  policy: { timeoutMs: 60_000, windowMs: 5_000, raiseBandwidthTo: 8 * MiB, writeBlocking: true, minShrinkBytes: 0 },
  speed: 4 * MiB,
  copyMode: 'background',
  remaining: null,
  tried: [],
};
type Ev = ConvergencePolicyEvent | { type: string; output?: unknown; error?: unknown };
const step = (value: Parameters<typeof stepOf>[1], ctx: Partial<ConvergencePolicyContext>, event: Ev) =>
  stepOf(convergencePolicyMachine, value, { ...base, ...ctx }, event);
const policy = (p: Partial<ConvergencePolicyContext['policy']>) => ({ policy: { ...base.policy, ...p } });
const NOT_CONVERGING: Ev = { type: 'NOT_CONVERGING', remaining: 123_456 };
const done = (state: string) => doneOf('convergencePolicy', state);
const fail = (state: string) => failedOf('convergencePolicy', state, blockCopyError('VIR_ERR_INTERNAL_ERROR', 'no'));

describe('convergence policy chart', () => {
  it('starts watching, with what it was given, nothing tried', () => {
    const [s0] = initialTransition(convergencePolicyMachine, {
      jobId: 'job-1',
      disk: 'vda',
      policy: base.policy,
      speed: 4 * MiB,
      copyMode: 'background',
    });
    expect(s0.value).toEqual({ escalating: 'watching' });
    expect(s0.context).toEqual(base);
  });

  describe('watching: the first verdict', () => {
    it('a limited copy whose limit can go up: raises it first', () => {
      const s = step({ escalating: 'watching' }, {}, NOT_CONVERGING);
      expect(s.state).toBe('escalating.raisingBandwidth');
      expect(s.context.remaining).toBe(123_456);
      expect(s.invoked).toEqual([{ src: 'raiseBandwidth', input: { jobId: 'job-1', speed: 8 * MiB } }]);
    });
    it('raise to 0 (unlimited) from a limited copy: raises', () => {
      const s = step({ escalating: 'watching' }, policy({ raiseBandwidthTo: 0 }), NOT_CONVERGING);
      expect(s.state).toBe('escalating.raisingBandwidth');
      expect(s.invoked).toEqual([{ src: 'raiseBandwidth', input: { jobId: 'job-1', speed: 0 } }]);
    });
    it.each([
      ['already unlimited', { speed: 0 }],
      ['the raise is no raise', { ...policy({ raiseBandwidthTo: 4 * MiB }) }],
      ['the raise is lower', { ...policy({ raiseBandwidthTo: 2 * MiB }) }],
    ])('%s: skips to the write-blocking restart', (_why, ctx) => {
      const s = step({ escalating: 'watching' }, ctx, NOT_CONVERGING);
      expect(s.state).toBe('escalating.restarting');
      expect(s.context.remaining).toBe(123_456);
      expect(s.invoked).toEqual([
        {
          src: 'restartWriteBlocking',
          input: { jobId: 'job-1', speed: (ctx as Partial<ConvergencePolicyContext>).speed ?? 4 * MiB },
        },
      ]);
    });
    it.each([
      ['write-blocking off', { speed: 0, ...policy({ writeBlocking: false }) }],
      ['already write-blocking', { speed: 0, copyMode: 'write-blocking' as const }],
    ])('nothing can help (%s): exhausted', (_why, ctx) => {
      const s = step({ escalating: 'watching' }, ctx, NOT_CONVERGING);
      expect(s.state).toBe('escalating.exhausted');
      expect(s.context.remaining).toBe(123_456);
      expect(s.invoked).toEqual([]);
    });
  });

  describe('raisingBandwidth', () => {
    it('raised: the new speed and what was tried noted, watching again', () => {
      const s = step({ escalating: 'raisingBandwidth' }, {}, done('escalating.raisingBandwidth'));
      expect(s.state).toBe('escalating.watchingRaised');
      expect(s.context).toMatchObject({ speed: 8 * MiB, tried: ['bandwidth raised to 8 MiB/s'] });
    });
    it('lifted to unlimited: said so', () => {
      const s = step(
        { escalating: 'raisingBandwidth' },
        { ...policy({ raiseBandwidthTo: 0 }), tried: ['x'] },
        done('escalating.raisingBandwidth'),
      );
      expect(s.context).toMatchObject({ speed: 0, tried: ['x', 'bandwidth limit lifted'] });
    });
    it('a fractional MiB/s is shown to one decimal', () => {
      const s = step(
        { escalating: 'raisingBandwidth' },
        policy({ raiseBandwidthTo: 5 * MiB + MiB / 4 }),
        done('escalating.raisingBandwidth'),
      );
      expect(s.context.tried).toEqual(['bandwidth raised to 5.3 MiB/s']);
    });
    it('QEMU refused the speed: on to the next step, nothing noted', () => {
      const s = step({ escalating: 'raisingBandwidth' }, {}, fail('escalating.raisingBandwidth'));
      expect(s.state).toBe('escalating.watchingRaised');
      expect(s.context).toMatchObject({ speed: 4 * MiB, tried: [] });
    });
  });

  describe('watchingRaised', () => {
    it('still not converging: restart write-blocking at the current speed', () => {
      const s = step({ escalating: 'watchingRaised' }, { speed: 8 * MiB }, NOT_CONVERGING);
      expect(s.state).toBe('escalating.restarting');
      expect(s.context.remaining).toBe(123_456);
      expect(s.invoked).toEqual([{ src: 'restartWriteBlocking', input: { jobId: 'job-1', speed: 8 * MiB } }]);
    });
    it('no restart allowed: exhausted, the verdict noted', () => {
      const s = step({ escalating: 'watchingRaised' }, policy({ writeBlocking: false }), NOT_CONVERGING);
      expect(s.state).toBe('escalating.exhausted');
      expect(s.context.remaining).toBe(123_456);
    });
  });

  describe('restarting', () => {
    it('restarted: write-blocking now, noted', () => {
      const s = step({ escalating: 'restarting' }, { tried: ['a'] }, done('escalating.restarting'));
      expect(s.state).toBe('escalating.watchingWriteBlocking');
      expect(s.context).toMatchObject({ copyMode: 'write-blocking', tried: ['a', 'restarted in write-blocking mode'] });
    });
    it('the restart refused: exhausted, the mode unchanged', () => {
      const s = step({ escalating: 'restarting' }, {}, fail('escalating.restarting'));
      expect(s.state).toBe('escalating.exhausted');
      expect(s.context).toMatchObject({ copyMode: 'background', tried: [] });
    });
  });

  it('watchingWriteBlocking: the last verdict exhausts it; exhausted keeps noting the remaining bytes', () => {
    const s = step({ escalating: 'watchingWriteBlocking' }, {}, NOT_CONVERGING);
    expect(s.state).toBe('escalating.exhausted');
    expect(s.context.remaining).toBe(123_456);
    const e = step({ escalating: 'exhausted' }, { remaining: 1 }, { type: 'NOT_CONVERGING', remaining: 77 });
    expect(e.state).toBe('escalating.exhausted');
    expect(e.context.remaining).toBe(77);
  });

  describe('the deadline', () => {
    it.each(['watching', 'raisingBandwidth', 'watchingRaised', 'restarting', 'watchingWriteBlocking', 'exhausted'])(
      'in %s, job not ready: gives up with the error saying what was tried',
      (sub) => {
        const s = step(
          { escalating: sub },
          { tried: ['bandwidth raised to 8 MiB/s', 'restarted in write-blocking mode'], remaining: 99 },
          { type: 'DEADLINE', jobReady: false },
        );
        expect(s.state).toBe('givingUp');
        expect(s.invoked).toEqual([
          {
            src: 'giveUp',
            input: {
              jobId: 'job-1',
              error: notConverging(
                'vda',
                60_000,
                'bandwidth raised to 8 MiB/s, then restarted in write-blocking mode',
                99,
              ),
            },
          },
        ]);
      },
    );
    it('nothing tried: says so', () => {
      const s = step({ escalating: 'watching' }, {}, { type: 'DEADLINE', jobReady: false });
      expect(s.invoked[0]?.input).toEqual({
        jobId: 'job-1',
        error: notConverging('vda', 60_000, 'no escalation step applied', null),
      });
    });
    it('the job is ready: nothing given up', () => {
      const s = step({ escalating: 'exhausted' }, {}, { type: 'DEADLINE', jobReady: true });
      expect(s.state).toBe('escalating.exhausted');
      expect(s.invoked).toEqual([]);
    });
    it.each([done('givingUp'), fail('givingUp')])('given up (%o): final', (event) => {
      const s = step('givingUp', {}, event);
      expect(s.state).toBe('gaveUp');
      expect(s.status).toBe('done');
    });
  });

  it.each(['watching', 'raisingBandwidth', 'exhausted'])('the job ended in %s: stopped', (sub) => {
    const s = step({ escalating: sub }, {}, { type: 'JOB.ENDED' });
    expect(s.state).toBe('stopped');
    expect(s.status).toBe('done');
  });

  it('runs with provided IO: raise, restart, then gives up at the deadline', async () => {
    const calls: string[] = [];
    const actor = createActor(
      convergencePolicyMachine.provide({
        actors: {
          raiseBandwidth: fromPromise(async ({ input }) => {
            calls.push(`raise ${input.speed}`);
            return undefined;
          }),
          restartWriteBlocking: fromPromise(async ({ input }) => {
            calls.push(`restart ${input.speed}`);
            return undefined;
          }),
          giveUp: fromPromise(async ({ input }) => {
            calls.push(`give up ${input.error.code}`);
            return undefined;
          }),
        },
      }),
      { input: { jobId: 'job-1', disk: 'vda', policy: base.policy, speed: 4 * MiB, copyMode: 'background' } },
    ).start();
    const settled = () => new Promise((r) => setImmediate(r));
    actor.send(NOT_CONVERGING);
    await settled();
    actor.send(NOT_CONVERGING);
    await settled();
    actor.send({ type: 'DEADLINE', jobReady: false });
    await toPromise(actor);
    expect(calls).toEqual([`raise ${8 * MiB}`, `restart ${8 * MiB}`, 'give up VIR_ERR_OPERATION_TIMEOUT']);
    expect(actor.getSnapshot().value).toBe('gaveUp');
  });

  it('without its IO actors, each rejects naming itself', async () => {
    for (const name of ['raiseBandwidth', 'restartWriteBlocking', 'giveUp']) {
      const logic = convergencePolicyMachine.implementations.actors[name] as unknown as {
        config: (a: { input: unknown }) => Promise<unknown>;
      };
      await expect(logic.config({ input: {} })).rejects.toThrow(`actor '${name}' was not provided`);
    }
  });
});
