/**
 * Regression (issue 11, fast-check seed 414142502 path "566"): a synchronous pivot of a paused,
 * ready copy never returned (QEMU takes block-job-complete in standby but acts on it only after a
 * resume). start(d1/vdb, shallow+reuse, dest1, enospc) → advance(500) → pause → advance(3000) →
 * pivot(force). The pivot is now refused, changes nothing, and works after a resume.
 */
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { System } from '../model/system.js';

const DEST = '/dst/d1-vdb-1.qcow2';
const FLAGS = RebaseFlags.COPY | RebaseFlags.SHALLOW | RebaseFlags.REUSE_EXT;

async function pausedReadyCopy(): Promise<System> {
  const s = new System([{ path: DEST, backing: '/img/d1/vdb/snap1.qcow2' }]);
  const started = await s.await(s.engine.blockRebase('d1', 'vdb', DEST, 0, FLAGS, { onTargetError: 'enospc' }));
  expect(started.isOk()).toBe(true);
  await s.clock.advance(500);
  expect((await s.await(s.engine.blockJobPause('d1', 'vdb'))).isOk()).toBe(true);
  await s.clock.advance(3000);
  expect(s.engine.job('d1', 'vdb')!.state()).toBe('ready.standby');
  return s;
}

describe('regression: pivot of a paused copy (seed 414142502, path "566")', () => {
  it('a synchronous pivot of a paused job returns VIR_ERR_OPERATION_INVALID and changes nothing', async () => {
    const s = await pausedReadyCopy();
    const r = await s.await(s.engine.blockJobAbort('d1', 'vdb', AbortFlags.PIVOT, { force: true }));
    expect(r._unsafeUnwrapErr().code).toBe('VIR_ERR_OPERATION_INVALID');
    expect(r._unsafeUnwrapErr().message).toContain('paused');
    expect(s.engine.job('d1', 'vdb')!.state()).toBe('ready.standby');
    expect(s.rec.completes).toEqual([]);
    expect(s.rec.events.map((e) => e.status)).toEqual(['READY']);
  });

  it('the pivot is refused even before the engine has seen the pause event', async () => {
    const s = new System([{ path: DEST, backing: '/img/d1/vdb/snap1.qcow2' }]);
    (await s.await(s.engine.blockRebase('d1', 'vdb', DEST, 0, FLAGS)))._unsafeUnwrap();
    await s.clock.advance(500);
    s.holding = true; // the standby event is held back
    expect((await s.await(s.engine.blockJobPause('d1', 'vdb'))).isOk()).toBe(true);
    expect(s.engine.job('d1', 'vdb')!.state()).toBe('ready.synced');
    const r = await s.engine.blockJobAbort('d1', 'vdb', AbortFlags.PIVOT);
    expect(r._unsafeUnwrapErr().code).toBe('VIR_ERR_OPERATION_INVALID');
    expect(s.rec.completes).toEqual([]);
    s.releaseHeld();
  });

  it('after a resume the pivot completes', async () => {
    const s = await pausedReadyCopy();
    expect((await s.await(s.engine.blockJobResume('d1', 'vdb'))).isOk()).toBe(true);
    const r = await s.await(s.engine.blockJobAbort('d1', 'vdb', AbortFlags.PIVOT));
    expect(r.isOk()).toBe(true);
    expect(s.rec.events.map((e) => e.status)).toEqual(['READY', 'COMPLETED']);
    s.checkInvariants();
  });

  it('a pause while a pivot is in flight is refused (it would hold the pivot)', async () => {
    const s = new System([{ path: DEST, backing: '/img/d1/vdb/snap1.qcow2' }]);
    (await s.await(s.engine.blockRebase('d1', 'vdb', DEST, 0, FLAGS)))._unsafeUnwrap();
    await s.clock.advance(500);
    const pivot = s.engine.blockJobAbort('d1', 'vdb', AbortFlags.PIVOT);
    const pause = await s.engine.blockJobPause('d1', 'vdb');
    expect(pause._unsafeUnwrapErr().code).toBe('VIR_ERR_OPERATION_INVALID');
    expect((await s.await(pivot)).isOk()).toBe(true);
  });
});

describe('regression: a refused second pause forgot the first (scheduled model run)', () => {
  it('pause, pause (refused: already paused) → the pivot is still refused as paused', async () => {
    const s = new System([{ path: DEST, backing: '/img/d1/vdb/snap1.qcow2' }]);
    (await s.await(s.engine.blockRebase('d1', 'vdb', DEST, 0, FLAGS)))._unsafeUnwrap();
    await s.clock.advance(500);
    s.holding = true; // the engine has not seen the standby yet
    const first = s.engine.blockJobPause('d1', 'vdb');
    const second = await s.engine.blockJobPause('d1', 'vdb');
    expect(second._unsafeUnwrapErr().code).toBe('VIR_ERR_INTERNAL_ERROR');
    expect((await first).isOk()).toBe(true);
    const pivot = await s.engine.blockJobAbort('d1', 'vdb', AbortFlags.PIVOT | AbortFlags.ASYNC);
    expect(pivot._unsafeUnwrapErr().code).toBe('VIR_ERR_OPERATION_INVALID');
    expect(s.rec.completes).toEqual([]);
    s.releaseHeld();
  });
});
