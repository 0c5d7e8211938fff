/**
 * Properties of the block-pull chart over random sequences of user requests and hypervisor
 * observations (duplicated, out of order, contradictory), with random IO failures: it only moves
 * along the chart's edges, never accepts a pivot, never reports a completion or a cancel that the
 * hypervisor did not report, calls block-stream at most once, cancels only on request, dismisses
 * only a started job, and ends exactly once. fast-check prints the seed of a failing run.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise } from 'xstate';
import { blockPullJobMachine } from '../../machines/block-pull-job.js';
import type { BlockCopyJobEvent, RefusedEmitted } from '../../machines/events.js';
import { blockCopyError } from '../../src/core/errors.js';
import type { PullFacts, PullPlan, PullRequest } from '../../src/core/pull.js';
import { validateBlockPull } from '../../src/core/pull.js';
import { stateName } from '../../src/engine/job-runner.js';

const eventArb: fc.Arbitrary<BlockCopyJobEvent | 'settle'> = fc.oneof(
  fc.constant('settle' as const),
  fc.constant({ type: 'PIVOT' } as const),
  fc.boolean().map((force) => ({ type: 'ABORT', force }) as const),
  fc.constant({ type: 'HV.RUNNING' } as const),
  fc.constant({ type: 'HV.READY' } as const),
  fc.constantFrom('user', 'io-error', 'internal').map((reason) => ({ type: 'HV.PAUSED', reason }) as const),
  fc
    .constantFrom('ignore', 'report', 'stop')
    .map((action) => ({ type: 'HV.IO_ERROR', action, operation: 'read' }) as const),
  fc
    .record({
      error: fc.option(fc.constantFrom('Input/output error', 'Operation canceled'), { nil: null }),
      cancelled: fc.boolean(),
    })
    .map((c) => ({ type: 'HV.CONCLUDED', ...c }) as const),
  fc.constant({ type: 'HV.VANISHED' } as const),
  fc.constant({ type: 'HV.GONE', reason: 'killed' } as const),
);

/** The chart's edges between top-level states (the diagram in visualizations/block-pull-job.mmd). */
const EDGES = new Set([
  'validating>starting',
  'validating>failed',
  'starting>streaming',
  'starting>finishing',
  'streaming>aborting',
  'streaming>finishing',
  'aborting>streaming',
  'aborting>finishing',
  'finishing>completed',
  'finishing>canceled',
  'finishing>failed',
]);

const request: PullRequest = validateBlockPull({ domain: 'demo', disk: 'vda', bandwidth: 0, flags: 0 })._unsafeUnwrap();
const facts = (busy: PullFacts['busy']): PullFacts => ({
  domain: { name: 'demo', running: true, persistent: false, disks: ['vda'] },
  disk: {
    disk: 'vda',
    chain: [
      {
        path: '/i/snap2.qcow2',
        format: 'qcow2',
        virtualSize: 1 << 30,
        backing: { path: '/i/base.qcow2', format: 'qcow2' },
      },
      { path: '/i/base.qcow2', format: 'qcow2', virtualSize: 1 << 30, backing: null },
    ],
  },
  busy,
});
const failure = blockCopyError('VIR_ERR_INTERNAL_ERROR', 'injected');
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('pull chart properties', () => {
  it('moves only along its edges, never pivots, reports only observed outcomes, ends once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(eventArb, { maxLength: 30 }),
        fc.record({ failStart: fc.boolean(), failCancel: fc.boolean(), busy: fc.boolean() }),
        async (events, io) => {
          const calls = { start: 0, cancel: 0, finish: [] as boolean[] };
          const machine = blockPullJobMachine.provide({
            actors: {
              inspectFacts: fromPromise<PullFacts, { jobId: string; request: PullRequest }>(() =>
                Promise.resolve(facts(io.busy ? 'other' : null)),
              ),
              startStream: fromPromise<undefined, { jobId: string; plan: PullPlan }>(async () => {
                calls.start++;
                await Promise.resolve();
                if (io.failStart) throw failure;
                return undefined;
              }),
              cancelJob: fromPromise<undefined, { jobId: string; force: boolean }>(async () => {
                calls.cancel++;
                await Promise.resolve();
                if (io.failCancel) throw failure;
                return undefined;
              }),
              finishJob: fromPromise<undefined, { jobId: string; started: boolean }>(({ input }) => {
                calls.finish.push(input.started);
                return Promise.resolve(undefined);
              }),
            },
          });
          const actor = createActor(machine, { input: { jobId: 'pull-vda-1', request } });
          const states: string[] = [];
          let doneCount = 0;
          actor.subscribe((s) => {
            const top = stateName(s.value).split('.')[0]!;
            if (states[states.length - 1] !== top) states.push(top);
            if (s.status === 'done') doneCount++;
          });
          const refusals: RefusedEmitted[] = [];
          actor.on('refused', (e: RefusedEmitted) => refusals.push(e));
          actor.start();
          await tick();
          let pivots = 0;
          // What the hypervisor said while the job existed / while an abort was under way.
          let completionSeen = false;
          let cancelSeen = false;
          let aborts = 0;
          for (const event of events) {
            if (event === 'settle') {
              await tick();
              continue;
            }
            const before = stateName(actor.getSnapshot().value).split('.')[0]!;
            // A finished job hears nothing (the engine answers "no active job" itself).
            if (event.type === 'PIVOT' && actor.getSnapshot().status === 'active') pivots++;
            if (event.type === 'ABORT' && before === 'streaming') aborts++;
            if (event.type === 'HV.CONCLUDED' && ['starting', 'streaming', 'aborting'].includes(before)) {
              if (event.error === null && !event.cancelled) completionSeen = true;
              if (event.cancelled) cancelSeen = true;
            }
            if (event.type === 'HV.VANISHED' && before === 'aborting') cancelSeen = true;
            actor.send(event);
          }
          for (let i = 0; i < 5; i++) await tick();
          // Whatever happened, the hypervisor ends it in the end.
          actor.send({ type: 'HV.GONE', reason: 'end of run' });
          for (let i = 0; i < 5; i++) await tick();

          const snap = actor.getSnapshot();
          expect(snap.status).toBe('done');
          expect(doneCount).toBe(1);
          for (let i = 1; i < states.length; i++) expect(EDGES.has(`${states[i - 1]}>${states[i]}`)).toBe(true);
          // A pivot is never accepted: every one is refused.
          expect(refusals.filter((r) => r.request === 'PIVOT')).toHaveLength(pivots);
          const outcome = snap.output!.outcome;
          expect(snap.output!.pivoted).toBe(false);
          if (outcome === 'completed') expect(completionSeen).toBe(true);
          if (outcome === 'canceled') expect(aborts > 0 && cancelSeen).toBe(true);
          if (io.busy) expect(states).toEqual(['validating', 'failed']);
          expect(calls.start).toBeLessThanOrEqual(1);
          expect(calls.cancel).toBeLessThanOrEqual(aborts);
          // The job is dismissed at most once, and only claimed started once the stream was accepted.
          expect(calls.finish.length).toBeLessThanOrEqual(1);
          if (calls.finish[0] === true) expect(calls.start).toBe(1);
          if (!states.includes('starting')) expect(calls.finish).toEqual([]);
          actor.stop();
        },
      ),
      { numRuns: 200 },
    );
  });
});
