/**
 * Target I/O errors injected with blkdebug under each on-target-error policy (report, stop,
 * ignore, enospc), against a real qemu-storage-daemon. The harness attaches the destination with
 * a blkdebug layer under the node names the adapter derives for the job; startMirror adopts it.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HypervisorEvent, IoErrorPolicy } from '../../src/core/hypervisor-port.js';
import { targetNodeNames, type QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { CHAIN_SIZE, useQemu, type BlkdebugRule, type QemuFixture, type Recorder } from './harness.js';

const qemu = useQemu();

const EIO_ONCE: BlkdebugRule = { event: 'write_aio', errno: 5, once: true };

async function startWithFaultyTarget(
  fx: QemuFixture,
  jobId: string,
  policy: IoErrorPolicy,
  rule: BlkdebugRule,
): Promise<{ hv: QemuHypervisor; events: Recorder<HypervisorEvent>; dst: string }> {
  const { hv, events } = await fx.adapter();
  const dst = join(fx.dir, 'dst.qcow2');
  expect(
    (await hv.createDestination({ path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null })).isOk(),
  ).toBe(true);
  const names = targetNodeNames(jobId);
  await fx.attachBlkdebugTarget({
    formatNode: names.format,
    fileNode: names.file,
    path: dst,
    format: 'qcow2',
    rules: [rule],
  });
  expect((await hv.startMirror(fx.mirrorSpec(jobId, dst, { onTargetError: policy }))).isOk()).toBe(true);
  return { hv, events, dst };
}

const kinds = (items: HypervisorEvent[]) =>
  items.flatMap((e) =>
    e.kind === 'job-status'
      ? [e.status]
      : e.kind === 'job-error'
        ? [`error:${e.action}`]
        : 'jobId' in e
          ? [e.kind]
          : [],
  );

describe('QemuHypervisor: target I/O errors (blkdebug)', () => {
  it('report: BLOCK_JOB_ERROR, then COMPLETED with the error; the error stays readable until dismiss', async () => {
    const fx = qemu();
    const { hv, events } = await startWithFaultyTarget(fx, 'rep', 'report', EIO_ONCE);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect(events.items.find((e) => e.kind === 'job-error')).toEqual({
      kind: 'job-error',
      jobId: 'rep',
      operation: 'write',
      action: 'report',
    });
    expect(events.items.find((e) => e.kind === 'job-completed')).toMatchObject({ error: 'Input/output error' });
    expect(kinds(events.items)).toEqual([
      'created',
      'running',
      'error:report',
      'aborting',
      'job-completed',
      'concluded',
    ]);
    expect((await hv.queryJob('rep'))._unsafeUnwrap()).toMatchObject({
      status: 'concluded',
      error: 'Input/output error',
    });
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
    expect((await hv.dismissJob('rep')).isOk()).toBe(true);
    const nodes = await fx.cmd<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true });
    expect(nodes.map((n) => n['node-name']).filter((n) => n.startsWith('rep-'))).toEqual([]);
  });

  it('stop: the job pauses with io-status failed; resume retries and reaches READY; the pivot is clean', async () => {
    const fx = qemu();
    const { hv, events, dst } = await startWithFaultyTarget(fx, 'stp', 'stop', EIO_ONCE);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'paused');
    expect(events.items.find((e) => e.kind === 'job-error')).toMatchObject({ operation: 'write', action: 'stop' });
    expect((await hv.queryJob('stp'))._unsafeUnwrap()).toMatchObject({
      status: 'paused',
      paused: true,
      ioStatus: 'failed',
    });
    expect((await hv.resumeJob('stp')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-ready');
    expect((await hv.queryJob('stp'))._unsafeUnwrap()).toMatchObject({ status: 'ready', ioStatus: 'ok' });
    expect((await hv.completeJob('stp')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(dst);
    expect((await hv.dismissJob('stp')).isOk()).toBe(true);
    await fx.stop();
    expect(await fx.compareWithChain(dst, 'qcow2')).toMatchObject({ identical: true });
  });

  it('stop with a persistent error: errors again after resume; only a forced cancel ends it', async () => {
    const fx = qemu();
    const rule: BlkdebugRule = { event: 'write_aio', errno: 5, sector: 2048, once: false };
    const { hv, events } = await startWithFaultyTarget(fx, 'per', 'stop', rule);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'paused');
    const firstErrors = events.items.filter((e) => e.kind === 'job-error').length;
    const mark = events.items.length;
    expect((await hv.resumeJob('per')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'paused', 30_000, mark);
    expect(events.items.filter((e) => e.kind === 'job-error').length).toBeGreaterThan(firstErrors);
    expect((await hv.completeJob('per'))._unsafeUnwrapErr().desc).toBe(
      "Job 'per' in state 'paused' cannot accept command verb 'complete'",
    );
    // §0.8: a soft cancel of an error-paused job is refused.
    expect((await hv.cancelJob('per', false))._unsafeUnwrapErr()).toMatchObject({
      kind: 'qmp',
      desc: "The block job for device 'per' is currently paused",
    });
    expect((await hv.cancelJob('per', true)).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-cancelled');
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
    expect((await hv.dismissJob('per')).isOk()).toBe(true);
  });

  it('ignore: the error is only an event; the region is retried and the copy is complete', async () => {
    const fx = qemu();
    const { hv, events, dst } = await startWithFaultyTarget(fx, 'ign', 'ignore', EIO_ONCE);
    await events.waitFor((e) => e.kind === 'job-ready');
    expect(kinds(events.items)).toEqual(['created', 'running', 'error:ignore', 'ready', 'job-ready']);
    expect((await hv.cancelJob('ign', false)).isOk()).toBe(true); // soft: keep the guest on snap2
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect((await hv.dismissJob('ign')).isOk()).toBe(true);
    await fx.stop();
    expect(await fx.compareWithChain(dst, 'qcow2')).toMatchObject({ identical: true });
  });

  it('enospc: ENOSPC stops the job with io-status nospace; resume finishes it', async () => {
    const fx = qemu();
    const { hv, events } = await startWithFaultyTarget(fx, 'nos', 'enospc', {
      event: 'write_aio',
      errno: 28,
      once: true,
    });
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'paused');
    expect(events.items.find((e) => e.kind === 'job-error')).toMatchObject({ action: 'stop' });
    expect((await hv.queryJob('nos'))._unsafeUnwrap()).toMatchObject({ status: 'paused', ioStatus: 'nospace' });
    expect((await hv.resumeJob('nos')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-ready');
    expect((await hv.queryJob('nos'))._unsafeUnwrap()).toMatchObject({ ready: true, ioStatus: 'ok' });
  });

  it('a destination of the wrong size is accepted by blockdev-mirror and fails the job at once (§0.13)', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = join(fx.dir, 'small.qcow2');
    const half = CHAIN_SIZE / 2;
    expect((await hv.createDestination({ path: dst, format: 'qcow2', virtualSize: half, backing: null })).isOk()).toBe(
      true,
    );
    expect((await hv.startMirror(fx.mirrorSpec('size', dst))).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect(events.items.find((e) => e.kind === 'job-completed')).toMatchObject({
      error: 'Source and target image have different sizes',
    });
    expect((await hv.queryJob('size'))._unsafeUnwrap()).toMatchObject({
      status: 'concluded',
      error: 'Source and target image have different sizes',
    });
    expect((await hv.dismissJob('size')).isOk()).toBe(true);
    expect((await hv.removeDestination(dst)).isOk()).toBe(true);
  });

  it('enospc policy with another errno (EIO) reports instead of stopping', async () => {
    const fx = qemu();
    const { hv, events } = await startWithFaultyTarget(fx, 'nos2', 'enospc', EIO_ONCE);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect(events.items.find((e) => e.kind === 'job-error')).toMatchObject({ action: 'report' });
    expect((await hv.queryJob('nos2'))._unsafeUnwrap()).toMatchObject({ error: 'Input/output error' });
  });
});
