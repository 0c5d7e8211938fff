/**
 * virsh blockcopy's options reaching QEMU on a real VM (checked in QEMU's own reports and in the
 * job's behaviour), and the ASYNC pivot / finish through the engine API leaving no job and no
 * target node behind.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortFlags, BandwidthFlags, CopyFlags, RebaseFlags } from '../../src/core/flags.js';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { whenReady } from '../qemu-engine/helpers.js';
import { MiB, useVm } from './harness.js';

const vm = useVm();

interface BlockJob {
  readonly device: string;
  readonly speed: number;
  readonly len: number;
  readonly offset: number;
}

describe('VM: virsh blockcopy options end to end', () => {
  it('--bytes bandwidth, --granularity, --buf-size, --format raw, --synchronous-writes, --transient-job', async () => {
    const fx = await vm('blockdev');
    const dest = join(fx.dir, 'copy.raw');
    const bandwidth = 1 * MiB;
    const job = (
      await fx.engine.blockCopy(
        'qemu',
        'vda',
        { path: dest, format: 'raw' },
        { bandwidth, granularity: 128 * 1024, bufSize: 2 * MiB },
        CopyFlags.SYNCHRONOUS_WRITES | CopyFlags.TRANSIENT_JOB,
      )
    )._unsafeUnwrap();
    expect(job.plan).toMatchObject({
      destination: { path: dest, format: 'raw' },
      speed: bandwidth,
      copyMode: 'write-blocking',
      granularity: 128 * 1024,
      bufSize: 2 * MiB,
    });
    // QEMU's view: the job's speed in bytes/s, and the mirror's dirty bitmap on the source node.
    const jobs = await fx.cmd<BlockJob[]>('query-block-jobs');
    expect(jobs).toMatchObject([{ device: job.jobId, speed: bandwidth }]);
    const snap2 = (await fx.nodes()).find((n) => n['node-name'] === 'snap2') as unknown as {
      'dirty-bitmaps'?: { granularity: number }[];
    };
    expect(snap2['dirty-bitmaps']?.map((b) => b.granularity)).toEqual([128 * 1024]);
    expect((await fx.engine.blockJobSetSpeed('qemu', 'vda', 0, BandwidthFlags.BYTES)).isOk()).toBe(true);
    expect((await fx.cmd<BlockJob[]>('query-block-jobs'))[0]?.speed).toBe(0);
    await whenReady(job);
    // write-blocking (qemu-mirror.md g2): with the job paused in standby, a guest write is still
    // mirrored at once; len and offset both count it (background mode leaves offset behind).
    expect((await fx.engine.blockJobPause('qemu', 'vda')).isOk()).toBe(true);
    const before = (await fx.cmd<BlockJob[]>('query-block-jobs'))[0]!;
    await fx.guestWrite(0x5a, 8 * MiB, MiB);
    const after = (await fx.cmd<BlockJob[]>('query-block-jobs'))[0]!;
    expect(after.len).toBe(before.len + MiB);
    expect(after.offset).toBe(after.len);
    expect((await fx.engine.blockJobResume('qemu', 'vda')).isOk()).toBe(true);
    expect((await fx.engine.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    expect((await job.result).pivoted).toBe(true);
    expect((await fx.block()).inserted?.['node-name']).toBe(targetNodeNames(job.jobId).format);
    expect(await fx.imageHas(dest, 'raw', 0x5a, 8 * MiB, MiB)).toBe(true);
  });

  it('an unknown typed parameter: VIR_ERR_ARGUMENT_UNSUPPORTED, nothing asked or created', async () => {
    const fx = await vm('blockdev');
    const dest = join(fx.dir, 'copy.qcow2');
    const params = { bandwith: 1 } as unknown as { bandwidth: number };
    const r = await fx.engine.blockCopy('qemu', 'vda', { path: dest }, params, 0);
    expect(r._unsafeUnwrapErr()).toMatchObject({
      code: 'VIR_ERR_ARGUMENT_UNSUPPORTED',
      number: 74,
      message: "argument unsupported: parameter 'bandwith' not supported",
    });
    expect([...fx.calls.keys()]).toEqual([]);
    expect(existsSync(dest)).toBe(false);
  });

  it.each(['blockdev', 'drive'] as const)(
    '(%s) ASYNC pivot, then ASYNC finish: no job and no target node left',
    async (style) => {
      const fx = await vm(style);
      const first = join(fx.dir, 'first.qcow2');
      const job = (await fx.engine.blockRebase('qemu', fx.device, first, 0, RebaseFlags.COPY))._unsafeUnwrap();
      await whenReady(job);
      expect((await fx.engine.blockJobAbort('qemu', fx.device, AbortFlags.PIVOT | AbortFlags.ASYNC)).isOk()).toBe(true);
      expect(await job.result).toMatchObject({ outcome: 'completed', pivoted: true });
      expect(await fx.cmd('query-jobs')).toEqual([]);
      const names = targetNodeNames(job.jobId);
      expect((await fx.nodes()).map((n) => n['node-name']).sort()).toEqual([names.format, names.file].sort());

      // A second copy of the disk (now on first.qcow2), finished without pivot.
      const second = join(fx.dir, 'second.qcow2');
      const job2 = (await fx.engine.blockRebase('qemu', fx.device, second, 0, RebaseFlags.COPY))._unsafeUnwrap();
      await whenReady(job2);
      expect((await fx.engine.blockJobAbort('qemu', fx.device, AbortFlags.ASYNC)).isOk()).toBe(true);
      expect(await job2.result).toMatchObject({ outcome: 'canceled', pivoted: false, destinationConsistent: true });
      expect(await fx.cmd('query-jobs')).toEqual([]);
      expect((await fx.nodes()).map((n) => n['node-name']).sort()).toEqual([names.format, names.file].sort());
      expect((await fx.block()).inserted?.['node-name']).toBe(names.format);
      expect(existsSync(second)).toBe(true);
    },
  );
});
