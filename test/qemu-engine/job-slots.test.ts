/**
 * The host limit on real QEMU: two qemu-storage-daemon labs (two hypervisor connections, two
 * engines) share one JobSlots with maxJobs 1. The second copy waits queued, touching nothing on
 * its hypervisor, and starts when the first has pivoted; both copies are verified with
 * qemu-img compare.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuLab } from '../../adapters/qmp/lab.js';
import { connectQemu, type QemuHypervisor } from '../../adapters/qmp/qemu-adapter.js';
import { AbortFlags, RebaseFlags } from '../../src/core/flags.js';
import { createEngine, type BlockCopyEngine } from '../../src/engine/engine.js';
import { JobSlots } from '../../src/engine/job-slots.js';
import { whenReady, whenState } from './helpers.js';

const labs: QemuLab[] = [];
const ports: QemuHypervisor[] = [];
const engines: BlockCopyEngine[] = [];

beforeAll(async () => {
  for (let i = 0; i < 2; i++) labs.push(await QemuLab.start());
}, 60_000);

afterAll(async () => {
  for (const e of engines) e.close();
  for (const p of ports) await p.close();
  for (const lab of labs) await lab.dispose();
});

describe('engine on QEMU: at most one copy at a time across two connections', () => {
  it('queues the second copy, starts it after the first pivots, both verified', async () => {
    const slots = new JobSlots({ maxJobs: 1 });
    for (const lab of labs) {
      const hv = (await connectQemu({ socket: lab.qmpSocket }))._unsafeUnwrap();
      ports.push(hv);
      engines.push(createEngine({ hypervisor: hv, pollIntervalMs: 100, slots }));
    }
    const [labA, labB] = labs as [QemuLab, QemuLab];
    const [engineA, engineB] = engines as [BlockCopyEngine, BlockCopyEngine];
    const destA = join(labA.dir, 'copy.qcow2');
    const destB = join(labB.dir, 'copy.qcow2');
    const a = (await engineA.blockRebase('qemu', 'vda', destA, 0, RebaseFlags.COPY))._unsafeUnwrap();
    const b = (await engineB.blockRebase('qemu', 'vda', destB, 0, RebaseFlags.COPY))._unsafeUnwrap();
    expect(b.state()).toBe('queued');
    expect(engineB.jobs().map((j) => j.state())).toEqual(['queued']);
    await whenReady(a, 60_000);
    // Still queued while the first holds the slot, and nothing of it exists on its hypervisor.
    expect(b.state()).toBe('queued');
    expect(existsSync(destB)).toBe(false);
    expect((await ports[1]!.queryJob(b.jobId))._unsafeUnwrap()).toBeNull();
    expect((await engineA.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    expect((await a.result).pivoted).toBe(true);
    await whenState(b, 'validating', 30_000);
    await whenReady(b, 60_000);
    expect((await engineB.blockJobAbort('qemu', 'vda', AbortFlags.PIVOT)).isOk()).toBe(true);
    expect((await b.result).pivoted).toBe(true);
    expect(b.states().slice(0, 2)).toEqual(['queued', 'validating']);
    expect(slots.peak).toBe(1);
    expect((await ports[0]!.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(destA);
    expect((await ports[1]!.activeImage('qemu', 'vda'))._unsafeUnwrap()).toBe(destB);
    await labA.stop();
    await labB.stop();
    expect(await labA.compareWithChain(destA, 'qcow2')).toMatchObject({ identical: true });
    expect(await labB.compareWithChain(destB, 'qcow2')).toMatchObject({ identical: true });
  }, 180_000);
});
