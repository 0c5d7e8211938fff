/** The job chart alone, with instant IO actors: transitions, guards, refusals, clean-up rules. */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import type { RefusedEmitted } from '../../machines/events.js';
import { blockCopyJobMachine } from '../../machines/block-copy-job.js';
import { blockCopyError } from '../../src/core/errors.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { request, seedFacts, settle, startJob } from './fixtures.js';

function refusals(actor: ReturnType<typeof startJob>['actor']): RefusedEmitted[] {
  const seen: RefusedEmitted[] = [];
  actor.on('refused', (e) => seen.push(e));
  return seen;
}

describe('block copy job machine', () => {
  it('runs validate → prepare → start → mirroring → ready → pivot → completed', async () => {
    const { actor, calls } = startJob();
    await settle();
    expect(actor.getSnapshot().value).toEqual({ mirroring: 'running' });
    expect(calls.prepare[0]?.destinationAction).toBe('create');
    actor.send({ type: 'HV.READY' });
    expect(actor.getSnapshot().value).toEqual({ ready: 'synced' });
    actor.send({ type: 'PIVOT' });
    await settle();
    expect(actor.getSnapshot().value).toBe('pivoting');
    expect(actor.getSnapshot().context.endAccepted).toBe(true);
    actor.send({ type: 'HV.CONCLUDED', error: null, cancelled: false });
    await settle();
    expect(actor.getSnapshot().status).toBe('done');
    expect(actor.getSnapshot().value).toBe('completed');
    expect(actor.getSnapshot().output).toEqual({
      outcome: 'completed',
      pivoted: true,
      destinationConsistent: true,
      error: null,
    });
    // The pivot target is now the disk: never removed.
    expect(calls.finish).toEqual([
      { jobId: 'job-1', started: true, removeDestination: null, releaseDestination: '/images/copy.qcow2' },
    ]);
  });

  it('refuses a pivot before ready with VIR_ERR_BLOCK_COPY_ACTIVE and stays mirroring', async () => {
    const { actor, calls } = startJob();
    await settle();
    const seen = refusals(actor);
    actor.send({ type: 'PIVOT' });
    expect(seen).toEqual([
      {
        type: 'refused',
        request: 'PIVOT',
        error: blockCopyError('VIR_ERR_BLOCK_COPY_ACTIVE', "block job 'vda' not ready for pivot yet"),
      },
    ]);
    expect(seen[0]?.error.number).toBe(83);
    expect(actor.getSnapshot().value).toEqual({ mirroring: 'running' });
    expect(calls.complete).toEqual([]);
  });

  it('never takes cur == end for ready: only HV.READY moves to ready', async () => {
    const { actor } = startJob();
    await settle();
    actor.send({ type: 'HV.RUNNING' });
    actor.send({ type: 'HV.PAUSED', reason: 'internal' });
    expect(actor.getSnapshot().matches('mirroring')).toBe(true);
  });

  it('refuses a second end request while one is in flight ("still being ended")', async () => {
    const { actor } = startJob();
    await settle();
    actor.send({ type: 'HV.READY' });
    actor.send({ type: 'PIVOT' });
    const seen = refusals(actor);
    actor.send({ type: 'PIVOT' });
    actor.send({ type: 'ABORT', force: false });
    expect(seen.map((e) => [e.request, e.error.code, e.error.message])).toEqual([
      [
        'PIVOT',
        'VIR_ERR_OPERATION_INVALID',
        "Requested operation is not valid: block job on disk 'vda' is still being ended",
      ],
      [
        'ABORT',
        'VIR_ERR_OPERATION_INVALID',
        "Requested operation is not valid: block job on disk 'vda' is still being ended",
      ],
    ]);
  });

  it('soft abort after ready: canceled, consistent copy kept', async () => {
    const { actor, calls } = startJob();
    await settle();
    actor.send({ type: 'HV.READY' });
    actor.send({ type: 'ABORT', force: false });
    await settle();
    expect(calls.cancel).toEqual([{ jobId: 'job-1', force: false }]);
    // QEMU reports a soft cancel of a ready mirror as COMPLETED without error.
    actor.send({ type: 'HV.CONCLUDED', error: null, cancelled: false });
    await settle();
    expect(actor.getSnapshot().output).toEqual({
      outcome: 'canceled',
      pivoted: false,
      destinationConsistent: true,
      error: null,
    });
    expect(calls.finish[0]?.removeDestination).toBeNull();
    expect(calls.complete).toEqual([]);
  });

  it('abort in standby is a force cancel (QEMU refuses a soft cancel of a paused job)', async () => {
    const { actor, calls } = startJob();
    await settle();
    actor.send({ type: 'HV.READY' });
    actor.send({ type: 'HV.PAUSED', reason: 'user' });
    expect(actor.getSnapshot().value).toEqual({ ready: 'standby' });
    actor.send({ type: 'ABORT', force: false });
    await settle();
    expect(calls.cancel).toEqual([{ jobId: 'job-1', force: true }]);
  });

  it('abort before ready: canceled, inconsistent, the created destination removed', async () => {
    const { actor, calls } = startJob();
    await settle();
    actor.send({ type: 'ABORT', force: false });
    await settle();
    expect(calls.cancel).toEqual([{ jobId: 'job-1', force: true }]);
    actor.send({ type: 'HV.CONCLUDED', error: null, cancelled: true });
    await settle();
    expect(actor.getSnapshot().output).toMatchObject({ outcome: 'canceled', destinationConsistent: false });
    expect(calls.finish[0]?.removeDestination).toBe('/images/copy.qcow2');
  });

  it('a reused destination is never removed, whatever the outcome', async () => {
    const facts = seedFacts({
      exists: true,
      kind: 'file',
      size: 196_624,
      empty: true,
      image: { path: '/images/copy.qcow2', format: 'qcow2', virtualSize: 1024 ** 3, backing: null },
    });
    const { actor, calls } = startJob({ facts }, request(RebaseFlags.COPY | RebaseFlags.REUSE_EXT));
    await settle();
    expect(calls.prepare[0]?.destinationAction).toBe('reuse');
    actor.send({ type: 'HV.CONCLUDED', error: 'Input/output error', cancelled: false });
    await settle();
    expect(actor.getSnapshot().output?.outcome).toBe('failed');
    expect(calls.finish[0]?.removeDestination).toBeNull();
  });

  it('fails with the hypervisor error text when the job concludes with an error', async () => {
    const { actor } = startJob();
    await settle();
    actor.send({ type: 'HV.IO_ERROR', action: 'report', operation: 'write' });
    actor.send({ type: 'HV.CONCLUDED', error: 'Input/output error', cancelled: false });
    await settle();
    const out = actor.getSnapshot().output;
    expect(out?.outcome).toBe('failed');
    expect(out?.error?.message).toBe("operation failed: block job 'vda' failed: Input/output error");
    expect(actor.getSnapshot().context.lastIoError).toBe('write error, action report');
  });

  it('a pivot QEMU refuses leaves the job ready and reports the refusal', async () => {
    const qemuError = blockCopyError(
      'VIR_ERR_INTERNAL_ERROR',
      "unable to execute QEMU command 'block-job-complete': nope",
    );
    const { actor } = startJob({ failComplete: qemuError });
    await settle();
    actor.send({ type: 'HV.READY' });
    const seen = refusals(actor);
    actor.send({ type: 'PIVOT' });
    await settle();
    expect(actor.getSnapshot().value).toEqual({ ready: 'synced' });
    expect(seen).toEqual([{ type: 'refused', request: 'PIVOT', error: qemuError }]);
  });

  it('COMPLETED after a pivot request is not success until the graph confirms it', async () => {
    const { actor } = startJob({ pivotLands: false });
    await settle();
    actor.send({ type: 'HV.READY' });
    actor.send({ type: 'PIVOT' });
    actor.send({ type: 'HV.CONCLUDED', error: null, cancelled: false });
    await settle();
    expect(actor.getSnapshot().output).toMatchObject({ outcome: 'failed', pivoted: false });
    expect(actor.getSnapshot().output?.error?.code).toBe('VIR_ERR_OPERATION_FAILED');
  });

  it('a job that vanishes is failed with an unknown outcome, never reported as success', async () => {
    const { actor } = startJob();
    await settle();
    actor.send({ type: 'HV.READY' });
    actor.send({ type: 'HV.VANISHED' });
    await settle();
    expect(actor.getSnapshot().output?.outcome).toBe('failed');
    expect(actor.getSnapshot().output?.error?.detail).toContain('vanished');
  });

  it('an invalid plan ends in failed before any side effect', async () => {
    const facts = seedFacts({ exists: true, kind: 'file', size: 4096, empty: false, image: null });
    const { actor, calls } = startJob({ facts });
    await settle();
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().context.started).toBe(false);
    expect(actor.getSnapshot().output?.error?.code).toBe('VIR_ERR_CONFIG_UNSUPPORTED');
    expect(calls.prepare).toEqual([]);
    expect(calls.finish).toEqual([]);
  });

  it('start failure removes the destination it created', async () => {
    const { actor, calls } = startJob({ failStart: blockCopyError('VIR_ERR_INTERNAL_ERROR', 'boom') });
    await settle();
    expect(actor.getSnapshot().value).toBe('failed');
    expect(calls.finish).toEqual([
      {
        jobId: 'job-1',
        started: false,
        removeDestination: '/images/copy.qcow2',
        releaseDestination: '/images/copy.qcow2',
      },
    ]);
  });

  it('duplicated observations change nothing', async () => {
    const { actor, states } = startJob();
    await settle();
    actor.send({ type: 'HV.READY' });
    const before = states.length;
    actor.send({ type: 'HV.READY' });
    actor.send({ type: 'HV.RUNNING' });
    actor.send({ type: 'HV.READY' });
    expect(states.length).toBe(before);
  });

  it('survives a JSON round trip of its persisted snapshot and goes on', async () => {
    const { actor } = startJob();
    await settle();
    actor.send({ type: 'HV.READY' });
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
    actor.stop();
    const { calls } = startJob();
    const restored = createActor(
      blockCopyJobMachine.provide({
        actors: {
          completeJob: (await import('xstate')).fromPromise(async () => {
            calls.complete.push('restored');
            return undefined;
          }),
        },
      }),
      { snapshot: persisted, input: { jobId: 'job-1', request: request() } },
    ).start();
    expect(restored.getSnapshot().value).toEqual({ ready: 'synced' });
    restored.send({ type: 'PIVOT' });
    await settle();
    expect(calls.complete).toContain('restored');
  });
});
