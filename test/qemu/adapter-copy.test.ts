/**
 * QemuHypervisor against a real qemu-storage-daemon: domain and disk discovery, destination
 * files, and the copies that pivot (full qcow2, shallow qcow2, raw), verified with qemu-img and
 * with guest I/O through the NBD export.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HypervisorEvent } from '../../src/core/hypervisor-port.js';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { CHAIN_SIZE, EXPECTED, MiB, TOP_LAYER_BYTES, useQemu, type Region } from './harness.js';

const qemu = useQemu();

const jobEvents = (items: HypervisorEvent[], jobId: string) =>
  items.flatMap((e) => {
    if (!('jobId' in e) || e.jobId !== jobId) return [];
    return [e.kind === 'job-status' ? e.status : e.kind];
  });

/** EXPECTED with `patch` written over it (regions are MiB-aligned). */
function overlay(base: readonly Region[], ...patches: Region[]): Region[] {
  const bytes: number[] = [];
  for (const r of [...base, ...patches])
    for (let o = r.offset; o < r.offset + r.len; o += MiB) bytes[o / MiB] = r.pattern;
  const out: Region[] = [];
  bytes.forEach((p, mib) => {
    const last = out.at(-1);
    if (last && last.pattern === p && last.offset + last.len === mib * MiB)
      out[out.length - 1] = { ...last, len: last.len + MiB };
    else out.push({ pattern: p, offset: mib * MiB, len: MiB });
  });
  return out;
}

