/** Whole copies through the public API on the simulator: outcomes, events, refusals, job info. */
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { DEST, engineOnSim } from './harness.js';
import { PIVOTED_STATES } from '../states.js';

describe('engine on the simulator: a whole copy', () => {
  it('copies, becomes ready, pivots, confirms and reports COMPLETED once', async () => {
    const { engine, sim, events, until, settle } = engineOnSim();
    const started = await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
    const job = started._unsafeUnwrap();
    expect(job.plan).toMatchObject({
      sync: 'full',
      destinationAction: 'create',
      destination: { path: DEST, format: 'qcow2' },
    });
    await until(job, 'ready');
    expect(events.map((e) => e.status)).toEqual(['READY']);
    // Synchronous: it returns only once the job has ended, so time must move meanwhile.
    const pivot = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
    const result = await settle(job);
    expect((await pivot).isOk()).toBe(true);
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true, destinationConsistent: true, error: null });
    expect(result.states).toEqual([...PIVOTED_STATES]);
    expect(events.map((e) => e.status)).toEqual(['READY', 'COMPLETED']);
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe(DEST);
    // The job is gone: libvirt's getBlockJobInfo returns 0.
    expect((await engine.getBlockJobInfo('demo', 'vda', 0))._unsafeUnwrap()).toBeNull();
    expect(sim.listJobs()).toEqual([]);
  });

  it('refuses a pivot before ready without reaching the hypervisor', async () => {
    const { engine, sim, clock } = engineOnSim({ copyRate: 16 * 1024 * 1024 });
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await clock.advance(1000);
    expect(job.state()).toBe('mirroring.running');
    const early = await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT);
    expect(early._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      number: 83,
      message: "block copy still active: block job 'vda' not ready for pivot yet",
    });
    expect(sim.listJobs()[0]?.status).toBe('running');
    expect(job.state()).toBe('mirroring.running');
  });

  it('refuses a second job on the same disk and a request for a missing disk, changing nothing', async () => {
    const { engine, sim } = engineOnSim();
    await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY);
    const second = await engine.blockRebase('demo', 'vda', '/var/lib/blockcopy/other.qcow2', 0, RebaseFlags.COPY);
    expect(second._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      detail: "disk 'vda' already in active block job",
    });
    const missing = await engine.blockRebase('demo', 'vdz', '/var/lib/blockcopy/z.qcow2', 0, RebaseFlags.COPY);
    expect(missing._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_INVALID_ARG',
      detail: "disk 'vdz' not found in domain; names that work: vda, /var/lib/blockcopy/snap2.qcow2",
    });
    expect((await sim.probeDestination('/var/lib/blockcopy/other.qcow2'))._unsafeUnwrap()).toEqual({ exists: false });
    expect((await sim.probeDestination('/var/lib/blockcopy/z.qcow2'))._unsafeUnwrap()).toEqual({ exists: false });
    expect(sim.listJobs()).toHaveLength(1);
  });

  it('refuses bad flags before touching anything', async () => {
    const { engine, sim } = engineOnSim();
    const bad = await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.SHALLOW);
    expect(bad._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_INVALID_ARG',
      message: 'invalid argument: use of flags requires a copy job',
    });
    const relative = await engine.blockRebase('demo', 'vda', 'copy.qcow2', 0, RebaseFlags.COPY);
    expect(relative._unsafeUnwrapErr().detail).toBe('absolute path must be used as block copy target');
    expect(sim.listJobs()).toEqual([]);
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
  });

  it('shallow copy keeps the backing chain below the top', async () => {
    const { engine, sim, until, settle } = engineOnSim();
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY | RebaseFlags.SHALLOW)
    )._unsafeUnwrap();
    expect(job.plan.sync).toBe('top');
    expect(job.plan.backing?.path).toBe('/var/lib/blockcopy/snap1.qcow2');
    await until(job, 'ready');
    await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    expect((await settle(job)).outcome).toBe('completed');
    const disk = (await sim.describeDisk('demo', 'vda'))._unsafeUnwrap();
    expect(disk?.chain.map((i) => i.path)).toEqual([
      DEST,
      '/var/lib/blockcopy/snap1.qcow2',
      '/var/lib/blockcopy/base.qcow2',
    ]);
  });

  it('soft abort after ready: CANCELED with a consistent copy that is kept', async () => {
    const { engine, sim, events, until, settle } = engineOnSim();
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await until(job, 'ready');
    const abort = engine.blockJobAbort('demo', 'vda', 0);
    const result = await settle(job);
    expect((await abort).isOk()).toBe(true);
    expect(result).toMatchObject({ outcome: 'canceled', pivoted: false, destinationConsistent: true });
    expect(events.map((e) => e.status)).toEqual(['READY', 'CANCELED']);
    expect((await sim.activeImage('demo', 'vda'))._unsafeUnwrap()).toBe('/var/lib/blockcopy/snap2.qcow2');
    expect((await sim.probeDestination(DEST))._unsafeUnwrap().exists).toBe(true);
  });

  it('abort before ready: CANCELED, the partial destination it created is removed', async () => {
    const { engine, sim, clock, events, settle } = engineOnSim({ copyRate: 16 * 1024 * 1024 });
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await clock.advance(500);
    await engine.blockJobAbort('demo', 'vda', AbortFlags.ASYNC);
    const result = await settle(job);
    expect(result).toMatchObject({ outcome: 'canceled', destinationConsistent: false });
    expect(events.map((e) => e.status)).toEqual(['CANCELED']);
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
  });

  it('a synchronous abort waits until the job has ended', async () => {
    const { engine, clock } = engineOnSim({ copyRate: 16 * 1024 * 1024 });
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await clock.advance(300);
    let returned = false;
    const abort = engine.blockJobAbort('demo', 'vda', 0).map(() => (returned = true));
    await clock.runUntil(() => returned, 60_000, 10);
    expect(returned).toBe(true);
    expect(['canceled']).toContain((await job.result).outcome);
    expect((await abort).isOk()).toBe(true);
  });

  it('a second end request while one is in flight is refused', async () => {
    const { engine, until } = engineOnSim();
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await until(job, 'ready');
    const first = engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    const second = await engine.blockJobAbort('demo', 'vda', 0);
    expect(second._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_OPERATION_INVALID',
      detail: "block job on disk 'vda' is still being ended",
    });
    expect((await first).isOk()).toBe(true);
  });

  it('reports job info with libvirt quirks while mirroring', async () => {
    const { engine, clock, sim } = engineOnSim({ copyRate: 64 * 1024 * 1024 });
    const job = (await engine.blockRebase('demo', 'vda', DEST, 3, RebaseFlags.COPY))._unsafeUnwrap();
    await clock.advance(1000);
    const info = (await engine.getBlockJobInfo('demo', 'vda', 0))._unsafeUnwrap();
    expect(info?.type).toBe(2);
    expect(info?.bandwidth).toBe(3);
    expect(info!.cur).toBeGreaterThan(0);
    expect(info!.cur).toBeLessThan(info!.end);
    const raw = (await sim.queryJob(job.jobId))._unsafeUnwrap();
    expect(raw?.ready).toBe(false);
    expect((await engine.blockJobSetSpeed('demo', 'vda', 0, 0)).isOk()).toBe(true);
    expect((await sim.queryJob(job.jobId))._unsafeUnwrap()?.speed).toBe(0);
  });
});
