/**
 * The engine's public API on a real qemu-storage-daemon: the seed's eight flag combinations of
 * blockRebase(COPY …) and the three copy-only flags refused without COPY. Every successful copy
 * is pivoted, then `qemu-img compare` proves the destination identical to the chain and a guest
 * write through the export, found in the destination and not in snap2, proves the guest switched.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import type { BlockCopyJob } from '../../src/engine/engine.js';
import { CHAIN_SIZE, MiB, run, useQemu, type QemuFixture } from '../qemu/harness.js';
import { engineOn, whenReady, type EngineOnQemu } from './helpers.js';

const qemu = useQemu();
const { COPY, SHALLOW, REUSE_EXT, COPY_RAW } = RebaseFlags;

async function pivotAndVerify(
  fx: QemuFixture,
  e: EngineOnQemu,
  job: BlockCopyJob,
  dest: string,
  format: 'qcow2' | 'raw',
): Promise<void> {
  await whenReady(job);
  expect((await e.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
  const result = await job.result;
  expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
  expect(result.states.slice(-4)).toEqual(['pivoting', 'confirmingPivot', 'finishing', 'completed']);
  expect((await e.hv.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(dest);
  expect(await fx.compareWithChain(dest, format)).toMatchObject({ identical: true });
  // The guest switched: a write through the export lands in the destination, not in snap2.
  await fx.guestWrite(0x77, 0, MiB);
  expect(await fx.guestRead(0x77, 0, MiB)).toBe(true);
  await fx.stop();
  expect(await fx.verifyImage(dest, format, [{ pattern: 0x77, offset: 0, len: MiB }])).toEqual([]);
  expect(await fx.verifyImage(fx.paths.snap2, 'qcow2', [{ pattern: 0x11, offset: 0, len: MiB }])).toEqual([]);
}

describe('engine on QEMU: blockRebase flag combinations', () => {
  it('COPY: a new qcow2 with the whole chain flattened', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'full', destinationAction: 'create', destination: { format: 'qcow2' } });
    await pivotAndVerify(fx, e, job, dest, 'qcow2');
    expect((await fx.imageInfo(dest))['backing-filename']).toBeUndefined();
  });

  it('COPY|COPY_RAW: a new raw image', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.raw');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY | COPY_RAW))._unsafeUnwrap();
    expect(job.plan.destination.format).toBe('raw');
    await pivotAndVerify(fx, e, job, dest, 'raw');
    expect((await fx.imageInfo(dest))['format']).toBe('raw');
  });

  it('COPY|SHALLOW: a new qcow2 backed by snap1, only the top layer copied', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY | SHALLOW))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'top', backing: { path: fx.paths.snap1 } });
    await pivotAndVerify(fx, e, job, dest, 'qcow2');
    expect((await fx.imageInfo(dest))['full-backing-filename']).toBe(fx.paths.snap1);
  });

  it('COPY|REUSE_EXT: a pre-created empty qcow2', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = await fx.createImage('pre.qcow2', 'qcow2');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY | REUSE_EXT))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'full', destinationAction: 'reuse' });
    await pivotAndVerify(fx, e, job, dest, 'qcow2');
  });

  it('COPY|REUSE_EXT|SHALLOW: a pre-created qcow2 backed by snap1', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = await fx.createImage('pre.qcow2', 'qcow2', CHAIN_SIZE, fx.paths.snap1);
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY | REUSE_EXT | SHALLOW))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'top', destinationAction: 'reuse' });
    await pivotAndVerify(fx, e, job, dest, 'qcow2');
  });

  it('COPY|REUSE_EXT|SHALLOW|COPY_RAW: a raw volume already holding snap1 gets only the top layer', async () => {
    // The seed: "reuse existing /path/to/copy (must be raw volume with contents identical to
    // snap1), and copy only the contents of snap2". A raw target has no backing node.
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'vol.raw');
    expect((await run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', fx.paths.snap1, dest])).code).toBe(0);
    const flags = COPY | REUSE_EXT | SHALLOW | COPY_RAW;
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 0, flags))._unsafeUnwrap();
    expect(job.plan).toMatchObject({
      sync: 'top',
      destinationAction: 'reuse',
      destination: { format: 'raw' },
      backing: null,
    });
    await pivotAndVerify(fx, e, job, dest, 'raw');
    expect(existsSync(dest)).toBe(true);
  });

  it('COPY|SHALLOW|COPY_RAW on the qcow2 chain: refused (CONFIG_UNSUPPORTED), nothing created', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.raw');
    const r = await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY | SHALLOW | COPY_RAW);
    expect(r._unsafeUnwrapErr().code).toBe('VIR_ERR_CONFIG_UNSUPPORTED');
    expect(existsSync(dest)).toBe(false);
    expect(e.calls.get('startMirror')).toBeUndefined();
    expect(e.calls.get('createDestination')).toBeUndefined();
    expect(await fx.cmd('query-jobs')).toEqual([]);
  });

  it('COPY|REUSE_EXT|COPY_RAW: an empty raw file of the right size', async () => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = await fx.createImage('pre.raw', 'raw');
    const job = (await e.engine.blockRebase('qemu', 'vda', dest, 0, COPY | REUSE_EXT | COPY_RAW))._unsafeUnwrap();
    expect(job.plan).toMatchObject({ sync: 'full', destinationAction: 'reuse', destination: { format: 'raw' } });
    await pivotAndVerify(fx, e, job, dest, 'raw');
  });

  it.each([
    ['SHALLOW', SHALLOW],
    ['REUSE_EXT', REUSE_EXT],
    ['COPY_RAW', COPY_RAW],
  ])('%s without COPY: refused before QEMU is asked anything', async (_name, flag) => {
    const fx = qemu();
    const e = await engineOn(fx);
    const dest = join(fx.dir, 'copy.qcow2');
    const r = await e.engine.blockRebase('qemu', 'vda', dest, 0, flag);
    expect(r.isErr()).toBe(true);
    expect(r._unsafeUnwrapErr().code).toMatch(/^VIR_ERR_/);
    expect([...e.calls.keys()]).toEqual([]);
    expect(existsSync(dest)).toBe(false);
    expect(await fx.cmd('query-jobs')).toEqual([]);
  });
});