describe('QemuHypervisor: discovery and destination files', () => {
  it('describes the single running transient domain and the chain behind the export', async () => {
    const fx = qemu();
    const { hv } = await fx.adapter();
    expect(hv.name).toBe(`qmp:${fx.qmpSocket}`);
    expect((await hv.getDomain('qemu'))._unsafeUnwrap()).toEqual({
      name: 'qemu',
      running: true,
      persistent: false,
      disks: ['vda'],
    });
    expect((await hv.getDomain('other'))._unsafeUnwrap()).toBeNull();

    const chain = [
      {
        path: fx.paths.snap2,
        format: 'qcow2',
        virtualSize: CHAIN_SIZE,
        backing: { path: fx.paths.snap1, format: 'qcow2' },
      },
      {
        path: fx.paths.snap1,
        format: 'qcow2',
        virtualSize: CHAIN_SIZE,
        backing: { path: fx.paths.base, format: 'qcow2' },
      },
      { path: fx.paths.base, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null },
    ];
    expect((await hv.describeDisk('qemu', 'vda'))._unsafeUnwrap()).toEqual({ domain: 'qemu', disk: 'vda', chain });
    // The root node name works as a DISK too.
    expect((await hv.describeDisk('qemu', 'snap2'))._unsafeUnwrap()?.chain).toEqual(chain);
    expect((await hv.describeDisk('qemu', 'vdz'))._unsafeUnwrap()).toBeNull();
    // A backing node is no disk.
    expect((await hv.describeDisk('qemu', 'snap1'))._unsafeUnwrap()).toBeNull();
    expect((await hv.listDisks('qemu'))._unsafeUnwrap()).toEqual([
      {
        domain: 'qemu',
        disk: 'vda',
        device: null,
        drive: null,
        nodeName: 'snap2',
        exportId: 'vda',
        source: fx.paths.snap2,
        chain,
        job: null,
      },
    ]);
    expect((await hv.listDisks('other'))._unsafeUnwrap()).toBeNull();
    expect((await hv.describeDisk('other', 'vda'))._unsafeUnwrap()).toBeNull();
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
    expect((await hv.activeImage('qemu', 'vdz'))._unsafeUnwrapErr()).toMatchObject({ kind: 'invalid' });
  });

  it("reports relative file names absolute against QEMU's cwd when told it", async () => {
    const fx = qemu();
    await fx.createImage('rel.qcow2', 'qcow2');
    // The daemon runs in fx.dir; a relative name is resolved by QEMU against it.
    await fx.cmd('blockdev-add', { driver: 'file', 'node-name': 'rel-file', filename: 'rel.qcow2' });
    await fx.cmd('blockdev-add', { driver: 'qcow2', 'node-name': 'rel', file: 'rel-file', backing: null });
    await fx.cmd('block-export-add', { type: 'nbd', id: 'vdb', 'node-name': 'rel', name: 'vdb', writable: true });
    const plain = (await fx.adapter()).hv;
    expect((await plain.getDomain('qemu'))._unsafeUnwrap()?.disks).toEqual(['vda', 'vdb']);
    expect((await plain.activeImage('qemu', 'vdb'))._unsafeUnwrap()).toBe('rel.qcow2');
    await plain.close();
    const { hv } = await fx.adapter({ qemuCwd: fx.dir });
    expect((await hv.describeDisk('qemu', 'vdb'))._unsafeUnwrap()?.chain).toEqual([
      { path: join(fx.dir, 'rel.qcow2'), format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null },
    ]);
    expect((await hv.activeImage('qemu', 'vdb'))._unsafeUnwrap()).toBe(join(fx.dir, 'rel.qcow2'));
  });

  it('probes, creates (idempotently, never overwriting) and removes destination images', async () => {
    const fx = qemu();
    const { hv } = await fx.adapter();
    const dst = join(fx.dir, 'dst.qcow2');
    expect((await hv.probeDestination(dst))._unsafeUnwrap()).toEqual({ exists: false });

    const spec = { path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null } as const;
    expect((await hv.createDestination(spec)).isOk()).toBe(true);
    const probe = (await hv.probeDestination(dst))._unsafeUnwrap();
    expect(probe).toMatchObject({
      exists: true,
      kind: 'file',
      empty: true,
      image: { path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null },
    });
    expect(probe.exists && probe.size).toBeGreaterThan(0);
    expect((await hv.createDestination(spec)).isOk()).toBe(true); // identical: fine
    const bigger = await hv.createDestination({ ...spec, virtualSize: 2 * CHAIN_SIZE });
    expect(bigger._unsafeUnwrapErr()).toMatchObject({ kind: 'invalid', command: 'createDestination' });
    expect((await fx.imageInfo(dst))['virtual-size']).toBe(CHAIN_SIZE); // untouched

    // The source's top has data: not empty, and never "identical".
    const top = (await hv.probeDestination(fx.paths.snap2))._unsafeUnwrap();
    expect(top).toMatchObject({
      exists: true,
      empty: false,
      image: { backing: { path: fx.paths.snap1, format: 'qcow2' } },
    });

    // A shallow destination names its backing in the header.
    const shallow = join(fx.dir, 'shallow.qcow2');
    const backing = { path: fx.paths.snap1, format: 'qcow2' } as const;
    expect(
      (await hv.createDestination({ path: shallow, format: 'qcow2', virtualSize: CHAIN_SIZE, backing })).isOk(),
    ).toBe(true);
    expect((await hv.probeDestination(shallow))._unsafeUnwrap()).toMatchObject({ empty: true, image: { backing } });

    // Raw: sparse, so empty.
    const raw = join(fx.dir, 'dst.raw');
    expect(
      (await hv.createDestination({ path: raw, format: 'raw', virtualSize: CHAIN_SIZE, backing: null })).isOk(),
    ).toBe(true);
    expect((await hv.probeDestination(raw))._unsafeUnwrap()).toMatchObject({
      exists: true,
      size: CHAIN_SIZE,
      empty: true,
      image: { format: 'raw', virtualSize: CHAIN_SIZE },
    });

    // Someone else's file with data is refused, byte for byte untouched.
    const foreign = join(fx.dir, 'foreign.img');
    await fs.writeFile(foreign, Buffer.alloc(4096, 0x5a));
    const refused = await hv.createDestination({ path: foreign, format: 'raw', virtualSize: 4096, backing: null });
    expect(refused._unsafeUnwrapErr()).toMatchObject({ kind: 'invalid' });
    expect(await fs.readFile(foreign)).toEqual(Buffer.alloc(4096, 0x5a));
    expect((await hv.probeDestination(foreign))._unsafeUnwrap()).toMatchObject({ exists: true, empty: false });
    expect((await hv.probeDestination(fx.dir))._unsafeUnwrap()).toMatchObject({ exists: true, kind: 'other' });

    expect((await hv.removeDestination(dst)).isOk()).toBe(true);
    expect((await hv.removeDestination(dst)).isOk()).toBe(true);
    expect((await hv.probeDestination(dst))._unsafeUnwrap()).toEqual({ exists: false });
    expect((await fs.readdir(fx.dir)).filter((f) => f.includes('blockcopy-tmp'))).toEqual([]);
  });
});

