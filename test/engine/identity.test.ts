/**
 * The engine keys every decision on the canonical disk: on the simulator a disk answers to its
 * target (vda) and to its active image's path, and both spellings see the same job.
 */
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { demoDisk } from '../../adapters/sim/default-domain.js';
import { DEST, engineOnSim } from './harness.js';

const SNAP2 = '/var/lib/blockcopy/snap2.qcow2';
const SNAP1 = '/var/lib/blockcopy/snap1.qcow2';

describe('engine: one disk, every spelling', () => {
  it('a job started by source path is the job of vda for every call', async () => {
    const { engine, sim, until, settle } = engineOnSim();
    const job = (await engine.blockRebase('demo', SNAP2, DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    expect(job.disk).toBe('vda');
    expect(job.jobId).toMatch(/^copy-vda-[0-9a-f]{8}$/);
    expect(job.plan.disk).toBe('vda');
    // The other spelling is busy, in the dry run and in the real run, and nothing is created.
    const other = '/var/lib/blockcopy/other.qcow2';
    const busy = { code: 'VIR_ERR_BLOCK_COPY_ACTIVE', number: 83, detail: "disk 'vda' already in active block job" };
    expect((await engine.planRebase('demo', 'vda', other, 0, RebaseFlags.COPY))._unsafeUnwrapErr()).toMatchObject(busy);
    expect((await engine.blockRebase('demo', 'vda', other, 0, RebaseFlags.COPY))._unsafeUnwrapErr()).toMatchObject(
      busy,
    );
    expect((await sim.probeDestination(other))._unsafeUnwrap()).toEqual({ exists: false });
    expect(engine.job('demo', 'vda')?.jobId).toBe(job.jobId);
    expect(engine.job('demo', SNAP2)?.jobId).toBe(job.jobId);
    expect((await engine.checkDomainOperation('demo', 'detach', 'vda'))._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      detail: "disk 'vda' is in an active block copy job",
    });
    await until(job, 'ready');
    expect((await engine.getBlockJobInfo('demo', 'vda', 0))._unsafeUnwrap()).not.toBeNull();
    expect((await engine.blockJobSetSpeed('demo', 'vda', 1, 0)).isOk()).toBe(true);
    const pivot = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
    expect((await settle(job)).pivoted).toBe(true);
    expect((await pivot).isOk()).toBe(true);
  });

  it('refuses a backing image and an unknown name with the names that work, touching nothing', async () => {
    const { engine, sim } = engineOnSim();
    for (const call of [
      () => engine.blockRebase('demo', SNAP1, DEST, 0, RebaseFlags.COPY),
      () => engine.planRebase('demo', SNAP1, DEST, 0, RebaseFlags.COPY),
    ])
      expect((await call())._unsafeUnwrapErr()).toMatchObject({
        code: 'VIR_ERR_INVALID_ARG',
        number: 8,
        detail: `disk '${SNAP1}' not found in domain ('${SNAP1}' is a backing image of disk 'vda', not a disk); names that work: vda, ${SNAP2}`,
      });
    expect((await engine.getBlockJobInfo('demo', 'snap1', 0))._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_INVALID_ARG',
      detail: `disk 'snap1' not found in domain; names that work: vda, ${SNAP2}`,
    });
    expect((await engine.blockJobAbort('demo', 'snap1', 0))._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_INVALID_ARG',
    });
    // A real disk without a job: libvirt's "no active block job", and info null.
    expect((await engine.blockJobAbort('demo', SNAP2, 0))._unsafeUnwrapErr()).toMatchObject({
      detail: 'disk vda does not have an active block job',
    });
    expect((await engine.getBlockJobInfo('demo', SNAP2, 0))._unsafeUnwrap()).toBeNull();
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
    expect(sim.listJobs()).toEqual([]);
  });

  it('sanitizes the default job id of a canonical name QEMU would refuse', async () => {
    const { engine } = engineOnSim({ domains: [{ name: 'odd', disks: [demoDisk('disk#1', '/img')] }] });
    const job = (await engine.blockRebase('odd', 'disk#1', '/img/b.qcow2', 0, RebaseFlags.COPY))._unsafeUnwrap();
    expect(job.jobId).toMatch(/^copy-disk_1-[0-9a-f]{8}$/);
  });
});
