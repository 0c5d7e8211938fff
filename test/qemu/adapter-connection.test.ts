/**
 * QemuHypervisor when the monitor goes away: QEMU killed mid-job (hypervisor-gone, every call
 * fails cleanly), and the QMP connection cut and restored (the job survives; its state comes
 * from queries, because missed events are not replayed).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHAIN_SIZE, MiB, useQemu, Recorder } from './harness.js';
import type { QmpEvent } from '../../adapters/qmp/client.js';

const qemu = useQemu();

describe('QemuHypervisor: connection loss', () => {
  it('QEMU killed mid-job: connection-lost then hypervisor-gone; every call returns an error value', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter({ reconnect: { attempts: 3, delayMs: 50 } });
    const dst = join(fx.dir, 'dst.qcow2');
    expect(
      (await hv.createDestination({ path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null })).isOk(),
    ).toBe(true);
    expect((await hv.startMirror(fx.mirrorSpec('k2', dst, { speed: MiB }))).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'running');
    await fx.kill();
    const gone = await events.waitFor((e) => e.kind === 'hypervisor-gone', 10_000);
    expect(gone.kind === 'hypervisor-gone' && gone.reason).toContain(fx.qmpSocket);
    expect(events.items.filter((e) => !('jobId' in e)).map((e) => e.kind)).toEqual([
      'connection-lost',
      'hypervisor-gone',
    ]);

    const calls = await Promise.all([
      hv.queryJob('k2'),
      hv.getDomain('qemu'),
      hv.describeDisk('qemu', 'vda'),
      hv.activeImage('qemu', 'vda'),
      hv.completeJob('k2'),
      hv.cancelJob('k2', true),
      hv.pauseJob('k2'),
      hv.resumeJob('k2'),
      hv.setJobSpeed('k2', 0),
      hv.dismissJob('k2'),
      hv.startMirror(fx.mirrorSpec('k3', dst)),
      hv.removeDestination(dst),
    ]);
    for (const r of calls) expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });
    // Local file work does not need QEMU.
    expect((await hv.probeDestination(dst))._unsafeUnwrap()).toMatchObject({ exists: true });
    // k2: the copied data was never referenced by flushed metadata.
    expect(await fx.compareWithChain(dst, 'qcow2')).toMatchObject({ identical: false });
  });

  it('QMP connection dropped and restored: the job survives; READY missed meanwhile is read back by queryJob', async () => {
    const fx = qemu();
    const proxy = await fx.proxy();
    const { hv, events } = await fx.adapter({ socket: proxy.path, reconnect: { attempts: 5, delayMs: 20 } });
    const harnessEvents = new Recorder<QmpEvent>(fx.qmp.events$);
    const dst = join(fx.dir, 'dst.qcow2');
    expect(
      (await hv.createDestination({ path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null })).isOk(),
    ).toBe(true);
    expect((await hv.startMirror(fx.mirrorSpec('j', dst, { speed: MiB }))).isOk()).toBe(true);

    proxy.hold();
    proxy.drop();
    await events.waitFor((e) => e.kind === 'connection-lost');
    expect((await hv.queryJob('j'))._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });
    // Meanwhile (another monitor) the job speeds up and becomes READY.
    await fx.cmd('block-job-set-speed', { device: 'j', speed: 0 });
    await harnessEvents.waitFor((e) => e.event === 'BLOCK_JOB_READY');
    proxy.release();
    await events.waitFor((e) => e.kind === 'connection-restored');
    expect(proxy.connections).toBe(2);

    expect(events.items.some((e) => e.kind === 'job-ready')).toBe(false); // not replayed
    expect((await hv.queryJob('j'))._unsafeUnwrap()).toMatchObject({
      status: 'ready',
      ready: true,
      offset: CHAIN_SIZE,
    });
    expect((await hv.startMirror(fx.mirrorSpec('j', dst, { speed: MiB }))).isOk()).toBe(true); // idempotent retry
    expect((await hv.completeJob('j')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(dst);
    expect((await hv.dismissJob('j')).isOk()).toBe(true);
    expect(events.items.some((e) => e.kind === 'hypervisor-gone')).toBe(false);
  });

  it('reconnect disabled: a dropped connection is final (hypervisor-gone) even though QEMU lives on', async () => {
    const fx = qemu();
    const proxy = await fx.proxy();
    const { hv, events } = await fx.adapter({ socket: proxy.path, reconnect: false });
    expect((await hv.getDomain('qemu')).isOk()).toBe(true);
    proxy.drop();
    await events.waitFor((e) => e.kind === 'hypervisor-gone');
    expect(events.items.map((e) => e.kind)).toEqual(['connection-lost', 'hypervisor-gone']);
    expect((await hv.getDomain('qemu'))._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });
    expect(fx.alive).toBe(true);
  });

  it('connectQemu to a socket nobody listens on fails with a connection error', async () => {
    const { connectQemu } = await import('../../adapters/qmp/qemu-adapter.js');
    const r = await connectQemu({ socket: join(qemu().dir, 'none.sock') });
    expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'connection' });
  });
});