describe('QemuHypervisor: copies that pivot', () => {
  it('full copy + pivot: the guest moves to the destination, which equals the chain', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = join(fx.dir, 'dst.qcow2');
    expect(
      (await hv.createDestination({ path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null })).isOk(),
    ).toBe(true);
    const spec = fx.mirrorSpec('copy1', dst);
    expect((await hv.startMirror(spec)).isOk()).toBe(true);
    expect((await hv.startMirror(spec)).isOk()).toBe(true); // idempotent: same job, no second one
    const ready = await events.waitFor((e) => e.kind === 'job-ready');
    expect(ready).toEqual({ kind: 'job-ready', jobId: 'copy1', len: CHAIN_SIZE, offset: CHAIN_SIZE, speed: 0 });
    expect((await hv.queryJob('copy1'))._unsafeUnwrap()).toEqual({
      jobId: 'copy1',
      status: 'ready',
      offset: CHAIN_SIZE,
      len: CHAIN_SIZE,
      speed: 0,
      ready: true,
      paused: false,
      ioStatus: 'ok',
    });
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(fx.paths.snap2);
    expect(await fx.exportNode()).toMatch(/^#block\d+$/); // the mirror_top filter

    expect((await hv.completeJob('copy1')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect((await hv.completeJob('copy1')).isOk()).toBe(true); // idempotent: it pivoted
    expect(jobEvents(events.items, 'copy1')).toEqual([
      'created',
      'running',
      'ready',
      'job-ready',
      'waiting',
      'pending',
      'job-completed',
      'concluded',
    ]);
    expect(events.items.find((e) => e.kind === 'job-completed')).not.toHaveProperty('error');
    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(dst);
    expect(await fx.exportNode()).toBe(targetNodeNames('copy1').format);
    expect((await hv.queryJob('copy1'))._unsafeUnwrap()).toMatchObject({ status: 'concluded' });
    expect((await hv.queryJob('copy1'))._unsafeUnwrap()).not.toHaveProperty('error');

    expect((await hv.dismissJob('copy1')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'null');
    expect((await hv.dismissJob('copy1')).isOk()).toBe(true);
    expect((await hv.queryJob('copy1'))._unsafeUnwrap()).toBeNull();
    // The destination is the disk now: dismiss kept its nodes, and removing it is refused.
    expect((await hv.describeDisk('qemu', 'vda'))._unsafeUnwrap()?.chain).toEqual([
      { path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: null },
    ]);
    const remove = await hv.removeDestination(dst);
    expect(remove._unsafeUnwrapErr()).toMatchObject({ kind: 'qmp', errorClass: 'GenericError' });
    expect((await hv.probeDestination(dst))._unsafeUnwrap()).toMatchObject({ exists: true });

    // Flushed at READY and untouched since: the copy equals the chain.
    expect(await fx.compareWithChain(dst, 'qcow2')).toEqual({ identical: true, output: 'Images are identical.' });
    // A guest write after the pivot lands in the destination only.
    await fx.guestWrite(0x44, 0, MiB);
    expect(await fx.guestRead(0x44, 0, MiB)).toBe(true);
    await fx.stop();
    expect(await fx.verifyImage(dst, 'qcow2', overlay(EXPECTED, { pattern: 0x44, offset: 0, len: MiB }))).toEqual([]);
    expect(await fx.verifyImage(fx.paths.snap2, 'qcow2', EXPECTED)).toEqual([]);
    expect((await fx.imageInfo(dst))['backing-filename']).toBeUndefined();
  });

  it('shallow copy: the target gets snap1 as backing in its header and as its node; the guest reads base data', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = join(fx.dir, 'top.qcow2');
    const backing = { path: fx.paths.snap1, format: 'qcow2' } as const;
    expect((await hv.createDestination({ path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing })).isOk()).toBe(
      true,
    );
    const spec = fx.mirrorSpec('shallow', dst, { sync: 'top', destinationBacking: backing });
    expect((await hv.startMirror(spec)).isOk()).toBe(true);
    const ready = await events.waitFor((e) => e.kind === 'job-ready');
    expect(ready).toMatchObject({ len: TOP_LAYER_BYTES }); // only the top layer is copied
    expect((await hv.completeJob('shallow')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect((await hv.dismissJob('shallow')).isOk()).toBe(true);

    expect((await hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(dst);
    // The graph (not the header) decides what the guest reads: dst -> snap1 -> base.
    expect(
      (await hv.describeDisk('qemu', 'vda'))._unsafeUnwrap()?.chain.map((i) => [i.path, i.backing?.path ?? null]),
    ).toEqual([
      [dst, fx.paths.snap1],
      [fx.paths.snap1, fx.paths.base],
      [fx.paths.base, null],
    ]);
    // b2 would show zeros here.
    expect(await fx.guestVerify(EXPECTED)).toEqual([]);
    const info = await fx.imageInfo(dst);
    expect(info['full-backing-filename']).toBe(fx.paths.snap1);
    expect(info['backing-filename-format']).toBe('qcow2');
    await fx.stop();
    expect(await fx.compareWithChain(dst, 'qcow2')).toMatchObject({ identical: true });
  });

  it('shallow copy refuses a destination backing that is not the source backing (b2 guard)', async () => {
    const fx = qemu();
    const { hv } = await fx.adapter();
    const dst = join(fx.dir, 'top.qcow2');
    const wrong = { path: fx.paths.base, format: 'qcow2' } as const;
    expect(
      (await hv.createDestination({ path: dst, format: 'qcow2', virtualSize: CHAIN_SIZE, backing: wrong })).isOk(),
    ).toBe(true);
    const r = await hv.startMirror(fx.mirrorSpec('b2', dst, { sync: 'top', destinationBacking: wrong }));
    expect(r._unsafeUnwrapErr()).toMatchObject({ kind: 'invalid', command: 'blockdev-mirror' });
    expect(r._unsafeUnwrapErr().desc).toContain(fx.paths.snap1);
    expect((await hv.queryJob('b2'))._unsafeUnwrap()).toBeNull();
    const nodes = await fx.cmd<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true });
    expect(nodes.map((n) => n['node-name'])).not.toContain(targetNodeNames('b2').format);
  });

  it('raw destination, with the root node name as DISK: pivot followed through the export', async () => {
    const fx = qemu();
    const { hv, events } = await fx.adapter();
    const dst = join(fx.dir, 'dst.raw');
    expect(
      (await hv.createDestination({ path: dst, format: 'raw', virtualSize: CHAIN_SIZE, backing: null })).isOk(),
    ).toBe(true);
    expect((await hv.describeDisk('qemu', 'snap2'))._unsafeUnwrap()?.chain[0]?.path).toBe(fx.paths.snap2);
    const spec = fx.mirrorSpec('raw1', dst, { disk: 'snap2', destination: { path: dst, format: 'raw' } });
    expect((await hv.startMirror(spec)).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-ready');
    expect((await hv.completeJob('raw1')).isOk()).toBe(true);
    await events.waitFor((e) => e.kind === 'job-status' && e.status === 'concluded');
    expect((await hv.activeImage('qemu', 'snap2'))._unsafeUnwrap()).toBe(dst);
    // The disk (export vda) now reads the destination; the old root node name is no disk any more.
    expect((await hv.describeDisk('qemu', 'vda'))._unsafeUnwrap()?.chain).toEqual([
      { path: dst, format: 'raw', virtualSize: CHAIN_SIZE, backing: null },
    ]);
    expect((await hv.describeDisk('qemu', 'snap2'))._unsafeUnwrap()).toBeNull();
    expect((await hv.dismissJob('raw1')).isOk()).toBe(true);
    await fx.stop();
    expect(await fx.compareWithChain(dst, 'raw')).toMatchObject({ identical: true });
    expect(await fx.verifyImage(dst, 'raw', EXPECTED)).toEqual([]);
  });
});
