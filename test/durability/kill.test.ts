/**
 * kill -9 on real QEMU (a qemu-storage-daemon lab): an engine process is SIGKILLed at every chart
 * state and right after every side effect before its record; a new engine on the same SQLite
 * store recovers, and each job must end as it would have without the kill. Counted over all
 * runs and printed: jobs lost, wrong pivots, user files touched, debris (QEMU jobs or nodes
 * left, files left) — all must be 0.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { QemuLab, onPath } from '../../adapters/qmp/lab.js';
import { KILL_CASES, killAndRecover, killCounts } from './kill-harness.js';

afterAll(() => {
  console.log(`kill -9 on QEMU: ${JSON.stringify(killCounts)}`);
});

describe.runIf(onPath('qemu-storage-daemon', 'qemu-img', 'qemu-io'))('kill -9 of the engine on real QEMU', () => {
  it.each(KILL_CASES)('%s, killed at %s: recovered to the same end', { timeout: 120_000 }, async (intent, point) => {
    const lab = await QemuLab.start();
    try {
      await killAndRecover(
        {
          dir: lab.dir,
          qmpSocket: lab.qmpSocket,
          paths: lab.paths,
          get alive() {
            return lab.alive;
          },
          daemonLog: () => lab.daemonLog(),
          guestBad: () => lab.guestVerify(lab.expected()),
        },
        intent,
        point,
        expect,
      );
    } finally {
      await lab.dispose();
    }
  });
});
