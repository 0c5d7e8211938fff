/**
 * Adoption of a mirror job blockcopy did not start (here: started on the simulator directly, as
 * another tool would), with libvirt's rules: pivot refused before ready, accepted after; the
 * destination, not the engine's, is never removed; other jobs and a missing job are refused.
 */
import { describe, expect, it } from 'vitest';
import { MemoryJobStore } from '../../adapters/store/memory.js';
import { AbortFlags } from '../../src/core/flags.js';
import { DEST, engineOnSim } from './harness.js';

const foreignMirror = {
  jobId: 'foreign-1',
  domain: 'demo',
  disk: 'vda',
  destination: { path: DEST, format: 'qcow2' as const },
  destinationBacking: null,
  sync: 'full' as const,
  speed: 0,
  onTargetError: 'report' as const,
  onSourceError: 'report' as const,
  copyMode: 'background' as const,
};

describe('adopting a foreign mirror job', () => {
  it('pivots only when ready, then the guest reads the copy, which stays', async () => {
    const store = new MemoryJobStore();
    const { engine, sim, clock, settle } = engineOnSim({ copyRate: 64 * 1024 * 1024 }, { store });
    (
      await sim.createDestination({ path: DEST, format: 'qcow2', virtualSize: 1024 ** 3, backing: null })
    )._unsafeUnwrap();
    (await sim.startMirror(foreignMirror))._unsafeUnwrap();
    expect(engine.job('demo', 'vda')).toBeUndefined();
    const job = (await engine.adopt('demo', 'vda'))._unsafeUnwrap();
    expect(job).toMatchObject({ jobId: 'foreign-1', origin: 'recovered' });
    expect(job.state()).toBe('mirroring.running');
    expect((await store.load('foreign-1'))._unsafeUnwrap()).toMatchObject({ origin: 'adopted' });
    const early = await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
    expect(early._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_BLOCK_COPY_ACTIVE' });
    await clock.runUntil(() => job.state().startsWith('ready'), 600_000, 50);
    const pivot = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
    const result = await settle(job);
    expect((await pivot).isOk()).toBe(true);
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true });
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
    expect(sim.images.get(DEST)).toBeDefined();
    expect(sim.listJobs()).toEqual([]);
  });

  it('an abort of an adopted job keeps the destination the engine did not create', async () => {
    const { engine, sim, settle } = engineOnSim({ copyRate: 16 * 1024 * 1024 });
    (
      await sim.createDestination({ path: DEST, format: 'qcow2', virtualSize: 1024 ** 3, backing: null })
    )._unsafeUnwrap();
    (await sim.startMirror(foreignMirror))._unsafeUnwrap();
    const job = (await engine.adopt('demo', 'vda'))._unsafeUnwrap();
    const abort = engine.blockJobAbort('demo', 'vda', 0);
    expect(await settle(job)).toMatchObject({ outcome: 'canceled', pivoted: false });
    expect((await abort).isOk()).toBe(true);
    expect(sim.images.get(DEST)).toBeDefined();
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).not.toBe(DEST);
  });

  it.each([
    ['a domain that does not exist', 'vda', 'nodomain', 'VIR_ERR_NO_DOMAIN'],
    ['a disk without a job', 'vda', 'demo', 'VIR_ERR_INVALID_ARG'],
    ['a disk that does not exist', 'vdz', 'demo', 'VIR_ERR_INVALID_ARG'],
  ])('refuses %s (%s on %s)', async (_what, disk, domain, code) => {
    const { engine, sim } = engineOnSim();
    const r = await engine.adopt(domain, disk);
    expect(r._unsafeUnwrapErr().code).toBe(code);
    expect(sim.listJobs()).toEqual([]);
  });
});
