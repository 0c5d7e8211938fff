/**
 * Properties of the job machine over random sequences of user requests and hypervisor
 * observations (duplicated, out of order, contradictory), with random IO failures.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockCopyJobEvent } from '../../machines/events.js';
import { blockCopyError } from '../../src/core/errors.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { request, seedFacts, settle, startJob } from './fixtures.js';

const eventArb: fc.Arbitrary<BlockCopyJobEvent | 'settle'> = fc.oneof(
  fc.constant('settle' as const),
  fc.constant({ type: 'PIVOT' } as const),
  fc.boolean().map((force) => ({ type: 'ABORT', force }) as const),
  fc.constant({ type: 'HV.RUNNING' } as const),
  fc.constant({ type: 'HV.READY' } as const),
  fc.constantFrom('user', 'io-error', 'internal').map((reason) => ({ type: 'HV.PAUSED', reason }) as const),
  fc
    .constantFrom('ignore', 'report', 'stop')
    .map((action) => ({ type: 'HV.IO_ERROR', action, operation: 'write' }) as const),
  fc
    .record({
      error: fc.option(fc.constantFrom('Input/output error', 'No space left on device'), { nil: null }),
      cancelled: fc.boolean(),
    })
    .map((c) => ({ type: 'HV.CONCLUDED', ...c }) as const),
  fc.constant({ type: 'HV.VANISHED' } as const),
  fc.constant({ type: 'HV.GONE', reason: 'killed' } as const),
);

const failure = blockCopyError('VIR_ERR_INTERNAL_ERROR', 'injected');
const FINAL = ['"completed"', '"canceled"', '"failed"'];

describe('job machine properties', () => {
  it('never pivots unless ready, ends exactly once, and never removes a file it did not create', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(eventArb, { maxLength: 30 }),
        fc.record({
          failComplete: fc.boolean(),
          failCancel: fc.boolean(),
          pivotLands: fc.boolean(),
          reuse: fc.boolean(),
        }),
        async (events, io) => {
          const facts = io.reuse
            ? seedFacts({
                exists: true,
                kind: 'file',
                size: 196_624,
                empty: true,
                image: { path: '/images/copy.qcow2', format: 'qcow2', virtualSize: 1024 ** 3, backing: null },
              })
            : seedFacts();
          const flags = RebaseFlags.COPY | (io.reuse ? RebaseFlags.REUSE_EXT : 0);
          const { actor, calls, states } = startJob(
            {
              facts,
              pivotLands: io.pivotLands,
              ...(io.failComplete ? { failComplete: failure } : {}),
              ...(io.failCancel ? { failCancel: failure } : {}),
            },
            request(flags),
          );
          await settle();
          for (const event of events) {
            if (event === 'settle') await settle();
            else actor.send(event);
          }
          await settle();
          // 1. block-job-complete was only ever sent from ready.
          for (const from of calls.completeFrom) expect(from.startsWith('{"ready"')).toBe(true);
          // Every entry into pivoting came from ready.
          states.forEach((s, i) => {
            if (s === '"pivoting"') expect(states[i - 1]?.startsWith('{"ready"')).toBe(true);
          });
          // 2. At most one final state, entered once, and it is the last state.
          const finals = states.filter((s) => FINAL.includes(s));
          expect(finals.length).toBeLessThanOrEqual(1);
          if (finals.length === 1) {
            expect(states[states.length - 1]).toBe(finals[0]);
            expect(actor.getSnapshot().status).toBe('done');
          }
          // 3. Only a destination the engine created is removed, and never after a pivot.
          for (const f of calls.finish) {
            if (io.reuse) expect(f.removeDestination).toBeNull();
            if (actor.getSnapshot().context.pivoted) expect(f.removeDestination).toBeNull();
          }
          expect(calls.finish.length).toBeLessThanOrEqual(1);
          // 4. COMPLETED only after a pivot the graph confirmed (ours, or another client's: a
          // completion nobody here requested is confirmed the same way).
          const out = actor.getSnapshot().output;
          if (out?.outcome === 'completed') {
            expect(calls.confirm.length).toBeGreaterThan(0);
            expect(io.pivotLands).toBe(true);
          }
          actor.stop();
        },
      ),
      { numRuns: Number(process.env['BLOCKCOPY_PROPERTY_RUNS'] ?? 300) },
    );
  });
});
