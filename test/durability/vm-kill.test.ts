/**
 * kill -9 on a real VM: the kill tests of kill.test.ts (the same kill points: every chart state,
 * and right after every side effect before its record) on a TCG virtual machine whose disk is
 * attached libvirt-style (-blockdev nodes + -device virtio-blk-pci,id=vda), one fresh VM per
 * kill point. The engine process (kill-child.ts) SIGKILLs itself; a new engine on the same
 * SQLite store recovers, and each job must end as it would have without the kill. The points
 * run concurrently, each on its own VM. Counted over
 * all runs and printed: jobs lost, wrong pivots, user files touched, debris — all must be 0 —
 * with the VM start times.
 */
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { onPath } from '../../adapters/qmp/lab.js';
import { QmpClient } from '../../adapters/qmp/client.js';
import { VmLab } from '../../adapters/qmp/vm-lab.js';
import { ChainTemplate, guestReadsSeed } from './vm-seed.js';
import { KILL_CASES, killAndRecover, killCounts } from './kill-harness.js';

const vmStartMs: number[] = [];
const template = new ChainTemplate('blockcopy-vmkill-chain-');
afterAll(async () => {
  const sorted = [...vmStartMs].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  console.log(
    `kill -9 on a TCG VM: ${JSON.stringify(killCounts)}; VM start (spawn to QMP listening) median ${median.toFixed(0)} ms, max ${(sorted.at(-1) ?? 0).toFixed(0)} ms over ${sorted.length} VMs`,
  );
  await template.remove();
});

describe.runIf(onPath('qemu-system-x86_64', 'qemu-img', 'qemu-io'))('kill -9 of the engine on a TCG VM', () => {
  // Each point has its own VM, store and files: they run side by side (vitest's maxConcurrency),
  // which keeps the file to about a minute on an idle 2-core machine.
  it.concurrent.for(KILL_CASES)(
    '%s, killed at %s: recovered to the same end',
    { timeout: 300_000 },
    async ([intent, point], { expect }) => {
      const t0 = performance.now();
      const lab = await VmLab.start({
        style: 'blockdev',
        template: await template.path(),
        monitors: ['qmp', 'harness'],
      });
      vmStartMs.push(performance.now() - t0);
      let harness: QmpClient | null = null;
      try {
        harness = (await QmpClient.connect({ socket: lab.socket('harness'), reconnect: false }))._unsafeUnwrap();
        const h = harness;
        await killAndRecover(
          {
            dir: lab.dir,
            qmpSocket: lab.socket('qmp'),
            paths: lab.paths,
            get alive() {
              return lab.alive;
            },
            guestBad: () => guestReadsSeed(lab, h),
            execute: async <T>(command: string, args?: Record<string, unknown>) =>
              (await h.execute<T>(command, args))._unsafeUnwrap(),
          },
          intent,
          point,
          expect,
        );
        if (intent === 'pivot') {
          expect(await lab.compareWithChain(join(lab.dir, 'copy.qcow2'), 'qcow2')).toMatchObject({ identical: true });
        }
      } finally {
        await harness?.close();
        await lab.dispose();
      }
    },
  );
});
