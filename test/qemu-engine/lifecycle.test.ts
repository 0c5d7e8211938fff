/**
 * The engine's public API on a real qemu-storage-daemon: abort after and before ready, a pivot
 * before ready refused without reaching QEMU, a second job on the disk refused, and guest writes
 * during the mirror that end up in the destination.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { MiB, useQemu } from '../qemu/harness.js';
import { engineOn, whenReady, whenState } from './helpers.js';

const qemu = useQemu();
const { COPY } = RebaseFlags;

describe('engine on QEMU: pivot, abort and refusals', () => {
  it('abort after ready (soft): CANCELED with a consistent copy kept; the guest stays on snap2', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY))._unsafeUnwrap();
    await whenReady(job);
    expect((await e.engine.blockJobAbort('qemu', 'vda', 0)).isOk()).toBe(true);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'canceled', pivoted: false, destinationConsistent: true, error: null });
    expect(e.calls.get('completeJob')).toBeUndefined();
    expect(existsSync(dest)).toBe(true);
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
    expect((await e.hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
    expect(await fx.exportNode()).toBe('snap2');
    // A guest write still goes to snap2, not to the copy.
    await fx.guestWrite(0x66, 0, MiB);
    await fx.stop();
    expect(await fx.verifyImage(fx.paths.snap2, 'qcow2', [{ pattern: 0x66, offset: 0, len: MiB }])).toEqual([]);
    expect(await fx.verifyImage(dest, 'qcow2', [{ pattern: 0x11, offset: 0, len: MiB }])).toEqual([]);
  });

  it('abort before ready: CANCELED, and the destination the engine created is removed', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 1, COPY))._unsafeUnwrap();
    await whenState(job, 'mirroring');
    expect(existsSync(dest)).toBe(true);
    expect((await e.engine.blockJobAbort('qemu', 'vda', 0)).isOk()).toBe(true);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'canceled', pivoted: false, destinationConsistent: false });
    expect(result.states.some((s) => s.startsWith('ready'))).toBe(false);
    expect(existsSync(dest)).toBe(false);
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect(await fx.exportNode()).toBe('snap2');
  });

  it('pivot before ready: refused by the engine (BLOCK_COPY_ACTIVE) without a block-job-complete', async () => {
    const fx = qemu();
    const e = await engineOn(fx, {}, { jobId: 'early' });
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 1, COPY))._unsafeUnwrap();
    await whenState(job, 'mirroring');
    const r = await e.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT);
    expect(r._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      message: expect.stringContaining("block job 'vda' not ready for pivot yet") as unknown,
    });
    expect(e.calls.get('completeJob')).toBeUndefined();
    expect(job.state()).toBe('mirroring.running');
    const jobs = await fx.cmd<{ id: string; status: string }[]>('query-jobs');
    expect(jobs).toMatchObject([{ id: 'early', status: 'running' }]);
    // The job goes on and can still be pivoted once ready.
    expect((await e.engine.blockJobSetSpeed('qemu', 'vda', 0, 0)).isOk()).toBe(true);
    await whenReady(job);
    expect((await e.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'completed', pivoted: true });
    expect(e.calls.get('completeJob')).toBe(1);
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  });

  it('a second job on the same disk is refused; the first goes on', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const other = join(fx.dir, 'other.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 1, COPY))._unsafeUnwrap();
    await whenState(job, 'mirroring');
    const r = await e.engine.blockRebase('qemu', 'vda', other, 0, COPY);
    expect(r._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_BLOCK_COPY_ACTIVE' });
    expect(existsSync(other)).toBe(false);
    expect(e.calls.get('startMirror')).toBe(1);
    expect((await fx.cmd<unknown[]>('query-jobs')).length).toBe(1);
    expect(job.state()).toBe('mirroring.running');
    expect((await e.engine.blockJobAbort('qemu', 'vda', 0)).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'canceled' });
  });

  it('guest writes via qemu-io on nbd+unix during the mirror (and after ready) end up in the destination', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 4, COPY))._unsafeUnwrap();
    await whenState(job, 'mirroring');
    const writes = [
      { pattern: 0xa1, offset: 2 * MiB, len: MiB },
      { pattern: 0xa2, offset: 30 * MiB, len: 2 * MiB },
      { pattern: 0xa3, offset: 60 * MiB, len: MiB },
    ];
    for (const w of writes) await fx.guestWrite(w.pattern, w.offset, w.len);
    expect(job.state()).toBe('mirroring.running');
    expect((await e.engine.blockJobSetSpeed('qemu', 'vda', 0, 0)).isOk()).toBe(true);
    await whenReady(job);
    const late = { pattern: 0xa4, offset: 45 * MiB, len: MiB };
    await fx.guestWrite(late.pattern, late.offset, late.len);
    expect((await e.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'completed', pivoted: true });
    expect(await fx.guestVerify([...writes, late])).toEqual([]);
    await fx.stop();
    expect(await fx.verifyImage(dest, 'qcow2', [...writes, late])).toEqual([]);
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  });
});
