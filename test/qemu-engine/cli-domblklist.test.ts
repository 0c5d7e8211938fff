/** `blockcopy domblklist` on a real qemu-storage-daemon: the export's disk by all its names, its chain, a job started by another client. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { DiskNames } from '../../src/core/hypervisor-port.js';
import { captureOutput } from '../cli/capture.js';
import { useQemu } from '../qemu/harness.js';

const qemu = useQemu();

describe('blockcopy domblklist on QEMU', () => {
  it('lists vda by export id and root node, with its chain; a job another client started shows up', async () => {
    const fx = qemu();
    const other = await fx.createImage('other.qcow2', 'qcow2');
    await fx.cmd('blockdev-add', { driver: 'qcow2', 'node-name': 'other', file: { driver: 'file', filename: other } });
    await fx.cmd('blockdev-mirror', {
      'job-id': 'theirs',
      device: 'snap2',
      target: 'other',
      sync: 'full',
      speed: 1024 * 1024,
    });

    const out = captureOutput();
    expect(await main(['domblklist', '--hypervisor', `qmp:${fx.qmpSocket}`, '--json'], out)).toBe(0);
    const disks = JSON.parse(out.lines[0]!) as DiskNames[];
    expect(disks).toHaveLength(1);
    expect(disks[0]).toMatchObject({
      domain: 'qemu',
      disk: 'vda',
      exportId: 'vda',
      nodeName: 'snap2',
      source: fx.paths.snap2,
      job: { jobId: 'theirs' },
    });
    expect(disks[0]!.chain.map((i) => i.path)).toEqual([fx.paths.snap2, fx.paths.snap1, fx.paths.base]);

    const table = captureOutput();
    expect(await main(['domblklist', '--hypervisor', `qmp:${fx.qmpSocket}`], table)).toBe(0);
    expect(table.lines[0]).toMatch(/^ Target +Device +Drive +Node +Export +Source$/);
    expect(table.lines[2]).toMatch(new RegExp(`^ vda +- +- +snap2 +vda +${fx.paths.snap2}$`));
    expect(table.lines.slice(3)).toEqual([
      `          backing: ${join(fx.dir, 'snap1.qcow2')} (qcow2)`,
      `          backing: ${join(fx.dir, 'base.qcow2')} (qcow2)`,
      `          block job: theirs (${disks[0]!.job!.type}, ${disks[0]!.job!.status})`,
    ]);
    await fx.cmd('block-job-cancel', { device: 'theirs', force: true });
  });
});
