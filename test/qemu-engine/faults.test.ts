/**
 * The engine's public API on a real qemu-storage-daemon when things go wrong: target I/O errors
 * injected with blkdebug under each policy, ENOSPC, the daemon killed mid-job, and the QMP
 * connection dropped and restored while READY happens out of sight.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { IoErrorPolicy } from '../../src/core/hypervisor-port.js';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import type { QmpEvent } from '../../adapters/qmp/client.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { Recorder, useQemu, type BlkdebugRule, type QemuFixture } from '../qemu/harness.js';
import { engineOn, whenReady, whenState, type EngineOnQemu } from './helpers.js';

const qemu = useQemu();
const { COPY, REUSE_EXT } = RebaseFlags;

/** A reused empty qcow2 destination behind blkdebug, attached under the job's node names. */
async function faultyCopy(fx: QemuFixture, jobId: string, policy: IoErrorPolicy, rule: BlkdebugRule) {
  const e: EngineOnQemu = await engineOn(fx, {}, { jobId });
  const dest = await fx.createImage('dst.qcow2', 'qcow2');
  const names = targetNodeNames(jobId);
  await fx.attachBlkdebugTarget({
    formatNode: names.format,
    fileNode: names.file,
    path: dest,
    format: 'qcow2',
    rules: [rule],
  });
  const started = await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY | REUSE_EXT, { onTargetError: policy });
  if (started.isErr()) throw new Error(JSON.stringify(started.error));
  return { e, job: started.value, dest };
}

const EIO_ONCE: BlkdebugRule = { event: 'write_aio', errno: 5, once: true };

describe('engine on QEMU: faults', () => {
  it('target error, report: FAILED with "Input/output error"; the guest stays on snap2', async () => {
    const fx = qemu();
    const { e, job } = await faultyCopy(fx, 'rep', 'report', EIO_ONCE);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'failed', pivoted: false });
    expect(result.error?.message).toContain('Input/output error');
    expect((await e.hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
    expect(await fx.cmd('query-jobs')).toEqual([]);
  });

  it('target error, stop: errorPaused, blockJobResume, ready, pivot', async () => {
    const fx = qemu();
    const { e, job, dest } = await faultyCopy(fx, 'stp', 'stop', EIO_ONCE);
    await whenState(job, 'mirroring.errorPaused');
    expect((await e.engine.blockJobResume('qemu', 'vda')).isOk()).toBe(true);
    await whenReady(job);
    expect((await e.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
    expect(result.states).toContain('mirroring.errorPaused');
    expect((await e.hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(dest);
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  });

  it('target error, ignore: the job retries the region and completes', async () => {
    const fx = qemu();
    const { e, job, dest } = await faultyCopy(fx, 'ign', 'ignore', EIO_ONCE);
    await whenReady(job);
    expect((await e.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
    expect(result.states).not.toContain('mirroring.errorPaused');
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
  });

  it('ENOSPC (blkdebug errno 28), enospc policy: errorPaused; a forced abort ends it', async () => {
    const fx = qemu();
    const { e, job } = await faultyCopy(fx, 'nos', 'enospc', { event: 'write_aio', errno: 28, once: false });
    await whenState(job, 'mirroring.errorPaused');
    expect((await e.hv.queryJob('nos'))._unsafeUnwrap()).toMatchObject({ paused: true, ioStatus: 'nospace' });
    expect((await e.engine.blockJobAbort('qemu', 'vda', 0, { force: true })).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'canceled', pivoted: false });
    expect(await fx.cmd('query-jobs')).toEqual([]);
  });

  it('the daemon killed mid-job: FAILED, no hang', async () => {
    const fx = qemu();
    const e = await engineOn(fx, { reconnect: { attempts: 3, delayMs: 50 } });
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 1, COPY))._unsafeUnwrap();
    await whenState(job, 'mirroring');
    const t0 = Date.now();
    await fx.kill();
    const result = await job.result;
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(result).toMatchObject({ outcome: 'failed', pivoted: false });
    expect(result.error).not.toBeNull();
    expect(e.engine.jobs()).toEqual([]);
  });

  it('the QMP connection dropped and restored: READY missed meanwhile is found by polling; the pivot completes', async () => {
    const fx = qemu();
    const proxy = await fx.proxy();
    const e = await engineOn(fx, { socket: proxy.path, reconnect: { attempts: 50, delayMs: 50 } }, { jobId: 'rc' });
    const seen = new Recorder<QmpEvent>(fx.qmp.events$);
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 1, COPY))._unsafeUnwrap();
    await whenState(job, 'mirroring');
    proxy.hold();
    proxy.drop();
    // While the engine is cut off, the job becomes READY (seen only by the harness's monitor).
    await fx.cmd('block-job-set-speed', { device: 'rc', speed: 0 });
    await seen.waitFor((ev) => ev.event === 'BLOCK_JOB_READY');
    await new Promise((r) => setTimeout(r, 300));
    expect(job.state().startsWith('ready')).toBe(false);
    proxy.release();
    await whenReady(job, 10_000);
    expect((await e.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    const result = await job.result;
    expect(result).toMatchObject({ outcome: 'completed', pivoted: true });
    expect(await fx.compareWithChain(dest, 'qcow2')).toMatchObject({ identical: true });
    seen.stop();
  });
});
