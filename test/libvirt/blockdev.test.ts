/**
 * COPY_DEV (virsh blockcopy --blockdev) through libvirtd: the destination is a loop device made
 * with losetup. libvirt lays the copy onto the device itself (`<disk type='block'>`); after the
 * pivot the live XML names the device as vda's source and its contents equal the chain's.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureLibvirtd, stopStarted } from '../../adapters/libvirt/lab-daemon.js';
import { CHAIN_SIZE, LibvirtLab, MiB } from '../../adapters/libvirt/lab.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { createEngine, type BlockCopyEngine } from '../../src/engine/engine.js';
import { whenReady } from '../qemu-engine/helpers.js';
import { attachLoop, detachAll, type LoopDevice } from '../qemu/loop-device.js';

let started: string[] = [];
let lab: LibvirtLab;
let engine: BlockCopyEngine;
const loops: LoopDevice[] = [];

beforeAll(async () => {
  started = await ensureLibvirtd();
  lab = await LibvirtLab.open();
  engine = createEngine({ hypervisor: lab.hv, pollIntervalMs: 200 });
}, 120_000);
afterEach(() => detachAll(loops));
afterAll(async () => {
  engine?.close();
  await lab?.cleanup();
  await stopStarted(started);
}, 120_000);

describe('COPY_DEV on libvirt', { timeout: 240_000 }, () => {
  it('raw onto a loop device, pivot: libvirt names the device as the source, identical to the chain', async () => {
    const guest = await lab.guest('copydev');
    const dev = await attachLoop(join(guest.dir, 'copy.img'), CHAIN_SIZE);
    loops.push(dev);
    const job = (
      await engine.blockRebase(
        guest.name,
        'vda',
        dev.path,
        0,
        RebaseFlags.COPY | RebaseFlags.COPY_DEV | RebaseFlags.COPY_RAW,
      )
    )._unsafeUnwrap();
    expect(job.plan).toMatchObject({ destination: { path: dev.path, format: 'raw', type: 'block' } });
    await whenReady(job);
    expect((await engine.blockJobAbort(guest.name, 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
    expect(await lab.source(guest)).toBe(dev.path);
    const cmp = await lab.sameAsChain(guest, dev.path, 'raw');
    expect(cmp.stdout + cmp.stderr).toMatch(/Images are identical/);
    expect((await fs.stat(dev.path)).isBlockDevice()).toBe(true);
    expect((await fs.stat(dev.file)).size).toBe(CHAIN_SIZE);
  });

  it('qcow2 laid onto the device by libvirt, then aborted: the disk stays on its source, the device stays', async () => {
    const guest = await lab.guest('copydev-abort');
    // qcow2 metadata needs room beyond the guest data.
    const dev = await attachLoop(join(guest.dir, 'copy.img'), CHAIN_SIZE + 16 * MiB);
    loops.push(dev);
    const job = (
      await engine.blockRebase(guest.name, 'vda', dev.path, 0, RebaseFlags.COPY | RebaseFlags.COPY_DEV)
    )._unsafeUnwrap();
    expect(job.plan).toMatchObject({ destination: { path: dev.path, format: 'qcow2', type: 'block' } });
    await whenReady(job);
    expect((await engine.blockJobAbort(guest.name, 'vda', 0)).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'canceled', pivoted: false, destinationConsistent: true });
    expect(await lab.source(guest)).toBe(guest.paths.snap2);
    expect((await fs.stat(dev.path)).isBlockDevice()).toBe(true);
    const cmp = await lab.sameAsChain(guest, dev.path, 'qcow2');
    expect(cmp.stdout + cmp.stderr).toMatch(/Images are identical/);
  });

  it('a block device without COPY_DEV is refused before libvirt is asked, nothing changes', async () => {
    const guest = await lab.guest('copydev-refused');
    const dev = await attachLoop(join(guest.dir, 'copy.img'), CHAIN_SIZE);
    loops.push(dev);
    const r = await engine.blockRebase(guest.name, 'vda', dev.path, 0, RebaseFlags.COPY | RebaseFlags.COPY_RAW);
    expect(r._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_CONFIG_UNSUPPORTED' });
    expect(await lab.source(guest)).toBe(guest.paths.snap2);
    expect((await lab.hv.listBlockJobs(guest.name))._unsafeUnwrap()).toEqual([]);
  });
});
