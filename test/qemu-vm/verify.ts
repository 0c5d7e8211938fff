/** The checks every pivot on a real VM must pass: what the guest reads, the copy, the old chain, debris. */
import { expect } from 'vitest';
import { AbortFlags } from '../../src/core/flags.js';
import type { BlockCopyJob } from '../../src/engine/engine.js';
import { targetNodeNames } from '../../adapters/qmp/qemu-adapter.js';
import { whenReady } from '../qemu-engine/helpers.js';
import { MiB, type VmFixture } from './harness.js';

/**
 * Pivots `job` through `name` (any spelling of the disk), then: the job reports completed and
 * pivoted; query-block shows the device on the job's destination node; qemu-img compare finds the
 * destination identical to the chain; no node of the old top (snap2) is left, nor (full copies)
 * any of the old chain; no job is left; a guest write through the device lands in the
 * destination and not in snap2.
 */
export async function pivotAndVerify(
  fx: VmFixture,
  job: BlockCopyJob,
  name: string,
  dest: string,
  format: 'qcow2' | 'raw',
  keepsBacking: boolean,
): Promise<void> {
  await whenReady(job);
  expect((await fx.engine.blockJobAbort('qemu', name, AbortFlags.PIVOT)).isOk()).toBe(true);
  const result = await job.result;
  expect(result).toMatchObject({ outcome: 'completed', pivoted: true, error: null });
  expect(result.states.slice(-4)).toEqual(['pivoting', 'confirmingPivot', 'finishing', 'completed']);
  const b = await fx.block();
  expect(b.inserted?.['node-name']).toBe(targetNodeNames(job.jobId).format);
  expect((await fx.hv.activeImage('qemu', fx.device))._unsafeUnwrap()).toBe(dest);
  expect(await fx.lab.compareWithChain(dest, format)).toMatchObject({ identical: true });
  const nodes = await fx.nodes();
  expect(nodes.filter((n) => n.file === fx.paths.snap2)).toEqual([]);
  if (!keepsBacking)
    expect(nodes.map((n) => n['node-name']).sort()).toEqual(Object.values(targetNodeNames(job.jobId)).sort());
  expect(await fx.cmd('query-jobs')).toEqual([]);
  // The old top's node name is stale now: not a disk.
  const stale = await fx.engine.planRebase('qemu', 'snap2', `${dest}.again`, 0, 1 << 3);
  expect(stale._unsafeUnwrapErr()).toMatchObject({ code: 'VIR_ERR_INVALID_ARG' });
  // 24 MiB lies in the top layer: allocated in every kind of copy, so no qcow2 metadata is pending.
  await fx.guestWrite(0x77, 24 * MiB, MiB);
  expect(await fx.imageHas(dest, format, 0x77, 24 * MiB, MiB)).toBe(true);
  expect(await fx.imageHas(fx.paths.snap2, 'qcow2', 0x77, 24 * MiB, MiB)).toBe(false);
}
