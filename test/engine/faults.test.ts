/** The engine through the public API on a faulty simulated hypervisor. */
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { DEST, engineOnSim } from './harness.js';

describe('engine on the simulator: faults', () => {
  it('makes up every lost event by polling', async () => {
    const { engine, sim, events, until, settle } = engineOnSim();
    sim.setEventLoss(1);
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await until(job, 'ready');
    await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    const result = await settle(job);
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true });
    expect(events.map((e) => e.status)).toEqual(['READY', 'COMPLETED']);
  });

  it('duplicated events change nothing: one READY, one COMPLETED', async () => {
    const { engine, sim, events, until, settle } = engineOnSim();
    sim.setEventDuplication(1);
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await until(job, 'ready');
    await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    await settle(job);
    expect(events.map((e) => e.status)).toEqual(['READY', 'COMPLETED']);
  });

  it('a target I/O error under report fails the job with QEMU text and removes the created destination', async () => {
    const { engine, sim, events, settle } = engineOnSim();
    sim.injectTargetError({ errno: 'EIO', once: true });
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    const result = await settle(job);
    expect(result.outcome).toBe('failed');
    expect(result.error?.message).toContain('Input/output error');
    expect(events.map((e) => e.status)).toEqual(['FAILED']);
    expect((await sim.probeDestination(DEST))._unsafeUnwrap()).toEqual({ exists: false });
  });

  it('a target error under stop pauses the job; resume retries and it becomes ready', async () => {
    const { engine, sim, until, settle } = engineOnSim();
    sim.injectTargetError({ errno: 'EIO', once: true });
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY, { onTargetError: 'stop' })
    )._unsafeUnwrap();
    await until(job, 'mirroring.errorPaused');
    expect((await engine.blockJobResume('demo', 'vda')).isOk()).toBe(true);
    await until(job, 'ready');
    await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    expect((await settle(job)).outcome).toBe('completed');
    expect(job.states()).toContain('mirroring.errorPaused');
  });

  it('ENOSPC under enospc stops the job; a force abort ends it', async () => {
    const { engine, sim, until, settle } = engineOnSim();
    sim.injectTargetError({ errno: 'ENOSPC', once: false });
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY, { onTargetError: 'enospc' })
    )._unsafeUnwrap();
    await until(job, 'mirroring.errorPaused');
    await engine.blockJobAbort('demo', 'vda', AbortFlags.ASYNC);
    expect((await settle(job)).outcome).toBe('canceled');
  });

  it('the hypervisor killed mid-job fails the job', async () => {
    const { engine, sim, clock, events, settle } = engineOnSim({ copyRate: 16 * 1024 * 1024 });
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await clock.advance(300);
    sim.kill();
    const result = await settle(job);
    expect(result.outcome).toBe('failed');
    expect(result.error?.code).toBe('VIR_ERR_OPERATION_FAILED');
    expect(events.map((e) => e.status)).toEqual(['FAILED']);
  });

  it('a job that became ready while disconnected is found ready after the reconnect', async () => {
    const { engine, sim, clock, until, settle } = engineOnSim({ copyRate: 64 * 1024 * 1024 });
    const job = (await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY))._unsafeUnwrap();
    await clock.advance(200);
    sim.disconnect();
    await clock.advance(60_000);
    expect(job.state()).toBe('mirroring.running');
    sim.reconnect();
    await until(job, 'ready');
    await engine.blockJobAbort('demo', 'vda', AbortFlags.PIVOT | AbortFlags.ASYNC);
    expect((await settle(job)).outcome).toBe('completed');
  });

  it('never removes a reused destination', async () => {
    const { engine, sim, settle } = engineOnSim({
      images: [{ path: DEST, format: 'qcow2', virtualSize: 1024 ** 3, allocated: 0 }],
    });
    sim.injectTargetError({ errno: 'EIO', once: true });
    const job = (
      await engine.blockRebase('demo', 'vda', DEST, 0, RebaseFlags.COPY | RebaseFlags.REUSE_EXT)
    )._unsafeUnwrap();
    expect(job.plan.destinationAction).toBe('reuse');
    expect((await settle(job)).outcome).toBe('failed');
    expect((await sim.probeDestination(DEST))._unsafeUnwrap().exists).toBe(true);
  });
});
