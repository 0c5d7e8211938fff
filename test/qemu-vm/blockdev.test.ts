/**
 * COPY_DEV (virsh --blockdev) on a real VM: the destination is a loop device made with losetup
 * over a sparse file in the VM's directory. A copy onto it pivots (query-block shows the device,
 * qemu-img compare finds it identical to the chain); an aborted copy leaves the device present
 * and its bytes beyond the mirror's reach untouched; the CLI does the same; a device without the
 * flag, or a file with it, is refused with nothing touched. Every loop device is detached
 * (afterEach, before the VM's directory goes).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { hex, run } from '../../adapters/qmp/lab.js';
import { main } from '../../src/cli/main.js';
import { RebaseFlags } from '../../src/core/flags.js';
import { captureOutput } from '../cli/capture.js';
import { attachLoop, detachAll, type LoopDevice } from '../qemu/loop-device.js';
import { CHAIN_SIZE, MiB, useVm, type VmFixture } from './harness.js';
import { pivotAndVerify } from './verify.js';

const vm = useVm();
const loops: LoopDevice[] = [];
// Registered after useVm's afterEach, so it runs first (vitest runs afterEach hooks in reverse):
// the devices are detached before the VM and its directory go (a busy one detaches lazily).
afterEach(() => detachAll(loops));

/** A loop device of `size` bytes over a sparse file in the VM's directory. */
async function loop(fx: VmFixture, name: string, size: number): Promise<LoopDevice> {
  const dev = await attachLoop(join(fx.dir, `${name}.img`), size);
  loops.push(dev);
  return dev;
}

/** The bytes of `file` in [offset, offset + len) all equal `pattern`. */
async function holds(file: string, pattern: number, offset: number, len: number): Promise<boolean> {
  const out = await run('qemu-io', ['-r', '-U', '-f', 'raw', '-c', `read -P ${hex(pattern)} ${offset} ${len}`, file]);
  return out.code === 0 && !/verification failed|error/i.test(out.stdout + out.stderr);
}

describe('VM: COPY_DEV onto a loop device', () => {
  it('qcow2 laid onto the device (format inherited), pivot: the guest reads /dev/loopN, identical to the chain', async () => {
    const fx = await vm('blockdev');
    // qcow2 metadata needs room beyond the 64 MiB of guest data.
    const dev = await loop(fx, 'copy', CHAIN_SIZE + 16 * MiB);
    const job = (
      await fx.engine.blockRebase('qemu', 'vda', dev.path, 0, RebaseFlags.COPY | RebaseFlags.COPY_DEV)
    )._unsafeUnwrap();
    expect(job.plan).toMatchObject({
      destination: { path: dev.path, format: 'qcow2', type: 'block' },
      destinationAction: 'format',
    });
    // QEMU opened the device with host_device (its file driver refuses block devices).
    const file = (await fx.nodes()).find((n) => n['node-name'] === targetNodeNames(job.jobId).file);
    expect(file).toMatchObject({ drv: 'host_device', file: dev.path });
    await pivotAndVerify(fx, job, 'vda', dev.path, 'qcow2', false);
    expect((await fx.block()).inserted?.file).toBe(dev.path);
    expect((await fs.stat(dev.path)).isBlockDevice()).toBe(true);
    expect((await fs.stat(dev.file)).size).toBe(CHAIN_SIZE + 16 * MiB);
  });

  it('(legacy -drive) raw in place: abort before READY leaves the device, its bytes beyond the mirror untouched', async () => {
    const fx = await vm('drive');
    const dev = await loop(fx, 'raw', CHAIN_SIZE);
    // Fill the device with a pattern the chain does not have.
    const fill = await run('qemu-io', ['-f', 'raw', '-c', `write -P ${hex(0xa5)} 0 ${CHAIN_SIZE}`, dev.path]);
    expect(fill.code).toBe(0);
    const job = (
      await fx.engine.blockCopy(
        'qemu',
        fx.device,
        { path: dev.path, type: 'block', format: 'raw' },
        // 256 KiB/s: the mirror is far from the last 16 MiB when the abort comes.
        { bandwidth: 256 * 1024 },
        0,
      )
    )._unsafeUnwrap();
    expect(job.plan).toMatchObject({ destinationAction: 'reuse', destination: { type: 'block', format: 'raw' } });
    expect(await fx.cmd<{ device: string }[]>('query-block-jobs')).toMatchObject([{ device: job.jobId }]);
    expect((await fx.engine.blockJobAbort('qemu', fx.device, 0)).isOk()).toBe(true);
    expect(await job.result).toMatchObject({ outcome: 'canceled', pivoted: false });
    // No job, no node on the device; the guest stays on its chain; the device is still there.
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect((await fx.nodes()).filter((n) => n.file === dev.path)).toEqual([]);
    expect((await fx.block()).inserted?.file).toBe(fx.paths.snap2);
    expect((await fs.stat(dev.path)).isBlockDevice()).toBe(true);
    expect((await fs.stat(dev.file)).size).toBe(CHAIN_SIZE);
    expect(await holds(dev.path, 0xa5, CHAIN_SIZE - 16 * MiB, 16 * MiB)).toBe(true);
  });

  it('CLI: blockcopy copy vda /dev/loopN --blockdev --pivot --hypervisor qmp:SOCK; refusals change nothing', async () => {
    const fx = await vm('blockdev');
    // The CLI gets the monitor the fixture's "other client" held.
    await fx.other.close();
    const hypervisor = `qmp:${fx.lab.socket('other')}`;
    const dev = await loop(fx, 'cli', CHAIN_SIZE + 16 * MiB);
    const file = join(fx.dir, 'regular.img');
    await fs.writeFile(file, '');
    const copy = async (...args: string[]) => {
      const out = captureOutput();
      const code = await main(['copy', ...args, '--hypervisor', hypervisor, '--json'], out);
      return { code, report: JSON.parse(out.lines[0]!) as Record<string, any> };
    };

    // A regular file with --blockdev; the device without it: libvirt-style errors, exit 1.
    const onFile = await copy('vda', file, '--blockdev', '--pivot');
    expect(onFile.code).toBe(1);
    expect(onFile.report['error']).toMatchObject({
      code: 'VIR_ERR_INVALID_ARG',
      message: `invalid argument: blockdev flag requested for disk vda, but file '${file}' is not a block device`,
    });
    const noFlag = await copy('vda', dev.path, '--pivot');
    expect(noFlag.code).toBe(1);
    expect(noFlag.report['error']).toMatchObject({ code: 'VIR_ERR_CONFIG_UNSUPPORTED' });
    expect((await fs.stat(file)).size).toBe(0);
    expect(await fx.cmd('query-jobs')).toEqual([]);

    const done = await copy('vda', dev.path, '--blockdev', '--pivot');
    expect(done.code).toBe(0);
    expect(done.report).toMatchObject({ status: 'completed', pivoted: true, error: null });
    expect((await fx.block()).inserted?.file).toBe(dev.path);
    expect(await fx.lab.compareWithChain(dev.path, 'qcow2')).toMatchObject({ identical: true });
    expect(await fx.cmd('query-jobs')).toEqual([]);
    expect((await fx.nodes()).filter((n) => n.file === fx.paths.snap2)).toEqual([]);
  });
});
