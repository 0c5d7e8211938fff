/**
 * QemuHypervisor job control against a real qemu-storage-daemon: cancel before READY (hard),
 * cancel after READY (soft: completes without pivot), refusals with QEMU's exact texts,
 * pause/resume/speed, adopting an interrupted start, and guest writes while mirroring.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HypervisorEvent } from '../../src/core/hypervisor-port.js';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { CHAIN_SIZE, EXPECTED, MiB, pollUntil, useQemu, type QemuFixture, type Region } from './harness.js';

const qemu = useQemu();

const SLOW = MiB; // bytes/s: a 64 MiB copy stays running for the whole test

async function newDestination(fx: QemuFixture, hv: Awaited<ReturnType<QemuFixture['adapter']>>['hv'], name: string) {
  const path = join(fx.dir, name);
  const r = await hv.createDestination({ path, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null });
  expect(r.isOk()).toBe(true);
  return path;
}

const kinds = (items: HypervisorEvent[], jobId: string) =>
  items.flatMap((e) => ('jobId' in e && e.jobId === jobId ? [e.kind === 'job-status' ? e.status : e.kind] : []));

async function attachedNodes(fx: QemuFixture): Promise<string[]> {
  const nodes = await fx.cmd<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true });
  return nodes.map((n) => n['node-name']);
}

describe('QemuHypervisor: job control', () => {
  it('cancel before READY is a hard cancel: CANCELLED, no pivot; dismiss detaches the target', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = await newDestination(fx, hv, 'dst.qcow2');
    expect((await hv.startMirror(fx.mirrorSpec('c1', dst, { speed: SLOW }))).isOk()).toBe(true);
    const names = targetNodeNames('c1');
    expect(await attachedNodes(fx)).toEqual(expect.arrayContaining([names.format, names.file]));
    const running = (await hv.queryJob('c1'))._unsafeUnwrap();
    expect(running).toMatchObject({ status: 'running', ready: false, speed: SLOW, len: CHAIN_SIZE });
    expect(running?.offset).toBeLessThan(CHAIN_SIZE);

    expect((await hv.cancelJob('c1', false)).isOk()).toBe(true); // §0.4: force before READY anyway
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect(kinds(events.items, 'c1')).toEqual(['created', 'running', 'aborting', 'job-cancelled', 'concluded']);
    expect((await hv.queryJob('c1'))._unsafeUnwrap()).toMatchObject({
      status: 'concluded',
      error: 'Operation canceled',
    });
    expect((await hv.cancelJob('c1', false)).isOk()).toBe(true); // idempotent
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);

    expect((await hv.dismissJob('c1')).isOk()).toBe(true);
    expect((await hv.queryJob('c1'))._unsafeUnwrap()).toBeNull();
    expect(await attachedNodes(fx)).not.toEqual(expect.arrayContaining([names.file]));
    expect(await attachedNodes(fx)).not.toContain(names.format);
    expect((await hv.cancelJob('c1', true)).isOk()).toBe(true); // gone: nothing to cancel
    expect((await hv.removeDestination(dst)).isOk()).toBe(true);
    expect((await hv.probeDestination(dst))._unsafeUnwrap()).toEqual({ exists: false });
    expect(await fx.guestVerify(EXPECTED.slice(0, 2))).toEqual([]);
  });

  it('soft cancel after READY completes without a pivot and leaves a consistent copy', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = await newDestination(fx, hv, 'dst.qcow2');
    expect((await hv.startMirror(fx.mirrorSpec('soft', dst))).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-ready');
    await fx.guestWrite(0x55, 8 * MiB, 2 * MiB); // like e3: a late write must reach the copy
    expect((await hv.cancelJob('soft', false)).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    // §0.3: the same events as a pivot, and no CANCELLED.
    expect(kinds(events.items, 'soft')).toEqual([
      'created',
      'running',
      'ready',
      'job-ready',
      'waiting',
      'pending',
      'job-completed',
      'concluded',
    ]);
    const done = events.items.find((e) => e.kind === 'job-completed');
    expect(done).not.toHaveProperty('error');
    expect(done).toMatchObject({ len: CHAIN_SIZE + 2 * MiB, offset: CHAIN_SIZE + 2 * MiB });
    // The graph tells it apart: the guest is still on snap2.
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
    expect(await fx.exportNode()).toBe('snap2');
    expect((await hv.queryJob('soft'))._unsafeUnwrap()).toMatchObject({ status: 'concluded' });
    expect((await hv.queryJob('soft'))._unsafeUnwrap()).not.toHaveProperty('error');
    expect((await hv.cancelJob('soft', false)).isOk()).toBe(true); // idempotent
    expect((await hv.completeJob('soft'))._unsafeUnwrapErr()).toEqual({
      kind: 'qmp',
      errorClass: 'GenericError',
      command: 'block-job-complete',
      desc: "Job 'soft' in state 'concluded' cannot accept command verb 'complete'",
    });
    expect((await hv.dismissJob('soft')).isOk()).toBe(true);
    expect(await attachedNodes(fx)).not.toContain(targetNodeNames('soft').format);
    await fx.stop();
    expect(await fx.compareWithChain(dst, 'qcow2')).toMatchObject({ identical: true });
    expect(await fx.verifyImage(dst, 'qcow2', [{ pattern: 0x55, offset: 8 * MiB, len: 2 * MiB }])).toEqual([]);
  });

  it("refuses complete before READY and a second mirror on the disk with QEMU's own texts", async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = await newDestination(fx, hv, 'dst.qcow2');
    const dst2 = await newDestination(fx, hv, 'dst2.qcow2');
    expect((await hv.startMirror(fx.mirrorSpec('m1', dst, { speed: SLOW }))).isOk()).toBe(true);
    expect((await hv.completeJob('m1'))._unsafeUnwrapErr()).toEqual({
      kind: 'qmp',
      errorClass: 'GenericError',
      command: 'block-job-complete',
      desc: "Job 'm1' in state 'running' cannot accept command verb 'complete'",
    });
    // §6: the source sits under the mirror_top filter now, so it is no root node any more.
    const second = await hv.startMirror(fx.mirrorSpec('m2', dst2));
    expect(second._unsafeUnwrapErr()).toEqual({
      kind: 'qmp',
      errorClass: 'GenericError',
      command: 'blockdev-mirror',
      desc: 'Need a root block node',
    });
    const nodes = await attachedNodes(fx);
    expect(nodes).not.toContain(targetNodeNames('m2').format); // rolled back
    expect(nodes).not.toContain(targetNodeNames('m2').file);
    expect((await hv.queryJob('m2'))._unsafeUnwrap()).toBeNull();
    expect((await hv.completeJob('nope'))._unsafeUnwrapErr()).toMatchObject({
      errorClass: 'DeviceNotActive',
      desc: "Block job 'nope' not found",
    });

    // pause / resume / speed, each idempotent
    expect((await hv.pauseJob('m1')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'paused');
    expect((await hv.pauseJob('m1')).isOk()).toBe(true);
    expect((await hv.queryJob('m1'))._unsafeUnwrap()).toMatchObject({ status: 'paused', paused: true, ioStatus: 'ok' });
    expect((await hv.completeJob('m1'))._unsafeUnwrapErr().desc).toBe(
      "Job 'm1' in state 'paused' cannot accept command verb 'complete'",
    );
    expect((await hv.cancelJob('m1', false))._unsafeUnwrapErr().desc).toBe(
      "The block job for device 'm1' is currently paused",
    );
    expect((await hv.resumeJob('m1')).isOk()).toBe(true);
    expect((await hv.resumeJob('m1')).isOk()).toBe(true);
    expect((await hv.setJobSpeed('m1', 2 * MiB)).isOk()).toBe(true);
    expect((await hv.queryJob('m1'))._unsafeUnwrap()).toMatchObject({ status: 'running', speed: 2 * MiB });
    expect((await hv.setJobSpeed('m1', -1))._unsafeUnwrapErr().desc).toBe(
      "Parameter 'speed' expects a non-negative value",
    );
    expect((await hv.setJobSpeed('m1', 0)).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-ready');
    // §0.4: force after READY is a real cancel (no pivot, CANCELLED).
    expect((await hv.cancelJob('m1', true)).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-cancelled');
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect(events.items.some((e) => e.kind === 'job-completed')).toBe(false);
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
    expect((await hv.dismissJob('m1')).isOk()).toBe(true);
  });

  it('startMirror adopts target nodes left by an interrupted attempt, and refuses foreign ones', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = await newDestination(fx, hv, 'dst.qcow2');
    const other = await newDestination(fx, hv, 'other.qcow2');
    const names = targetNodeNames('adopt');
    // An earlier run attached the file node only, then died.
    await fx.cmd('blockdev-add', { driver: 'file', 'node-name': names.file, filename: dst });
    expect((await hv.startMirror(fx.mirrorSpec('adopt', dst))).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-ready');
    expect((await hv.cancelJob('adopt', true)).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect((await hv.dismissJob('adopt')).isOk()).toBe(true);

    // Both nodes present, but pointing at another file: refused, nothing started.
    const foreign = targetNodeNames('foreign');
    await fx.cmd('blockdev-add', { driver: 'file', 'node-name': foreign.file, filename: other });
    await fx.cmd('blockdev-add', { driver: 'qcow2', 'node-name': foreign.format, file: foreign.file, backing: null });
    const r = await hv.startMirror(fx.mirrorSpec('foreign', dst));
    expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'invalid', command: 'blockdev-mirror' });
    expect(r._unsafeUnwrapErr().desc).toContain(other);
    expect((await hv.queryJob('foreign'))._unsafeUnwrap()).toBeNull();

    // A shallow copy onto a target node attached with backing:null (the b2 pitfall) is refused.
    const b2 = targetNodeNames('b2');
    const top = join(fx.dir, 'top.qcow2');
    await fx.createImage('top.qcow2', 'qcow2', CHAIN_SIZE, fx.paths.snap1);
    await fx.cmd('blockdev-add', { driver: 'file', 'node-name': b2.file, filename: top });
    await fx.cmd('blockdev-add', { driver: 'qcow2', 'node-name': b2.format, file: b2.file, backing: null });
    const shallow = await hv.startMirror(
      fx.mirrorSpec('b2', top, { sync: 'top', destinationBacking: { path: fx.paths.snap1, format: 'qcow2' } }),
    );
    expect(shallow._unsafeUnwrapErr()).toMatchObject({ kind: 'invalid' });
    expect(shallow._unsafeUnwrapErr().desc).toMatch(/backing none, needs snap1/);
  });

  it('passes copy-mode: write-blocking mirrors a guest write at once, background only when the job runs', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    for (const copyMode of ['write-blocking', 'background'] as const) {
      const job = `cm-${copyMode}`;
      const dst = await newDestination(fx, hv, `${job}.qcow2`);
      expect((await hv.startMirror(fx.mirrorSpec(job, dst, { copyMode }))).isOk()).toBe(true);
      await events.waitFor((e) => e.kind === 'job-ready' && e.jobId === job);
      expect((await hv.pauseJob(job)).isOk()).toBe(true); // standby: the job coroutine sleeps
      await events.waitFor((e) => e.kind === 'job-status' && e.jobId === job && e.status === 'standby');
      await fx.guestWrite(0x66, 0, 2 * MiB);
      const len = (await hv.queryJob(job))._unsafeUnwrap()?.len;
      // §0.6 / g2: only write-blocking accounts (and copies) the write while the job is paused.
      expect(len).toBe(copyMode === 'write-blocking' ? CHAIN_SIZE + 2 * MiB : CHAIN_SIZE);
      expect((await hv.resumeJob(job)).isOk()).toBe(true);
      expect((await hv.cancelJob(job, false)).isOk()).toBe(true);
      await events.waitFor((e) => e.kind === 'job-status' && e.jobId === job && e.status === 'concluded');
      expect((await hv.dismissJob(job)).isOk()).toBe(true);
    }
  });

  it('guest writes during the copy, after READY and after the pivot land where they should', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = await newDestination(fx, hv, 'dst.qcow2');
    expect((await hv.startMirror(fx.mirrorSpec('g', dst, { speed: 8 * MiB }))).isOk()).toBe(true);
    await pollUntil(
      async () => (await hv.queryJob('g'))._unsafeUnwrap()?.offset ?? 0,
      (o) => o >= 4 * MiB,
    );
    const during: Region[] = [
      { pattern: 0x44, offset: 0, len: 2 * MiB }, // already copied: re-dirtied
      { pattern: 0x45, offset: 60 * MiB, len: 2 * MiB }, // not copied yet
    ];
    for (const w of during) await fx.guestWrite(w.pattern, w.offset, w.len);
    // §0.6: len grows with guest writes (re-dirtied data), once the throttled job loop runs again.
    const grown = await pollUntil(
      async () => (await hv.queryJob('g'))._unsafeUnwrap(),
      (j) => (j?.len ?? 0) > CHAIN_SIZE,
    );
    expect(grown?.status).toBe('running');
    expect((await hv.setJobSpeed('g', 0)).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-ready');
    const afterReady: Region = { pattern: 0x46, offset: 30 * MiB, len: MiB };
    await fx.guestWrite(afterReady.pattern, afterReady.offset, afterReady.len);
    // §0.6: no event, READY is sticky.
    expect((await hv.queryJob('g'))._unsafeUnwrap()).toMatchObject({ status: 'ready', ready: true });
    expect((await hv.completeJob('g')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    const afterPivot: Region = { pattern: 0x47, offset: 44 * MiB, len: MiB };
    await fx.guestWrite(afterPivot.pattern, afterPivot.offset, afterPivot.len);
    expect((await hv.dismissJob('g')).isOk()).toBe(true);
    await fx.stop();

    const src = [...during, afterReady];
    expect(await fx.verifyImage(dst, 'qcow2', [...src, afterPivot])).toEqual([]);
    expect(await fx.verifyImage(dst, 'qcow2', [{ pattern: 0x22, offset: 16 * MiB, len: 8 * MiB }])).toEqual([]);
    expect(await fx.verifyImage(fx.paths.snap2, 'qcow2', src)).toEqual([]);
    // The post-pivot write reached only the destination.
    expect(await fx.verifyImage(fx.paths.snap2, 'qcow2', [{ pattern: 0x11, offset: 44 * MiB, len: MiB }])).toEqual([]);
  });
});
