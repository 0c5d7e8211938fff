/**
 * Disk identity on real TCG VMs: every name a user types for the disk (device id, legacy drive
 * id, root node name, source path) copies and pivots the same disk; two spellings of one disk are
 * one job; backing nodes are no disks; a job started by another QMP client makes the disk busy
 * in the dry run and the real run, with nothing created.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RebaseFlags } from '../../src/core/flags.js';
import { useVm, type VmFixture } from './harness.js';
import { pivotAndVerify } from './verify.js';

const vm = useVm();
const { COPY } = RebaseFlags;

/** The disk's names as the adapter lists them (the legacy drive's node name is automatic). */
async function namesOf(fx: VmFixture) {
  const disks = (await fx.hv.listDisks('qemu'))._unsafeUnwrap();
  expect(disks).toHaveLength(1);
  return disks![0]!;
}

describe.each(['blockdev', 'drive'] as const)('VM (%s): the names of a disk', (style) => {
  it('lists the disk by every name, with its chain and no job', async () => {
    const fx = await vm(style);
    const d = await namesOf(fx);
    expect(d).toMatchObject({
      domain: 'qemu',
      disk: fx.device,
      device: style === 'blockdev' ? 'vda' : null,
      drive: style === 'drive' ? 'drive0' : null,
      exportId: null,
      source: fx.paths.snap2,
      job: null,
    });
    expect(d.chain.map((i) => i.path)).toEqual([fx.paths.snap2, fx.paths.snap1, fx.paths.base]);
    if (style === 'blockdev') expect(d.nodeName).toBe('snap2');
    else expect(d.nodeName).toMatch(/^#block\d+$/);
  });

  it.each(['device', 'node', 'path'] as const)('copies and pivots the disk named by its %s', async (kind) => {
    const fx = await vm(style);
    const d = await namesOf(fx);
    const name = kind === 'device' ? fx.device : kind === 'node' ? d.nodeName! : d.source;
    const dest = join(fx.dir, 'copy.qcow2');
    const job = (await fx.engine.blockRebase('qemu', name, dest, 0, COPY))._unsafeUnwrap();
    // One canonical disk whatever the spelling, and a job id QEMU accepts (no '#').
    expect(job.disk).toBe(fx.device);
    expect(job.jobId).toMatch(/^copy-[A-Za-z0-9._-]+$/);
    expect(fx.engine.job('qemu', fx.device)?.jobId).toBe(job.jobId);
    await pivotAndVerify(fx, job, name, dest, 'qcow2', false);
  });

  it('two spellings of one disk are one job: the second is busy (83), in the dry run too, nothing created', async () => {
    const fx = await vm(style);
    const d = await namesOf(fx);
    const job = (await fx.engine.blockRebase('qemu', d.nodeName, join(fx.dir, 'a.qcow2'), 1, COPY))._unsafeUnwrap();
    const other = join(fx.dir, 'b.qcow2');
    const busy = {
      code: 'VIR_ERR_BLOCK_COPY_ACTIVE',
      number: 83,
      detail: `disk '${fx.device}' already in active block job`,
    };
    for (const name of [fx.device, d.source]) {
      expect((await fx.engine.planRebase('qemu', name, other, 0, COPY))._unsafeUnwrapErr()).toMatchObject(busy);
      expect((await fx.engine.blockRebase('qemu', name, other, 0, COPY))._unsafeUnwrapErr()).toMatchObject(busy);
      // Every spelling sees the job.
      expect((await fx.engine.getBlockJobInfo('qemu', name, 0))._unsafeUnwrap()).not.toBeNull();
      expect((await fx.engine.checkDomainOperation('qemu', 'detach', name)).isErr()).toBe(true);
    }
    expect(existsSync(other)).toBe(false);
    expect((await fx.cmd<unknown[]>('query-jobs')).length).toBe(1);
    expect((await fx.engine.blockJobAbort('qemu', d.source, 0)).isOk()).toBe(true);
    expect((await job.result).outcome).toBe('canceled');
    expect(await fx.cmd('query-jobs')).toEqual([]);
    // The aborted job's target nodes are gone; the chain is intact.
    expect((await fx.nodes()).some((n) => n['node-name'].startsWith(job.jobId))).toBe(false);
  });

  it('a backing node or image is no disk: INVALID_ARG with the names that work', async () => {
    const fx = await vm(style);
    const d = await namesOf(fx);
    const nodes = await fx.nodes();
    // -blockdev names it; -drive gives it an automatic name (found by its file).
    const backingNode =
      style === 'blockdev' ? 'snap1' : nodes.find((n) => n.drv === 'qcow2' && n.file === fx.paths.snap1)!['node-name'];
    for (const name of [backingNode, fx.paths.snap1]) {
      const dest = join(fx.dir, 'x.qcow2');
      const r = await fx.engine.blockRebase('qemu', name, dest, 0, COPY);
      expect(r._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_INVALID_ARG', number: 8 });
      expect(r._unsafeUnwrapErr().detail).toContain(`disk '${name}' not found in domain`);
      expect(r._unsafeUnwrapErr().detail).toContain(`names that work: ${fx.device}, `);
      expect(r._unsafeUnwrapErr().detail).toContain(d.source);
      expect(existsSync(dest)).toBe(false);
    }
    expect(fx.calls.get('createDestination')).toBeUndefined();
    expect(await fx.cmd('query-jobs')).toEqual([]);
  });

  it('a job started by another QMP client: busy (83) in the dry run and the real run, nothing created', async () => {
    const fx = await vm(style);
    const d = await namesOf(fx);
    const target = await fx.createImage('foreign.raw', 'raw');
    await fx.cmd('blockdev-add', { driver: 'file', 'node-name': 'foreign-f', filename: target }, fx.other);
    await fx.cmd('blockdev-add', { driver: 'raw', 'node-name': 'foreign', file: 'foreign-f' }, fx.other);
    await fx.cmd(
      'blockdev-mirror',
      { 'job-id': 'foreign-job', device: d.nodeName, target: 'foreign', sync: 'full', speed: 1 },
      fx.other,
    );
    expect((await namesOf(fx)).job).toMatchObject({ jobId: 'foreign-job', type: 'mirror' });
    const nodesBefore = (await fx.nodes()).map((n) => n['node-name']).sort();
    const dest = join(fx.dir, 'copy.qcow2');
    const busy = { code: 'VIR_ERR_BLOCK_COPY_ACTIVE', detail: `disk '${fx.device}' already in active block job` };
    for (const name of [fx.device, d.source]) {
      expect((await fx.engine.planRebase('qemu', name, dest, 0, COPY))._unsafeUnwrapErr()).toMatchObject(busy);
      expect((await fx.engine.blockRebase('qemu', name, dest, 0, COPY))._unsafeUnwrapErr()).toMatchObject(busy);
    }
    expect(existsSync(dest)).toBe(false);
    expect(fx.calls.get('createDestination')).toBeUndefined();
    expect(fx.calls.get('startMirror')).toBeUndefined();
    expect((await fx.nodes()).map((n) => n['node-name']).sort()).toEqual(nodesBefore);
    expect((await fx.cmd<{ id: string }[]>('query-jobs')).map((j) => j.id)).toEqual(['foreign-job']);
  });
});
